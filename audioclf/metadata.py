"""One normalized metadata table for every source, and its validation.

Columns every stage relies on:
- ``filepath``: the clip's path relative to the dataset root (POSIX separators);
- ``fold``: int, the predefined cross-validation fold;
- ``label``: int in 0..K-1, the index into the dataset's class names;
- ``class``: the class name.
The source's own columns (UrbanSound8K's slice_file_name, fsID, salience, ...;
ESC-50's filename, target, category, esc10, ...) are kept beside them. Labels
index the classes present in the source's class-number order (classID,
target), so selecting classes re-indexes them consistently.

Two layouts are known (:data:`LAYOUTS`): UrbanSound8K (``metadata/UrbanSound8K.csv``,
``audio/fold1..fold10/``) and ESC-50 (``meta/esc50.csv``, ``audio/``).

Validation has two levels. A table-level problem (missing columns, folds out of
range, unknown classes, duplicated or unsafe paths) raises MetadataError: the
run stops before any heavy work. Clip-level problems (:func:`check_clips`:
files missing on disk, files not listed, clips that do not decode) are
reported and the clips left out, so a run with a few bad clips finishes.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

from .errors import UserError
from .layouts import (ESC50, ESC50_COLUMNS, ESC50_CSV, LAYOUTS, URBANSOUND8K, URBANSOUND8K_COLUMNS,  # noqa: F401
                      URBANSOUND8K_CSV, Layout)
from .stopping import cancelled_on_error

NORMALIZED_COLUMNS = ("filepath", "fold", "label", "class")
METADATA_FILE = "metadata.csv"  # the normalized table, stored at the root of the raw dataset
LABEL_MAP_FILE = "label_map.csv"  # label -> class -> the source's class number, at the root of the raw dataset
SKIPPED_COLUMNS = ("filepath", "reason")

MISSING = "listed in the metadata but missing on disk"
UNLISTED = "not in metadata"


class MetadataError(UserError):
    """The metadata table is unusable; the message says what to fix."""


def read_urbansound8k(root: Path) -> pd.DataFrame:
    """Read ``<root>/metadata/UrbanSound8K.csv`` and normalize it."""
    return read_table(root, URBANSOUND8K)


def read_table(root: Path, layout: Layout = URBANSOUND8K) -> pd.DataFrame:
    """Read a layout's metadata CSV under ``root``, check its columns and normalize it."""
    csv_path = Path(root) / layout.csv
    if not csv_path.is_file():
        raise MetadataError(f"{csv_path} not found: a folder in {layout.name} layout holds {layout.describe()}")
    try:
        table = pd.read_csv(csv_path)
        # Names are text as written: pandas would read a class named "NA", "null" or "nan", or an empty cell,
        # as a missing value and the class names would shift against the labels.
        text = [c for c in _TEXT_COLUMNS if c in table.columns]
        if text:
            raw = pd.read_csv(csv_path, usecols=text, dtype=str, keep_default_na=False)
            for column in text:
                table[column] = raw[column].to_numpy()
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise MetadataError(f"{csv_path} is not a readable CSV table ({exc}); restore the original file") from exc
    missing = [c for c in layout.columns if c not in table.columns]
    if missing:
        raise MetadataError(f"{csv_path} lacks the columns {missing}; expected {','.join(layout.columns)}")
    name_column = "class" if layout is URBANSOUND8K else "category"
    empty = table.index[table[name_column].astype(str).str.strip() == ""]
    if len(empty):
        raise MetadataError(f"{csv_path}: {len(empty)} rows have no {name_column} name (first: row {int(empty[0]) + 2} "
                            f"of the file); fill it in or remove the rows")
    if layout is ESC50:
        return normalize_esc50(table, csv_path)
    return normalize_urbansound8k(table, csv_path)


# Columns read as text whatever they hold (file and class names).
_TEXT_COLUMNS = ("slice_file_name", "class", "filename", "category")


def _int_column(table: pd.DataFrame, column: str, origin: Path | str) -> pd.Series:
    """A column of whole numbers ("3", "3.0"); blanks, text, fractions, infinities and numbers too large for an
    integer are a MetadataError naming the rows."""
    values = pd.to_numeric(table[column], errors="coerce")
    bad = values.isna() | ~np.isfinite(values.astype(float)) | (values.astype(float).abs() > 2**31) \
        | (values != values.round())
    if bad.any():
        rows = [int(i) + 2 for i in table.index[bad][:5]]
        raise MetadataError(f"{origin}: {int(bad.sum())} {column} values are not whole numbers (rows {rows} of the "
                            f"file, e.g. {table[column][bad].iloc[0]!r}); fix them or restore the original file")
    return values.astype(np.int64)


