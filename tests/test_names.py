"""Issue 35, item 3: names that say what a module or class holds, no dead code, a training loop readable one part
at a time; a model file does not depend on a class name (renaming the network keeps old files loadable).

    python -m pytest -q tests/test_names.py
"""

from __future__ import annotations

import ast
import importlib
import zipfile
from pathlib import Path

import pytest
import torch

from audioclf import cli, metadata, models, trainer

REPO = Path(__file__).resolve().parents[1]


def test_the_synthetic_sound_generators_have_a_module_named_for_them():
    from audioclf import sound_generators

    assert callable(sound_generators.draw_voice) and callable(sound_generators.render_event)
    assert not (REPO / "audioclf" / "sound_models.py").exists(), "sound_models.py sat beside models.py (networks)"


def test_the_default_network_is_not_called_compact():
    assert not hasattr(models, "CompactCNN"), "'compact' is one width of it, not the default network"
    model = models.AudioClassifier("cnn", 10)
    assert type(model.backbone).__name__ == "FourBlockCNN" and len(model.backbone.features) == 4


def test_dead_code_is_gone():
    assert not hasattr(cli, "comma_list") and not hasattr(metadata, "read_esc50")


def test_a_saved_model_names_no_class_so_a_renamed_network_still_loads(tmp_path):
    model = models.AudioClassifier("cnn", 3, width=4)
    path = tmp_path / "model.pt"
    models.save_model(path, model, ["a", "b", "c"], {"n_mels": 64}, {"arch": "cnn"}, {"accuracy": 0.5})
    with zipfile.ZipFile(path) as archive:
        pickled = b"".join(archive.read(name) for name in archive.namelist() if name.endswith(".pkl"))
    assert not any(name in pickled for name in (b"FourBlockCNN", b"CompactCNN", b"audioclf.models")), \
        "the file must hold tensors and plain values only, no class of ours"
    loaded, bundle = models.load_model(path)
    assert bundle["arch"] == "cnn" and isinstance(loaded.backbone, models.FourBlockCNN)
    state = loaded.state_dict()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("module", ["audioclf.trainer"])
def test_the_training_loop_reads_one_screen_per_part(module):
    """trainer.fit was 151 lines: set-up, resume, an epoch, validation and checkpoints are parts of their own."""
    tree = ast.parse(Path(importlib.import_module(module).__file__).read_text())
    long = {node.name: node.end_lineno - node.lineno + 1 for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > 60}
    assert long == {}
    assert {"_start", "_resume", "_train_epoch", "_validate", "_checkpoint"} <= set(vars(trainer))
