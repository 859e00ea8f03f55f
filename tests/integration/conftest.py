"""Fixtures of the integration suite; they live in clearml_env.py (a module name of its own, importable from
the tests, unlike a second conftest)."""

from clearml_env import agents, datasets, fresh_user, names, project, server, user  # noqa: F401