def _finish(out: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """Labels from the class numbers present (so a subset still gets 0..K-1); normalized columns first."""
    out["label"] = reindexed_labels(out[id_column])
    ordered = list(NORMALIZED_COLUMNS) + [c for c in out.columns if c not in NORMALIZED_COLUMNS]
    return out[ordered].reset_index(drop=True)


def reindexed_labels(class_numbers: pd.Series) -> pd.Series:
    """0..K-1 in the order of the source's class numbers (the full UrbanSound8K keeps label == classID)."""
    numbers = sorted(int(c) for c in class_numbers.unique())
    return class_numbers.astype(int).map({n: i for i, n in enumerate(numbers)})


def normalize_urbansound8k(table: pd.DataFrame, origin: Path | str = "UrbanSound8K.csv") -> pd.DataFrame:
    """Add filepath/fold/label/class to an UrbanSound8K table."""
    out = table.copy()
    out["fold"] = _int_column(out, "fold", origin)
    out["classID"] = _int_column(out, "classID", origin)
    out["filepath"] = "audio/fold" + out["fold"].astype(str) + "/" + out["slice_file_name"].astype(str)
    return _finish(out, "classID")


def normalize_esc50(table: pd.DataFrame, origin: Path | str = "esc50.csv") -> pd.DataFrame:
    """Add filepath/fold/label/class to an ESC-50 table (audio/<filename>; class from category)."""
    out = table.copy()
    out["fold"] = _int_column(out, "fold", origin)
    out["target"] = _int_column(out, "target", origin)
    out["class"] = out["category"].astype(str)
    out["filepath"] = "audio/" + out["filename"].astype(str)
    return _finish(out, "target")


def _truthy(values: pd.Series) -> pd.Series:
    return values.astype(str).str.strip().str.lower().isin({"true", "1", "yes"})


def select_esc10(table: pd.DataFrame, origin: Path | str = "esc50.csv") -> pd.DataFrame:
    """The ESC-10 subset of a normalized ESC-50 table, labels re-indexed 0..9."""
    if "esc10" not in table.columns:
        raise MetadataError(f"{origin} has no esc10 column: --esc10 applies to ESC-50 only")
    out = table[_truthy(table["esc10"])].copy()
    if out.empty:
        raise MetadataError(f"{origin}: no row has esc10 == True; restore the original esc50.csv")
    out["label"] = reindexed_labels(out["target"])
    return out.reset_index(drop=True)


def select_classes(table: pd.DataFrame, classes: list[str] | None, id_column: str,
                   origin: Path | str = "the metadata") -> pd.DataFrame:
    """Keep the rows of the named classes (all when None or empty); labels re-indexed 0..K-1."""
    if not classes:
        return table
    known = sorted(table["class"].unique())
    unknown = [c for c in classes if c not in set(known)]
    if unknown:
        raise MetadataError(f"--classes: unknown classes {unknown} in {origin}; known classes: {', '.join(known)}")
    out = table[table["class"].isin(classes)].copy()
    out["label"] = reindexed_labels(out[id_column])
    return out.reset_index(drop=True)


def label_map(table: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """label, class and the source's class number, one row per class, ordered by label."""
    pairs = table[["label", "class", id_column]].drop_duplicates().sort_values("label")
    return pairs.rename(columns={id_column: f"source_{id_column}"}).reset_index(drop=True)


def class_names_of(table: pd.DataFrame) -> list[str]:
    """Class names ordered by label (label i -> names[i])."""
    pairs = table[["label", "class"]].drop_duplicates().sort_values("label")
    return pairs["class"].tolist()


def validate(table: pd.DataFrame, root: Path | None = None, folds: range | None = None,
             contiguous_labels: bool = True) -> None:
    """Raise MetadataError naming every problem found; check files on disk when root is given.
    ``contiguous_labels``: labels must be exactly 0..K-1 (a features index may lack a class whose clips
    were all skipped)."""
    problems: list[str] = []
    missing = [c for c in NORMALIZED_COLUMNS if c not in table.columns]
    if missing:
        raise MetadataError(f"metadata table lacks the columns {missing}")
    if table.empty:
        raise MetadataError("metadata table has no rows")
    for column in ("fold", "label"):  # a truncated or edited table: blanks, text, fractions
        values = pd.to_numeric(table[column], errors="coerce")
        bad = table.index[values.isna() | (values != values.round())]
        if len(bad):
            raise MetadataError(f"{len(bad)} rows have no whole-number {column!r} (first: row {int(bad[0]) + 2} of "
                                "the file); the table is truncated or damaged")
    if folds is not None:
        out_of_range = sorted({int(f) for f in table["fold"]} - set(folds))
        if out_of_range:
            problems.append(f"folds {out_of_range} outside {folds.start}..{folds.stop - 1}")
    unsafe = [p for p in table["filepath"] if not is_safe_relpath(str(p))]
    if unsafe:
        problems.append(f"{len(unsafe)} file paths are absolute or climb out with '..', e.g. {unsafe[0]}; "
                        "fix the file names in the metadata")
    duplicated = table["filepath"][table["filepath"].duplicated()]
    if not duplicated.empty:
        problems.append(f"{len(duplicated)} duplicated file paths, e.g. {duplicated.iloc[0]}")
    per_label = table.groupby("label")["class"].nunique()
    per_class = table.groupby("class")["label"].nunique()
    if (per_label > 1).any() or (per_class > 1).any():
        problems.append("labels and class names do not map one to one")
    labels = sorted(int(v) for v in table["label"].unique())
    if contiguous_labels and labels != list(range(len(labels))):
        problems.append(f"labels must be 0..K-1 without gaps, got {labels}")
    if root is not None:
        absent = [p for p in table["filepath"] if not (root / p).is_file()]
        if absent:
            problems.append(
                f"{len(absent)} listed files are missing under {root}, e.g. {absent[:3]}; "
                "restore them or remove their rows from the metadata"
            )
    if problems:
        raise MetadataError("invalid metadata: " + "; ".join(problems))


FEATURES_INDEX = "features.csv"  # a features dataset's clip index: the metadata table plus feature_path
FEATURES_CONFIG = "features.json"  # its feature config, class names and array shape


def dataset_kind(files: list[str] | set[str]) -> str:
    """'features' (made by preprocessing.py), 'raw' (made by get_data.py) or 'unknown', from a dataset's files."""
    files = set(files)
    if FEATURES_CONFIG in files and FEATURES_INDEX in files:
        return "features"
    if METADATA_FILE in files:
        return "raw"
    return "unknown"


def validate_features_index(index: pd.DataFrame, class_names: list[str], origin: str) -> None:
    """The clip index of a features dataset: the metadata checks plus feature paths and labels that
    index ``class_names``. Raises MetadataError naming ``origin``."""
    try:
        missing = [c for c in (*NORMALIZED_COLUMNS, "feature_path") if c not in index.columns]
        if missing:
            raise MetadataError(f"the columns {missing} are missing")
        labels = pd.to_numeric(index["label"], errors="coerce")
        outside = sorted({int(v) for v in labels.dropna() if v == round(v)} - set(range(len(class_names))))
        if outside:
            raise MetadataError(f"labels {outside} are outside the {len(class_names)} classes of features.json")
        validate(index, contiguous_labels=False)
        unsafe = [p for p in index["feature_path"].astype(str) if not is_safe_relpath(p)]
        if unsafe or index["feature_path"].isna().any():
            raise MetadataError(f"unsafe or empty feature paths, e.g. {unsafe[:1]}")
    except MetadataError as exc:
        raise MetadataError(f"{origin}: {exc}") from None


def feature_path(audio_path: str) -> str:
    """Where the features dataset keeps a clip's spectrogram: features/<audio path>.npy."""
    return "features/" + str(Path(audio_path).with_suffix(".npy").as_posix())


def is_safe_relpath(path: str) -> bool:
    """A relative POSIX path that stays inside the dataset root."""
    if not path or path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path):
        return False
    return ".." not in PurePosixPath(path.replace("\\", "/")).parts


# ----------------------------------------------------------------------------- clip checks
# Subtypes in which every byte pattern is a valid, finite sample: once the header is sound and the file holds
# all the bytes the header declares, such a clip decodes; no full read is needed.
_PLAIN_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "ULAW", "ALAW"})
_PLAIN_FORMATS = frozenset({"WAV", "WAVEX", "W64", "RF64", "AIFF", "AU"})  # uncompressed containers (not FLAC)
_NO_SIZE = (0, 0xFFFFFFFF)  # data sizes that streaming writers leave in the header


