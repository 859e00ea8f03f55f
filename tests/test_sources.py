"""Sources: layout detection, local folders and archives, and the named sources served by a local HTTP
server (download with a cut and resume, checksum mismatch, both layouts, ClearML's StorageManager online),
class selection and table-level errors."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import get_data
from audioclf import sources
from audioclf.download import Remote
from audioclf.metadata import ESC50, URBANSOUND8K
from audioclf.store import LocalStore
from test_download import RangeServer

RATE = 8000
US8K_CLASSES = ("air_conditioner", "car_horn", "dog_bark")
# (target, category, esc10) as in ESC-50
ESC_CLASSES = ((0, "dog", True), (1, "rooster", True), (5, "cat", False), (10, "rain", True))


def wav_bytes(freq: float) -> bytes:
    buffer = io.BytesIO()
    t = np.arange(RATE // 10) / RATE
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), RATE, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def us8k_files(prefix: str = "UrbanSound8K/") -> dict[str, bytes]:
    """A tiny UrbanSound8K tree (3 classes x 10 folds) as {path: bytes}."""
    rows, files = [], {}
    for fold in range(1, 11):
        for class_id, name in enumerate(US8K_CLASSES):
            fname = f"{500 + class_id}-{class_id}-0-{fold}.wav"
            rows.append((fname, 500 + class_id, 0.0, 0.1, 1, fold, class_id, name))
            files[f"{prefix}audio/fold{fold}/{fname}"] = wav_bytes(200.0 * (class_id + 1))
    table = pd.DataFrame(rows, columns=list(URBANSOUND8K.columns))
    files[f"{prefix}metadata/UrbanSound8K.csv"] = table.to_csv(index=False).encode()
    files[f"{prefix}UrbanSound8K_README.txt"] = b"readme"
    return files


def esc50_files(prefix: str = "ESC-50-master/") -> dict[str, bytes]:
    """A tiny ESC-50 tree (4 classes x 5 folds) as {path: bytes}."""
    rows, files = [], {}
    for fold in range(1, 6):
        for target, category, esc10 in ESC_CLASSES:
            fname = f"{fold}-{1000 + target}-A-{target}.wav"
            rows.append((fname, fold, target, category, esc10, 1000 + target, "A"))
            files[f"{prefix}audio/{fname}"] = wav_bytes(150.0 * (target + 1))
    table = pd.DataFrame(rows, columns=list(ESC50.columns))
    files[f"{prefix}meta/esc50.csv"] = table.to_csv(index=False).encode()
    files[f"{prefix}README.md"] = b"ESC-50"
    return files


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def run_get_data(out: Path, *args: str) -> dict:
    return get_data.main(["--offline", "--output-dir", str(out), *args])


@pytest.fixture
def served(monkeypatch):
    """The named sources pointed at a local server holding tiny archives in both layouts (md5 known)."""
    with RangeServer() as server:
        us8k, esc = tar_gz(us8k_files()), zip_bytes(esc50_files())
        remotes = {
            "urbansound8k": Remote(server.serve("/UrbanSound8K.tar.gz", us8k), "UrbanSound8K.tar.gz",
                                   md5=hashlib.md5(us8k).hexdigest(), description="test UrbanSound8K"),
            "esc50": Remote(server.serve("/master.zip", esc), "ESC-50-master.zip", description="test ESC-50"),
            "clearml-subset": Remote(server.serve("/UrbanSound8K.zip", zip_bytes(us8k_files())),
                                     "clearml-UrbanSound8K.zip", description="test subset"),
        }
        monkeypatch.setattr(sources, "REMOTES", remotes)
        monkeypatch.setattr("audioclf.download.RETRY_WAIT", 0.0)
        yield server


# --- layout detection and local sources ----------------------------------------------------------

def test_detect_layout_at_the_top_and_nested(tmp_path):
    write_tree(tmp_path / "a", us8k_files(prefix=""))
    write_tree(tmp_path / "b", esc50_files())
    assert sources.detect_layout(tmp_path / "a") == (tmp_path / "a", URBANSOUND8K)
    assert sources.detect_layout(tmp_path / "b") == (tmp_path / "b" / "ESC-50-master", ESC50)


def test_detect_layout_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(sources.SourceError, match=r"no known layout.*metadata/UrbanSound8K\.csv.*meta/esc50\.csv"):
        sources.detect_layout(tmp_path / "empty")
    write_tree(tmp_path / "two", {**us8k_files("x/"), **esc50_files("y/")})
    with pytest.raises(sources.SourceError, match="more than one dataset"):
        sources.detect_layout(tmp_path / "two")


def test_source_folds_known_before_any_download(tmp_path):
    write_tree(tmp_path / "us8k", us8k_files(prefix=""))
    write_tree(tmp_path / "esc", esc50_files())
    (tmp_path / "empty").mkdir()
    assert sources.source_folds("esc50") == range(1, 6)
    assert sources.source_folds(str(tmp_path / "esc")) == range(1, 6)
    for source in ("synthetic", "urbansound8k", "clearml-subset", str(tmp_path / "us8k"), str(tmp_path / "empty"),
                   str(tmp_path / "archive.zip")):
        assert sources.source_folds(source) == range(1, 11), source


def test_unknown_source_and_non_archive_file(tmp_path):
    with pytest.raises(sources.SourceError, match="neither a known source"):
        sources.resolve_source(str(tmp_path / "nope"), tmp_path / "staging")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(sources.SourceError, match="not a zip or tar archive"):
        sources.resolve_source(str(tmp_path / "notes.txt"), tmp_path / "staging")


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_local_archive_in_either_layout(tmp_path, kind):
    packed = {"tar.gz": tar_gz, "zip": zip_bytes}[kind]
    for files, layout in ((us8k_files(), URBANSOUND8K), (esc50_files(), ESC50)):
        archive = tmp_path / f"{layout.name}.{kind}"
        archive.write_bytes(packed(files))
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        folder = sources.resolve_source(str(archive), tmp_path / "staging", progress=False)
        assert folder.layout is layout and folder.owned
        assert folder.workdir == tmp_path / "staging" / f"archive-{layout.name}"
        assert (folder.root / layout.csv).is_file()
        assert hashlib.sha256(archive.read_bytes()).hexdigest() == digest


def test_local_esc50_folder_is_copied_not_moved_and_classes_reindexed(tmp_path):
    source = write_tree(tmp_path / "src", esc50_files(prefix=""))
    before = {p: p.read_bytes() for p in source.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    raw = run_get_data(out, "--source", str(source), "--classes", "rain,dog")
    assert raw["classes"] == ["dog", "rain"] and raw["num_clips"] == 10 and raw["layout"] == "esc50"
    dataset = LocalStore(out / "datasets").get(raw["dataset_id"])
    table = dataset.read_table("metadata.csv")
    assert list(table.columns[:4]) == ["filepath", "fold", "label", "class"]
    assert {"filename", "target", "category", "esc10", "src_file", "take"} <= set(table.columns)
    assert dict(zip(table["class"], table["label"])) == {"dog": 0, "rain": 1}
    assert sorted(dataset.list_files("audio/*")) == sorted(table["filepath"])  # unselected classes left out
    assert "meta/esc50.csv" in dataset.list_files()
    mapping = dataset.read_table("label_map.csv")
    assert mapping.to_dict("list") == {"label": [0, 1], "class": ["dog", "rain"], "source_target": [0, 10]}
    assert raw["num_skipped"] == 0  # files of unselected classes are not "unlisted"
    assert {p: p.read_bytes() for p in source.rglob("*") if p.is_file()} == before


# --- named sources over HTTP ---------------------------------------------------------------------

def test_urbansound8k_download_cut_resumed_verified_and_cached(served, tmp_path, capsys):
    served.cut("/UrbanSound8K.tar.gz", 1000)
    out = tmp_path / "out"
    with pytest.raises(SystemExit):  # a typo in --classes stops the run before any download or session
        run_get_data(out, "--source", "urbansound8k", "--classes", "dog_bork")
    assert "unknown classes ['dog_bork']" in capsys.readouterr().err
    assert served.requests == [] and not (out / "staging").exists()
    raw = run_get_data(out, "--source", "urbansound8k")
    assert raw["num_clips"] == 30 and raw["classes"] == list(US8K_CLASSES) and raw["layout"] == "urbansound8k"
    assert [r for p, r in served.requests if p == "/UrbanSound8K.tar.gz"] == [None, "bytes=1000-"]
    assert (out / "downloads" / "UrbanSound8K.tar.gz").is_file()
    assert not (out / "staging" / "urbansound8k").exists(), "the extraction is moved into the dataset"
    dataset = LocalStore(out / "datasets").get(raw["dataset_id"])
    assert "metadata/UrbanSound8K.csv" in dataset.list_files()
    assert len(dataset.list_files("audio/fold*/*.wav")) == 30

    requests = len(served.requests)
    again = run_get_data(out, "--source", "urbansound8k", "--classes", "dog_bark", "car_horn")
    assert len(served.requests) == requests, "the second run must use the cached archive"
    assert again["classes"] == ["car_horn", "dog_bark"] and again["num_clips"] == 20


def test_esc50_download_with_esc10(served, tmp_path):
    out = tmp_path / "out"
    raw = run_get_data(out, "--source", "esc50", "--esc10", "--cache-dir", str(tmp_path / "cache"))
    assert raw["classes"] == ["dog", "rooster", "rain"] and raw["num_clips"] == 15
    assert (tmp_path / "cache" / "ESC-50-master.zip").is_file()
    table = LocalStore(out / "datasets").get(raw["dataset_id"]).read_table("metadata.csv")
    assert sorted(table["label"].unique()) == [0, 1, 2] and sorted(table["fold"].unique()) == [1, 2, 3, 4, 5]


def test_checksum_mismatch_stops_the_run_and_deletes_the_file(served, tmp_path, monkeypatch, capsys):
    bad = Remote(sources.REMOTES["urbansound8k"].url, "UrbanSound8K.tar.gz", md5="0" * 32)
    monkeypatch.setitem(sources.REMOTES, "urbansound8k", bad)
    with pytest.raises(SystemExit) as exc:
        run_get_data(tmp_path / "out", "--source", "urbansound8k")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "md5" in err and "deleted" in err
    assert not list((tmp_path / "out" / "downloads").iterdir())


def test_clearml_subset_uses_storage_manager_online_and_our_downloader_offline(served, tmp_path, monkeypatch):
    from clearml import StorageManager

    calls = []
    local_zip = tmp_path / "clearml-cache" / "UrbanSound8K.zip"
    local_zip.parent.mkdir()
    local_zip.write_bytes(zip_bytes(us8k_files()))

    def fake_get_local_copy(remote_url, cache_context=None, extract_archive=True, name=None, force_download=False):
        calls.append((remote_url, extract_archive))
        return str(local_zip)

    monkeypatch.setattr(StorageManager, "get_local_copy", staticmethod(fake_get_local_copy))
    folder = sources.resolve_source("clearml-subset", tmp_path / "staging", online=True, progress=False)
    assert calls == [(sources.REMOTES["clearml-subset"].url, False)]  # extraction stays ours (safe)
    assert folder.layout is URBANSOUND8K and folder.owned and not served.requests

    folder = sources.resolve_source("clearml-subset", tmp_path / "staging2", online=False, progress=False,
                                    cache_dir=tmp_path / "cache")
    assert len(calls) == 1 and served.requests == [("/UrbanSound8K.zip", None)]
    assert (folder.root / URBANSOUND8K.csv).is_file()


def test_url_source(served, tmp_path):
    url = served.serve("/mirror/ESC-50.zip", zip_bytes(esc50_files()))
    folder = sources.resolve_source(url, tmp_path / "staging", cache_dir=tmp_path / "cache", progress=False)
    assert folder.layout is ESC50
    assert [p.name for p in (tmp_path / "cache").iterdir()][0].endswith("-ESC-50.zip")


# --- table-level errors stop the run early --------------------------------------------------------

def _table_error(tmp_path: Path, capsys, edit, *args: str) -> str:
    source = write_tree(tmp_path / "src", us8k_files(prefix=""))
    csv = source / "metadata" / "UrbanSound8K.csv"
    table = pd.read_csv(csv)
    edit(table).to_csv(csv, index=False)
    with pytest.raises(SystemExit) as exc:
        run_get_data(tmp_path / "out", "--source", str(source), *args)
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_missing_columns_name_the_file(tmp_path, capsys):
    err = _table_error(tmp_path, capsys, lambda t: t.drop(columns=["salience"]))
    assert "UrbanSound8K.csv lacks the columns ['salience']" in err


def test_folds_out_of_range_and_duplicates_name_the_file(tmp_path, capsys):
    def edit(table):
        table.loc[0, "fold"] = 11
        return pd.concat([table, table.iloc[[5]]])
    err = _table_error(tmp_path, capsys, edit)
    assert "UrbanSound8K.csv" in err and "folds [11] outside 1..10" in err and "duplicated" in err


def test_unknown_class_and_misplaced_esc10(tmp_path, capsys):
    err = _table_error(tmp_path, capsys, lambda t: t, "--classes", "siren")
    assert "unknown classes ['siren']" in err and "air_conditioner, car_horn, dog_bark" in err
    err = _table_error(tmp_path / "2", capsys, lambda t: t, "--esc10")
    assert "--esc10 applies to ESC-50" in err


def test_unsafe_paths_in_the_table_are_refused(tmp_path, capsys):
    def edit(table):
        table.loc[0, "slice_file_name"] = "../../../etc/passwd"
        return table
    err = _table_error(tmp_path, capsys, edit)
    assert "climb out" in err


@pytest.mark.parametrize("inside", ["outputs", "audio/out"])
def test_an_output_dir_inside_the_source_folder_is_refused_and_nothing_written(tmp_path, monkeypatch, capsys, inside):
    root = write_tree(tmp_path / "src", us8k_files(""))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    monkeypatch.chdir(root)  # `cd /data/UrbanSound8K && get_data.py --source .`
    with pytest.raises(SystemExit) as exc:
        get_data.main(["--source", ".", "--output-dir", inside, "--offline"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "is inside the source folder" in err and "Traceback" not in err
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
