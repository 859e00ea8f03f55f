"""audioclf.metadata: UrbanSound8K normalization, reading errors, validation, class names, feature paths."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from audioclf.errors import UserError
from audioclf.metadata import (
    NORMALIZED_COLUMNS,
    URBANSOUND8K_COLUMNS,
    MetadataError,
    class_names_of,
    feature_path,
    normalize_urbansound8k,
    read_urbansound8k,
    validate,
)

CLASSES = ["air_conditioner", "car_horn", "children_playing"]


# --- helpers -------------------------------------------------------------------------------------

def us8k_table(rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    """An UrbanSound8K-style table from (slice_file_name, fold, classID) rows."""
    return pd.DataFrame({
        "slice_file_name": [r[0] for r in rows],
        "fsID": [1000 + i for i in range(len(rows))],
        "start": [0.5 * i for i in range(len(rows))],
        "end": [0.5 * i + 4.0 for i in range(len(rows))],
        "salience": [1 + i % 2 for i in range(len(rows))],
        "fold": [r[1] for r in rows],
        "classID": [r[2] for r in rows],
        "class": [CLASSES[r[2]] for r in rows],
    })


SAMPLE_ROWS = [
    ("100-0-0-0.wav", 1, 0),
    ("101-1-0-0.wav", 1, 1),
    ("102-2-0-0.wav", 2, 2),
    ("103-0-0-1.wav", 3, 0),
    ("104-1-0-0.wav", 10, 1),
]


def normalized(rows=SAMPLE_ROWS) -> pd.DataFrame:
    return normalize_urbansound8k(us8k_table(rows))


def write_us8k(root: Path, table: pd.DataFrame) -> Path:
    csv = root / "metadata" / "UrbanSound8K.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv, index=False)
    return csv


def touch_audio(root: Path, table: pd.DataFrame) -> None:
    for rel in table["filepath"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"RIFF")


def problems_of(table: pd.DataFrame, **kwargs) -> str:
    with pytest.raises(MetadataError) as info:
        validate(table, **kwargs)
    return str(info.value)


# --- normalize_urbansound8k ----------------------------------------------------------------------

def test_normalize_builds_filepath_from_fold_and_name():
    table = normalized()
    assert table["filepath"].tolist() == [
        "audio/fold1/100-0-0-0.wav", "audio/fold1/101-1-0-0.wav", "audio/fold2/102-2-0-0.wav",
        "audio/fold3/103-0-0-1.wav", "audio/fold10/104-1-0-0.wav",
    ]


def test_normalize_label_is_the_class_id_and_fold_is_int():
    table = normalized()
    assert table["label"].tolist() == [0, 1, 2, 0, 1]
    assert table["fold"].tolist() == [1, 1, 2, 3, 10]
    assert pd.api.types.is_integer_dtype(table["fold"])
    assert pd.api.types.is_integer_dtype(table["label"])
    assert table["class"].tolist() == [CLASSES[i] for i in [0, 1, 2, 0, 1]]


def test_normalize_column_order_and_keeps_the_original_columns():
    source = us8k_table(SAMPLE_ROWS)
    table = normalize_urbansound8k(source)
    assert list(table.columns[:4]) == ["filepath", "fold", "label", "class"] == list(NORMALIZED_COLUMNS)
    rest = list(table.columns[4:])
    assert rest == [c for c in URBANSOUND8K_COLUMNS if c not in NORMALIZED_COLUMNS]
    for column in URBANSOUND8K_COLUMNS:
        assert table[column].tolist() == source[column].tolist(), column


def test_normalize_does_not_modify_its_input_and_resets_the_index():
    source = us8k_table(SAMPLE_ROWS)
    source.index = [10, 20, 30, 40, 50]
    before = source.copy()
    table = normalize_urbansound8k(source)
    pd.testing.assert_frame_equal(source, before)
    assert table.index.tolist() == [0, 1, 2, 3, 4]


def test_normalize_accepts_fold_as_text():
    source = us8k_table(SAMPLE_ROWS)
    source["fold"] = source["fold"].astype(str)
    assert normalize_urbansound8k(source)["filepath"][4] == "audio/fold10/104-1-0-0.wav"


def test_normalize_rejects_non_numeric_folds_naming_rows_and_origin():
    source = us8k_table(SAMPLE_ROWS)
    source["fold"] = source["fold"].astype(object)
    source.loc[3, "fold"] = "three"
    with pytest.raises(MetadataError, match=r"origin\.csv: 1 fold values are not whole numbers \(rows \[5\] of the file, e\.g\. 'three'\)"):
        normalize_urbansound8k(source, "origin.csv")


# --- read_urbansound8k ---------------------------------------------------------------------------

def test_read_urbansound8k_reads_and_normalizes(tmp_path):
    write_us8k(tmp_path, us8k_table(SAMPLE_ROWS))
    table = read_urbansound8k(tmp_path)
    pd.testing.assert_frame_equal(table, normalized())


def test_read_urbansound8k_missing_csv_names_the_file(tmp_path):
    with pytest.raises(MetadataError) as info:
        read_urbansound8k(tmp_path)
    assert str(tmp_path / "metadata" / "UrbanSound8K.csv") in str(info.value)


def test_metadata_error_is_a_user_error():  # shown as one line, no traceback
    assert issubclass(MetadataError, UserError)


def test_read_urbansound8k_missing_columns_names_file_and_columns(tmp_path):
    csv = write_us8k(tmp_path, us8k_table(SAMPLE_ROWS).drop(columns=["salience", "classID"]))
    with pytest.raises(MetadataError) as info:
        read_urbansound8k(tmp_path)
    message = str(info.value)
    assert str(csv) in message
    assert "'salience'" in message and "'classID'" in message
    assert "'fsID'" not in message.split(";")[0]  # only the absent ones are listed as missing


# --- validate ------------------------------------------------------------------------------------

def test_validate_accepts_a_good_table_with_its_files(tmp_path):
    table = normalized()
    touch_audio(tmp_path, table)
    validate(table, root=tmp_path, folds=range(1, 11))  # no exception


def test_validate_missing_columns():
    message = problems_of(normalized().drop(columns=["label", "filepath"]))
    assert "'filepath'" in message and "'label'" in message


def test_validate_empty_table():
    message = problems_of(normalized().iloc[0:0])
    assert "no rows" in message


def test_validate_out_of_range_folds():
    table = normalized()
    table.loc[0, "fold"] = 0
    table.loc[1, "fold"] = 11
    message = problems_of(table, folds=range(1, 11))
    assert "folds [0, 11] outside 1..10" in message


def test_validate_ignores_folds_without_a_range():
    table = normalized()
    table.loc[0, "fold"] = 42
    validate(table)


def test_validate_duplicate_paths():
    table = normalized()
    table.loc[4, "filepath"] = table.loc[0, "filepath"]
    message = problems_of(table)
    assert "1 duplicated file paths" in message
    assert "audio/fold1/100-0-0-0.wav" in message


def test_validate_label_mapping_to_two_classes():
    table = normalized()
    table.loc[3, "class"] = "dog_bark"  # label 0 is now air_conditioner and dog_bark
    assert "one to one" in problems_of(table)


def test_validate_class_mapping_to_two_labels():
    table = normalized()
    table.loc[3, "label"] = 1  # air_conditioner is now labels 0 and 1
    assert "one to one" in problems_of(table)


def test_validate_label_gaps():
    table = normalized()
    table["label"] = table["label"].replace({2: 5})
    message = problems_of(table)
    assert "without gaps" in message and "[0, 1, 5]" in message


def test_validate_labels_must_start_at_zero():
    table = normalized()
    table["label"] = table["label"] + 1
    assert "without gaps" in problems_of(table)


def test_validate_missing_files_names_count_and_an_example(tmp_path):
    table = normalized()
    touch_audio(tmp_path, table.iloc[[0, 2, 4]])
    message = problems_of(table, root=tmp_path)
    assert "2 listed files are missing" in message
    assert str(tmp_path) in message
    assert "audio/fold1/101-1-0-0.wav" in message


def test_validate_reports_every_problem_at_once(tmp_path):
    table = normalized()
    table.loc[4, "filepath"] = table.loc[0, "filepath"]
    table["label"] = table["label"].replace({2: 7})
    table.loc[1, "fold"] = 12
    message = problems_of(table, root=tmp_path, folds=range(1, 11))
    for part in ("folds [12]", "duplicated", "without gaps", "listed files are missing"):
        assert part in message, part


# --- class_names_of, feature_path ----------------------------------------------------------------

def test_class_names_are_ordered_by_label():
    table = pd.DataFrame({"label": [2, 0, 1, 2, 0], "class": ["siren", "dog_bark", "drilling", "siren", "dog_bark"]})
    assert class_names_of(table) == ["dog_bark", "drilling", "siren"]


def test_class_names_of_normalized_table():
    assert class_names_of(normalized()) == CLASSES


@pytest.mark.parametrize("audio,expected", [
    ("audio/fold1/a.wav", "features/audio/fold1/a.npy"),
    ("audio/fold10/7061-6-0-0.wav", "features/audio/fold10/7061-6-0-0.npy"),
    ("audio/fold2/name.with.dots.flac", "features/audio/fold2/name.with.dots.npy"),
])
def test_feature_path(audio, expected):
    assert feature_path(audio) == expected


@pytest.mark.parametrize("value", ["1.5", "inf", "99999999999999999999999", ""])
def test_a_fold_that_is_no_whole_number_is_refused_not_truncated(value):
    source = us8k_table(SAMPLE_ROWS)
    source["fold"] = source["fold"].astype(object)
    source.loc[0, "fold"] = value
    with pytest.raises(MetadataError, match=r"origin\.csv: 1 fold values are not whole numbers \(rows \[2\]"):
        normalize_urbansound8k(source, "origin.csv")


@pytest.mark.parametrize("name", ["NA", "null", "None", "nan", "N/A"])
def test_a_class_named_like_a_missing_value_stays_a_class(tmp_path, name):
    table = us8k_table(SAMPLE_ROWS)
    table["class"] = table["class"].replace("car_horn", name)
    write_us8k(tmp_path, table)
    read = read_urbansound8k(tmp_path)
    assert class_names_of(read) == ["air_conditioner", name, "children_playing"]
    assert read["class"].tolist() == table["class"].tolist()


def test_an_empty_class_cell_is_refused_naming_the_row(tmp_path):
    table = us8k_table(SAMPLE_ROWS)
    table.loc[1, "class"] = ""
    write_us8k(tmp_path, table)
    with pytest.raises(MetadataError, match=r"1 rows have no class name \(first: row 3 of the file\)"):
        read_urbansound8k(tmp_path)