AUDIO_INFO_COLUMNS = ("filepath", "duration_s", "samplerate", "channels", "frames", "format", "subtype")


@dataclass
class ClipReport:
    """The clips to use and the ones left out, with the reason (columns filepath, reason), and the header of
    every kept clip as the probe read it (``audio_info``: AUDIO_INFO_COLUMNS, one row per row of ``kept``)."""

    kept: pd.DataFrame
    skipped: pd.DataFrame
    audio_info: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(AUDIO_INFO_COLUMNS)))


@dataclass(frozen=True)
class ClipHeader:
    """What a clip's header says (the fields of ``soundfile.info``); duration_s = frames / samplerate."""

    samplerate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.samplerate if self.samplerate > 0 else 0.0


def _wav_truncation(path: Path, size: int) -> str | None:
    """A reason when a RIFF/WAVE file holds fewer audio bytes than its header declares.

    libsndfile reads such a file without complaint (it returns the frames that are there), so this is
    checked here from the chunk headers.
    """
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk = fh.read(8)
            chunk_id, chunk_size = chunk[:4], int.from_bytes(chunk[4:8], "little")
            if chunk_id == b"data":
                available = size - pos - 8
                if chunk_size not in _NO_SIZE and available < chunk_size:
                    return f"truncated: the WAV header declares {chunk_size} bytes of audio, the file holds {available}"
                return None
            pos += 8 + chunk_size + (chunk_size & 1)
    return None


