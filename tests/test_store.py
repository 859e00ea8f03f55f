"""audioclf.store.LocalStore: versioned datasets in a folder, with lineage and de-duplication."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from audioclf.errors import UserError
from audioclf.store import DATASET_FILE, DatasetNotFound, LocalStore


# --- helpers -------------------------------------------------------------------------------------

def make_tree(folder: Path, files: dict[str, bytes]) -> Path:
    for rel, payload in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(payload)
    return folder


def tree_digest(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under folder."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def stored_files(store: LocalStore, dataset_id: str) -> list[str]:
    """The files physically kept in one version's folder."""
    return sorted(tree_digest(store.root / dataset_id / "files"))


def build(store: LocalStore, files: dict[str, bytes], tmp_path: Path, name: str = "ds", parent_ids=None):
    source = make_tree(tmp_path / f"src-{name}", files)
    draft = store.create(name=name, project="proj", parent_ids=parent_ids)
    draft.add_files(source)
    return draft.finalize()


PARENT_FILES = {
    "audio/fold1/a.wav": b"aaaa",
    "audio/fold1/b.wav": b"bbbb",
    "audio/fold2/c.wav": b"cccc",
}


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "store")


# --- create / add / finalize / get ---------------------------------------------------------------

def test_round_trip_of_files_table_and_json(store, tmp_path):
    source = make_tree(tmp_path / "raw", PARENT_FILES)
    table = pd.DataFrame({"filepath": ["audio/fold1/a.wav", "audio/fold1/b.wav"], "fold": [1, 1],
                          "label": [0, 1], "class": ["x", "y"]})
    info = {"shape": [64, 173], "class_names": ["x", "y"], "f_max": None}

    draft = store.create(name="raw", project="proj", tags=["raw", "v1"], description="about")
    assert draft.add_files(source) == 3
    draft.add_table("metadata.csv", table)
    draft.add_json("features.json", info)
    finalized = draft.finalize()

    dataset = LocalStore(store.root).get(finalized.id)  # a fresh store object reads it back from disk
    assert dataset.id == finalized.id == draft.id
    assert dataset.list_files() == sorted([*PARENT_FILES, "metadata.csv", "features.json"])
    for rel, payload in PARENT_FILES.items():
        assert dataset.path(rel).read_bytes() == payload
    pd.testing.assert_frame_equal(dataset.read_table("metadata.csv"), table)
    assert dataset.read_json("features.json") == info
    assert (dataset.info.name, dataset.info.project, dataset.info.tags) == ("raw", "proj", ["raw", "v1"])
    assert dataset.info.description == "about"
    assert dataset.parent_ids == []
    assert dataset.list_files(pattern="audio/fold1/*") == ["audio/fold1/a.wav", "audio/fold1/b.wav"]


def test_ids_start_with_local_and_are_unique(store, tmp_path):
    ids = [build(store, {"x": b"1"}, tmp_path, name=f"d{i}").id for i in range(3)]
    assert all(i.startswith("local-") for i in ids)
    assert len(set(ids)) == 3
    assert sorted(store.list_ids()) == sorted(ids)


def test_dataset_path_under_a_prefix(store, tmp_path):
    source = make_tree(tmp_path / "feats", {"audio/fold1/a.npy": b"\x93NUMPY"})
    draft = store.create(name="f", project="p")
    assert draft.add_files(source, dataset_path="features") == 1
    dataset = draft.finalize()
    assert dataset.list_files() == ["features/audio/fold1/a.npy"]
    assert dataset.path("features/audio/fold1/a.npy").read_bytes() == b"\x93NUMPY"


