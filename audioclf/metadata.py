"""One normalized metadata table for every source, and its validation.

Columns every stage relies on:
- ``filepath``: the clip's path relative to the dataset root (POSIX separators);
- ``fold``: int, the predefined cross-validation fold;
- ``label``: int in 0..K-1, the index into the dataset's class names;
- ``class``: the class name.
The source's own columns (UrbanSound8K's slice_file_name, fsID, salience, ...)
are kept beside them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

URBANSOUND8K_COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
URBANSOUND8K_CSV = Path("metadata") / "UrbanSound8K.csv"
NORMALIZED_COLUMNS = ("filepath", "fold", "label", "class")
METADATA_FILE = "metadata.csv"  # the normalized table, stored at the root of the raw dataset


class MetadataError(ValueError):
    """The metadata table is unusable; the message says what to fix."""


def read_urbansound8k(root: Path) -> pd.DataFrame:
    """Read ``<root>/metadata/UrbanSound8K.csv`` and normalize it."""
    csv_path = root / URBANSOUND8K_CSV
    if not csv_path.is_file():
        raise MetadataError(
            f"{csv_path} not found: an UrbanSound8K folder holds metadata/UrbanSound8K.csv and audio/fold1..fold10/"
        )
    table = pd.read_csv(csv_path)
    missing = [c for c in URBANSOUND8K_COLUMNS if c not in table.columns]
    if missing:
        raise MetadataError(
            f"{csv_path} lacks the columns {missing}; expected {','.join(URBANSOUND8K_COLUMNS)}"
        )
    return normalize_urbansound8k(table, csv_path)


def normalize_urbansound8k(table: pd.DataFrame, origin: Path | str = "UrbanSound8K.csv") -> pd.DataFrame:
    """Add filepath/fold/label/class to an UrbanSound8K table."""
    bad_fold = pd.to_numeric(table["fold"], errors="coerce").isna()
    if bad_fold.any():
        raise MetadataError(f"{origin}: non-numeric fold values in rows {list(table.index[bad_fold][:5])}")
    out = table.copy()
    out["fold"] = out["fold"].astype(int)
    # Labels index the classes present, in classID order: the full dataset keeps label == classID,
    # and a subset (a few clips, or selected classes) still gets labels 0..K-1.
    class_ids = sorted(int(c) for c in out["classID"].unique())
    out["label"] = out["classID"].astype(int).map({cid: i for i, cid in enumerate(class_ids)})
    out["filepath"] = "audio/fold" + out["fold"].astype(str) + "/" + out["slice_file_name"].astype(str)
    ordered = list(NORMALIZED_COLUMNS) + [c for c in out.columns if c not in NORMALIZED_COLUMNS]
    return out[ordered].reset_index(drop=True)


def class_names_of(table: pd.DataFrame) -> list[str]:
    """Class names ordered by label (label i -> names[i])."""
    pairs = table[["label", "class"]].drop_duplicates().sort_values("label")
    return pairs["class"].tolist()


def validate(table: pd.DataFrame, root: Path | None = None, folds: range | None = None) -> None:
    """Raise MetadataError naming every problem found; check files on disk when root is given."""
    problems: list[str] = []
    missing = [c for c in NORMALIZED_COLUMNS if c not in table.columns]
    if missing:
        raise MetadataError(f"metadata table lacks the columns {missing}")
    if table.empty:
        raise MetadataError("metadata table has no rows")
    if folds is not None:
        out_of_range = sorted({int(f) for f in table["fold"]} - set(folds))
        if out_of_range:
            problems.append(f"folds {out_of_range} outside {folds.start}..{folds.stop - 1}")
    duplicated = table["filepath"][table["filepath"].duplicated()]
    if not duplicated.empty:
        problems.append(f"{len(duplicated)} duplicated file paths, e.g. {duplicated.iloc[0]}")
    per_label = table.groupby("label")["class"].nunique()
    per_class = table.groupby("class")["label"].nunique()
    if (per_label > 1).any() or (per_class > 1).any():
        problems.append("labels and class names do not map one to one")
    labels = sorted(int(v) for v in table["label"].unique())
    if labels != list(range(len(labels))):
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


def feature_path(audio_path: str) -> str:
    """Where the features dataset keeps a clip's spectrogram: features/<audio path>.npy."""
    return "features/" + str(Path(audio_path).with_suffix(".npy").as_posix())