def _decode_error(exc: Exception) -> str:
    text = getattr(exc, "error_string", None) or str(exc)
    return f"cannot decode: {text.strip().rstrip('.')}"


def probe_clip(path: Path | str) -> str | None:
    """None for a clip that decodes to finite samples, else a short reason for the report.

    Reasons: missing, empty, truncated, not audio (cannot decode), zero frames, NaN or Inf samples.
    Plain PCM, u-law and A-law clips with a sound header are accepted without decoding every frame;
    float and compressed ones (FLAC, ADPCM, ...) are decoded in blocks to the end.
    """
    return inspect_clip(path)[0]


def inspect_clip(path: Path | str) -> tuple[str | None, ClipHeader | None]:
    """(reason, header): :func:`probe_clip`'s reason, and the header it read on the way (None when the file
    has no readable header), so the integrity pass also gives the audio report without opening a file twice."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return MISSING, None
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}", None
    if not path.is_file():
        return MISSING, None
    if size == 0:
        return "empty file (0 bytes)", None
    header = None
    try:
        truncated = _wav_truncation(path, size)
        if truncated:
            return truncated, None
        with sf.SoundFile(str(path)) as fh:
            header = ClipHeader(samplerate=int(fh.samplerate), channels=int(fh.channels), frames=int(fh.frames),
                                format=str(fh.format), subtype=str(fh.subtype))
            if fh.format in _PLAIN_FORMATS and fh.subtype in _PLAIN_SUBTYPES:
                return (None if fh.frames > 0 else "zero frames"), header
            frames = 0
            for block in fh.blocks(blocksize=1 << 16, dtype="float32", always_2d=True):
                if not np.isfinite(block).all():
                    return "NaN or Inf samples", header
                frames += block.shape[0]
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
        return _decode_error(exc), header
    return (None if frames > 0 else "zero frames"), header


def unlisted_files(root: Path, audio_dir: str, listed: set[str]) -> list[str]:
    """Files under ``root/audio_dir`` (relative POSIX paths) that no metadata row lists; hidden files
    (.DS_Store, ._* macOS forks) are ignored."""
    base = Path(root) / audio_dir
    if not base.is_dir():
        return []
    found = []
    for folder, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            rel = (Path(folder) / name).relative_to(root).as_posix()
            if rel not in listed:
                found.append(rel)
    return sorted(found)


def check_clips(table: pd.DataFrame, root: Path, audio_dir: str = "audio", listed: set[str] | None = None,
                workers: int = 2, progress: bool = True) -> ClipReport:
    """Probe every listed clip (threads: libsndfile releases the GIL) and find files nobody lists.

    ``listed`` is every path the source's table names (default: the table's), so clips of classes
    left out on purpose are not reported as unlisted. Clips that fail are dropped from ``kept``.
    """
    root = Path(root)
    paths = table["filepath"].astype(str).tolist()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, cancelled_on_error(pool):
        probed = list(tqdm(pool.map(lambda rel: inspect_clip(root / rel), paths), total=len(paths),
                           desc="checking clips", unit="clip", disable=not progress))
    reasons = [reason for reason, _ in probed]
    bad = [(p, r) for p, r in zip(paths, reasons) if r is not None]
    extra = [(p, UNLISTED) for p in unlisted_files(root, audio_dir, set(paths) if listed is None else listed)]
    skipped = pd.DataFrame(sorted(bad + extra), columns=list(SKIPPED_COLUMNS))
    kept = table[[r is None for r in reasons]].reset_index(drop=True)
    info = pd.DataFrame([(p, h.duration_s, h.samplerate, h.channels, h.frames, h.format, h.subtype)
                         for p, (r, h) in zip(paths, probed) if r is None], columns=list(AUDIO_INFO_COLUMNS))
    return ClipReport(kept=kept, skipped=skipped, audio_info=info)