def test_path_of_an_unknown_file_raises(store, tmp_path):
    dataset = build(store, {"x": b"1"}, tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        dataset.path("nope.wav")


def test_dataset_json_records_the_file_entries(store, tmp_path):
    dataset = build(store, {"x.bin": b"12345"}, tmp_path)
    meta = json.loads((store.root / dataset.id / DATASET_FILE).read_text())
    assert meta["id"] == dataset.id
    assert meta["files"]["x.bin"] == {"sha256": hashlib.sha256(b"12345").hexdigest(), "size": 5,
                                      "dataset_id": dataset.id}


# --- lineage -------------------------------------------------------------------------------------

def test_child_inherits_every_parent_file(store, tmp_path):
    parent = build(store, PARENT_FILES, tmp_path, name="parent")

    child = store.create(name="child", project="proj", parent_ids=[parent.id])
    child.add_json("extra.json", {"k": 1})
    child = child.finalize()

    assert child.parent_ids == [parent.id]
    assert child.list_files() == sorted([*PARENT_FILES, "extra.json"])
    for rel, payload in PARENT_FILES.items():
        path = child.path(rel)
        assert path.read_bytes() == payload
        assert path.is_relative_to(store.root / parent.id)
    assert child.list_files(added_only=True) == ["extra.json"]
    assert stored_files(store, child.id) == ["extra.json"]


def test_add_files_adds_only_changed_and_new_files(store, tmp_path):
    parent = build(store, PARENT_FILES, tmp_path, name="parent")
    update = make_tree(tmp_path / "update", {
        "audio/fold1/a.wav": b"aaaa",  # byte-identical to the parent's
        "audio/fold1/b.wav": b"BBBB",  # changed
        "audio/fold3/d.wav": b"dddd",  # new
    })

    draft = store.create(name="child", project="proj", parent_ids=[parent.id])
    assert draft.add_files(update) == 2
    child = draft.finalize()

    assert child.list_files(added_only=True) == ["audio/fold1/b.wav", "audio/fold3/d.wav"]
    assert stored_files(store, child.id) == ["audio/fold1/b.wav", "audio/fold3/d.wav"]  # no copy of a.wav
    assert child.path("audio/fold1/a.wav").is_relative_to(store.root / parent.id)
    assert child.path("audio/fold1/b.wav").read_bytes() == b"BBBB"
    assert child.path("audio/fold2/c.wav").read_bytes() == b"cccc"  # inherited, not re-added
    assert child.path("audio/fold3/d.wav").read_bytes() == b"dddd"
    # The parent is untouched.
    parent_again = store.get(parent.id)
    assert parent_again.list_files() == sorted(PARENT_FILES)
    assert parent_again.path("audio/fold1/b.wav").read_bytes() == b"bbbb"


def test_same_content_under_another_path_is_added(store, tmp_path):
    parent = build(store, {"a.wav": b"same"}, tmp_path, name="parent")
    draft = store.create(name="child", project="proj", parent_ids=[parent.id])
    assert draft.add_files(make_tree(tmp_path / "moved", {"sub/a.wav": b"same"})) == 1
    assert draft.finalize().list_files(added_only=True) == ["sub/a.wav"]


def test_grandchild_resolves_files_to_the_version_that_stores_them(store, tmp_path):
    grandparent = build(store, {"g.txt": b"g"}, tmp_path, name="gp")
    parent = build(store, {"p.txt": b"p"}, tmp_path, name="p", parent_ids=[grandparent.id])
    child = build(store, {"c.txt": b"c"}, tmp_path, name="c", parent_ids=[parent.id])

    assert child.list_files() == ["c.txt", "g.txt", "p.txt"]
    assert child.path("g.txt").is_relative_to(store.root / grandparent.id)
    assert child.path("p.txt").is_relative_to(store.root / parent.id)
    assert child.list_files(added_only=True) == ["c.txt"]


@pytest.mark.parametrize("order,expected", [((0, 1), b"two"), ((1, 0), b"one")])
def test_later_parents_override_earlier_ones(store, tmp_path, order, expected):
    parents = [build(store, {"shared.txt": b"one", "only1.txt": b"1"}, tmp_path, name="p1"),
               build(store, {"shared.txt": b"two", "only2.txt": b"2"}, tmp_path, name="p2")]
    ids = [parents[i].id for i in order]

    child = store.create(name="merge", project="proj", parent_ids=ids).finalize()

    assert child.parent_ids == ids
    assert child.path("shared.txt").read_bytes() == expected
    assert child.list_files() == ["only1.txt", "only2.txt", "shared.txt"]
    assert child.list_files(added_only=True) == []


def test_create_with_an_unknown_parent_raises(store):
    with pytest.raises(DatasetNotFound):
        store.create(name="orphan", project="proj", parent_ids=["local-doesnotexist"])


# --- copying versus moving -----------------------------------------------------------------------

def test_add_files_copy_leaves_the_source_byte_identical(store, tmp_path):
    source = make_tree(tmp_path / "src", PARENT_FILES)
    before = tree_digest(source)

    draft = store.create(name="copy", project="proj")
    draft.add_files(source)
    dataset = draft.finalize()

    assert tree_digest(source) == before
    assert {rel: hashlib.sha256(dataset.path(rel).read_bytes()).hexdigest() for rel in PARENT_FILES} == before


def test_add_files_link_shares_the_bytes_and_keeps_the_source_whole(store, tmp_path):
    # A staged folder is hard-linked, not moved: a run killed before finalize leaves it complete for the rerun.
    source = make_tree(tmp_path / "src", PARENT_FILES)
    before = tree_digest(source)

    draft = store.create(name="link", project="proj")
    assert draft.add_files(source, link=True) == 3
    dataset = draft.finalize()

    assert tree_digest(source) == before
    for rel, payload in PARENT_FILES.items():
        assert dataset.path(rel).stat().st_ino == (source / rel).stat().st_ino
    shutil.rmtree(source)  # the stage removes its staged copy afterwards
    for rel, payload in PARENT_FILES.items():
        assert dataset.path(rel).read_bytes() == payload


# --- drafts that never become datasets -----------------------------------------------------------

def test_unfinalized_draft_is_not_a_dataset(store, tmp_path):
    draft = store.create(name="half", project="proj")
    draft.add_files(make_tree(tmp_path / "src", PARENT_FILES))

    assert not (store.root / draft.id).exists()
    assert draft.id not in store.list_ids()
    with pytest.raises(DatasetNotFound):
        store.get(draft.id)


def test_discarded_draft_leaves_nothing(store, tmp_path):
    draft = store.create(name="gone", project="proj")
    draft.add_files(make_tree(tmp_path / "src", PARENT_FILES))
    draft.discard()

    assert list(store.root.iterdir()) == []
    assert store.list_ids() == []
    with pytest.raises(DatasetNotFound):
        store.get(draft.id)


# --- get errors ----------------------------------------------------------------------------------

def test_get_unknown_id_names_the_store_folder(store, tmp_path):
    known = build(store, {"x": b"1"}, tmp_path)
    with pytest.raises(DatasetNotFound) as info:
        store.get("local-0123456789abcdef")
    message = str(info.value)
    assert str(store.root) in message
    assert "local-0123456789abcdef" in message
    assert known.id in message  # lists the latest ids as a hint


def test_dataset_not_found_is_a_user_error():  # shown as one line, no traceback
    assert issubclass(DatasetNotFound, UserError)


@pytest.mark.parametrize("bad_id", ["../x", "", "x/../../x", "/abs"])
def test_get_rejects_ids_that_are_paths(tmp_path, bad_id):
    store = LocalStore(tmp_path / "store")
    # A real dataset.json outside the store: it must not be reachable through the id.
    outside = make_tree(tmp_path / "x", {DATASET_FILE: json.dumps({
        "id": "x", "name": "x", "project": "p", "tags": [], "parent_ids": [], "created": 0.0,
        "files": {}, "description": ""}).encode()})
    assert (outside / DATASET_FILE).is_file()
    with pytest.raises(DatasetNotFound):
        store.get(bad_id)
