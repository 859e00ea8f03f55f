"""Small parts of training: fold splits, augmentation, feature loading, metrics and model files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from audioclf import evaluation
from audioclf.errors import UserError
from audioclf.models import ARCHITECTURES, MODEL_FORMAT, AudioClassifier, load_model, save_model
from audioclf.trainer import augment, default_val_fold, load_features, split_by_fold

MELS, FRAMES = 64, 173


# --- helpers -------------------------------------------------------------------------------------

def ten_folds(per_fold: int = 4, seed: int = 0) -> np.ndarray:
    folds = np.repeat(np.arange(1, 11), per_fold)
    return np.random.default_rng(seed).permutation(folds)


def spectrograms(batch: int, seed: int = 0, mels: int = MELS, frames: int = FRAMES) -> torch.Tensor:
    """Distinct values everywhere (so positions can be traced), a dB-like range."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, mels, frames, generator=gen) * 10 - 40


def find_shift(out: torch.Tensor, clip: torch.Tensor, floor: torch.Tensor) -> int | None:
    """The circular time shift s with out == roll(clip, s) wherever out is not the floor."""
    for s in range(clip.shape[-1]):
        rolled = torch.roll(clip, s, dims=-1)
        if bool(((out == rolled) | (out == floor)).all()):
            return s
    return None


def band(mask_1d: torch.Tensor) -> bool:
    """True when the True entries form one contiguous run (or there are none)."""
    idx = torch.nonzero(mask_1d).flatten()
    return idx.numel() == 0 or int(idx[-1] - idx[0] + 1) == idx.numel()


def trained_looking_model(arch: str, num_classes: int = 10) -> AudioClassifier:
    """A model whose state differs from a fresh one: normalization set, BatchNorm statistics updated."""
    torch.manual_seed(1)
    model = AudioClassifier(arch, num_classes)
    model.set_normalization(-35.0, 12.5)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_()
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
            elif name.endswith("num_batches_tracked"):
                buffer.fill_(7)
    return model.eval()


# --- split_by_fold -------------------------------------------------------------------------------

@pytest.mark.parametrize("test_fold,val_fold", [(10, 9), (1, 10), (5, 4), (3, 7)])
def test_split_is_disjoint_complete_and_keeps_folds_apart(test_fold, val_fold):
    folds = ten_folds()
    split = split_by_fold(folds, test_fold, val_fold)

    train, val, test = set(split.train.tolist()), set(split.val.tolist()), set(split.test.tolist())
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(range(len(folds)))
    assert (folds[split.test] == test_fold).all() and len(split.test) == 4
    assert (folds[split.val] == val_fold).all() and len(split.val) == 4
    assert not np.isin(folds[split.train], [test_fold, val_fold]).any()
    assert (split.test_fold, split.val_fold) == (test_fold, val_fold)


def test_split_accepts_numpy_integer_folds_from_pandas():
    folds = pd.Series(ten_folds()).to_numpy()
    split = split_by_fold(folds, np.int64(2), 1)
    assert len(split.train) == 32


@pytest.mark.parametrize("test_fold,val_fold,flag", [(11, 9, "--test-fold"), (0, 9, "--test-fold"),
                                                     (10, 11, "--val-fold"), (10, -1, "--val-fold")])
def test_split_unknown_folds_raise_naming_the_flag(test_fold, val_fold, flag):
    with pytest.raises(UserError, match=flag) as info:
        split_by_fold(ten_folds(), test_fold, val_fold)
    assert "1, 2, 3" in str(info.value)  # lists the folds there are


def test_split_val_equal_to_test_raises():
    with pytest.raises(UserError, match="--val-fold must differ from --test-fold"):
        split_by_fold(ten_folds(), 4, 4)


@pytest.mark.parametrize("folds, test_fold, val_fold, named", [([1, 1, 2, 2], 1, 2, r"2 fold\(s\), \[1, 2\]"),
                                                                 ([1, 1, 1], 1, 0, r"1 fold\(s\), \[1\]")])
def test_a_dataset_of_fewer_than_three_folds_is_refused_saying_so(folds, test_fold, val_fold, named):
    # One fold used to answer "--val-fold must differ from --test-fold" to a user who gave neither.
    val_fold = val_fold or default_val_fold(test_fold, folds)
    with pytest.raises(UserError, match=named + ": training needs three"):
        split_by_fold(np.array(folds), test_fold, val_fold)


@pytest.mark.parametrize("test_fold,expected", [(10, 9), (1, 10), (2, 1), (5, 4)])
def test_default_val_fold_is_the_previous_fold_wrapping_around(test_fold, expected):
    assert default_val_fold(test_fold, list(range(1, 11))) == expected


def test_default_val_fold_with_unordered_and_sparse_folds():
    folds = [7, 2, 5]
    assert default_val_fold(5, folds) == 2
    assert default_val_fold(2, folds) == 7
    assert default_val_fold(7, folds) == 5


# --- augment -------------------------------------------------------------------------------------

def test_augment_keeps_shape_and_dtype():
    for dtype in (torch.float32, torch.float16):
        x = spectrograms(3).to(dtype)
        out = augment(x, torch.Generator().manual_seed(0))
        assert out.shape == x.shape and out.dtype == dtype


def test_augment_is_deterministic_for_a_seeded_generator():
    x = spectrograms(8)
    a = augment(x, torch.Generator().manual_seed(123))
    b = augment(x, torch.Generator().manual_seed(123))
    c = augment(x, torch.Generator().manual_seed(124))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_augment_changes_the_input_and_not_in_place():
    x = spectrograms(8)
    before = x.clone()
    out = augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(x, before)
    assert not torch.equal(out, x)
    assert sum(not torch.equal(out[i], x[i]) for i in range(8)) >= 7


def test_augment_is_a_circular_shift_plus_masks_filled_with_the_clip_minimum():
    x = spectrograms(16, seed=2)
    out = augment(x, torch.Generator().manual_seed(7))

    shifts, masked_counts = [], []
    for i in range(len(x)):
        floor = x[i].min()
        masked = out[i] == floor
        # Every value is the input shifted in time, or the clip's own minimum.
        shift = find_shift(out[i], x[i], floor)
        assert shift is not None, f"clip {i}: not a time shift of its input plus floor-filled masks"
        shifts.append(shift)
        # The masked cells are the union of one band of mel rows and one band of frames.
        rows = masked.all(dim=1)
        cols = masked.all(dim=0)
        assert band(rows) and band(cols)
        original_min = torch.roll(x[i] == floor, shift, dims=-1)
        assert torch.equal(masked, rows[:, None] | cols[None, :] | original_min)
        assert rows.sum() <= MELS // 8 and cols.sum() <= FRAMES // 8
        masked_counts.append(int(masked.sum()))
    assert len(set(shifts)) > 1  # shifts are drawn per clip
    assert sum(c > 1 for c in masked_counts) >= 12  # most clips get a non-empty mask


# --- load_features -------------------------------------------------------------------------------

def test_load_features_reads_npy_files_into_one_float16_tensor(tmp_path):
    arrays = {f"features/fold1/{i}.npy": np.random.default_rng(i).normal(-40, 10, (8, 5)).astype(dtype)
              for i, dtype in enumerate([np.float16, np.float32, np.float16])}
    for rel, array in arrays.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        np.save(tmp_path / rel, array)

    out = load_features(lambda rel: tmp_path / rel, list(arrays), (8, 5), progress=False)

    assert out.dtype == torch.float16 and out.shape == (3, 8, 5)
    for i, array in enumerate(arrays.values()):
        np.testing.assert_array_equal(out[i].numpy(), array.astype(np.float16))


def test_load_features_of_nothing_is_empty(tmp_path):
    out = load_features(lambda rel: tmp_path / rel, [], (8, 5), progress=False)
    assert out.shape == (0, 8, 5)


def test_load_features_shape_mismatch_names_the_file(tmp_path):
    np.save(tmp_path / "good.npy", np.zeros((8, 5), np.float16))
    np.save(tmp_path / "bad.npy", np.zeros((8, 6), np.float16))
    with pytest.raises(UserError, match=r"bad\.npy.*\(8, 6\).*\(8, 5\)"):
        load_features(lambda rel: tmp_path / rel, ["good.npy", "bad.npy"], (8, 5), progress=False)


# --- evaluation ----------------------------------------------------------------------------------

Y_TRUE = np.array([0, 0, 1, 1, 2, 2])
Y_PRED = np.array([0, 1, 1, 1, 2, 0])
NAMES = ["a", "b", "c", "d"]  # "d" never occurs


def test_summary_on_a_known_example():
    result = evaluation.summary(Y_TRUE, Y_PRED)
    assert set(result) == {"accuracy", "f1_macro"}
    assert result["accuracy"] == pytest.approx(4 / 6)
    # per-class F1: a 0.5, b 0.8, c 2/3
    assert result["f1_macro"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert all(isinstance(v, float) for v in result.values())


def test_confusion_rows_are_true_classes():
    matrix = evaluation.confusion(Y_TRUE, Y_PRED, 4)
    np.testing.assert_array_equal(matrix, [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])


def test_per_class_table_on_a_known_example():
    table = evaluation.per_class_table(Y_TRUE, Y_PRED, NAMES)
    assert table["class"].tolist() == NAMES
    np.testing.assert_allclose(table["precision"], [0.5, 0.6667, 1.0, 0.0])
    np.testing.assert_allclose(table["recall"], [0.5, 1.0, 0.5, 0.0])
    np.testing.assert_allclose(table["f1"], [0.5, 0.8, 0.6667, 0.0])
    assert table["support"].tolist() == [2, 2, 2, 0]


def test_confusion_frame_labels():
    frame = evaluation.confusion_frame(evaluation.confusion(Y_TRUE, Y_PRED, 4), NAMES)
    assert frame.index.tolist() == NAMES and frame.columns.tolist() == NAMES
    assert frame.loc["c", "a"] == 1 and frame.loc["a", "c"] == 0


# --- models --------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_classifier_maps_spectrograms_to_logits(arch):
    model = AudioClassifier(arch, 10).eval()
    with torch.no_grad():
        logits = model(spectrograms(2))
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()


def test_architectures_cover_the_torchvision_backbones():
    assert set(ARCHITECTURES) == {"cnn", "compact", "resnet18", "resnet34", "efficientnet_b0", "mobilenet_v3"}


@pytest.mark.parametrize("arch", ["resnet34", "efficientnet_b0", "mobilenet_v3"])
def test_torchvision_backbones_take_one_channel_spectrograms(arch):
    model = AudioClassifier(arch, 7).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 64, 173)).shape == (2, 7)


def test_local_imagenet_weights_become_a_one_channel_stem(tmp_path):
    """--weights FILE: a 3-channel ImageNet state dict loads, and the stem sums its RGB filters."""
    import torchvision

    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    model = AudioClassifier("resnet18", 10, weights_file=str(tmp_path / "resnet18.pth"))
    stem = model.backbone.conv1.weight
    assert stem.shape[1] == 1
    torch.testing.assert_close(stem, reference.conv1.weight.sum(dim=1, keepdim=True))
    torch.testing.assert_close(model.backbone.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    with pytest.raises(UserError, match="does not hold resnet34 weights"):
        AudioClassifier("resnet34", 10, weights_file=str(tmp_path / "resnet18.pth"))
    with pytest.raises(UserError, match="compact CNN has no ImageNet weights"):
        AudioClassifier("compact", 10, weights_file=str(tmp_path / "resnet18.pth"))


def test_unknown_architecture_lists_the_choices():
    with pytest.raises(UserError) as info:
        AudioClassifier("vgg11", 10)
    message = str(info.value)
    assert "vgg11" in message and "compact" in message and "resnet18" in message


def test_normalization_is_applied_before_the_backbone():
    model = AudioClassifier("compact", 3).eval()
    x = spectrograms(2, mels=32, frames=48)
    with torch.no_grad():
        model.set_normalization(-40.0, 10.0)
        normalized = model(x)
        reference = model.backbone(((x + 40.0) / 10.0).unsqueeze(1))
    torch.testing.assert_close(normalized, reference)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_save_then_load_restores_the_model_and_the_bundle(tmp_path, arch):
    model = trained_looking_model(arch)
    path = tmp_path / "model.pt"
    names = [f"class{i}" for i in range(10)]
    feature_config = {"sample_rate": 22050, "n_mels": 64, "f_max": None, "top_db": 80.0}
    train_config = {"arch": arch, "epochs": 3, "lr": 0.003}
    metrics = {"test": {"accuracy": 0.5, "f1_macro": 0.4}, "best_epoch": 2, "class_names": names}

    save_model(path, model, names, feature_config, train_config, metrics)
    loaded, bundle = load_model(path)

    assert not loaded.training
    assert loaded.arch == arch
    state, restored = model.state_dict(), loaded.state_dict()
    assert restored.keys() == state.keys()
    assert all(torch.equal(restored[k], state[k]) for k in state)
    assert float(loaded.mean) == -35.0 and float(loaded.std) == 12.5
    assert bundle["format"] == MODEL_FORMAT
    assert bundle["class_names"] == names and bundle["num_classes"] == 10
    assert bundle["feature_config"] == feature_config
    assert bundle["train_config"] == train_config and bundle["metrics"] == metrics


def test_save_then_load_reproduces_identical_logits(tmp_path):
    model = trained_looking_model("compact")
    x = spectrograms(3, seed=9, mels=32, frames=48)
    with torch.no_grad():
        expected = model(x)
    path = tmp_path / "model.pt"
    save_model(path, model, [f"c{i}" for i in range(10)], {}, {}, {})

    loaded, _ = load_model(path)

    with torch.no_grad():
        assert torch.equal(loaded(x), expected)
        assert not torch.equal(AudioClassifier("compact", 10).eval()(x), expected)  # not a fresh model's


def test_saved_model_loads_with_plain_torch_load_weights_only(tmp_path):
    model = trained_looking_model("compact", num_classes=3)
    path = tmp_path / "model.pt"
    save_model(path, model, ["a", "b", "c"], {"n_mels": 64}, {"arch": "compact"}, {"acc": 1.0})

    bundle = torch.load(path, weights_only=True)

    assert bundle["format"] == MODEL_FORMAT and bundle["arch"] == "compact"
    state = model.state_dict()
    assert bundle["state_dict"].keys() == state.keys()
    assert all(torch.equal(bundle["state_dict"][k], state[k]) for k in state)


@pytest.mark.parametrize("content", ["dict", "tensor", "wrong format"])
def test_load_model_rejects_torch_files_that_are_not_models(tmp_path, content):
    path = tmp_path / "thing.pt"
    obj = {"dict": {"state_dict": {}}, "tensor": torch.zeros(3),
           "wrong format": {"format": "audioclf.model/0", "arch": "compact"}}[content]
    torch.save(obj, path)
    with pytest.raises(UserError, match="not a model file of this project"):
        load_model(path)


@pytest.mark.parametrize("payload", [b"this is a text file, not a model\n", b"", b"PK\x03\x04garbage"],
                         ids=["text", "empty", "broken-zip"])
def test_load_model_rejects_files_that_are_not_torch_files(tmp_path, payload):
    path = tmp_path / "model.pt"
    path.write_bytes(payload)
    with pytest.raises(UserError):
        load_model(path)


# --- --folds values, typed or read back from ClearML's Args/ -------------------------------------

@pytest.mark.parametrize("text, folds", [
    ("1,2,3", [1, 2, 3]), ("3, 1,1", [1, 3]), ("10", [10]), ("all", None), ("ALL", None),
    ("[1, 2, 3]", [1, 2, 3]), ("['1,2,3']", [1, 2, 3]), ("[]", None),
])
def test_parse_fold_list(text, folds):
    from audioclf.crossval import parse_fold_list

    assert parse_fold_list(text) == folds


@pytest.mark.parametrize("text", ["", ",", "1,x", "-1", "1.5", "[a]", "None"])
def test_parse_fold_list_rejects(text):
    from audioclf.crossval import parse_fold_list

    with pytest.raises(UserError, match="fold numbers"):
        parse_fold_list(text)


def test_training_accuracy_under_mixup_counts_the_label_that_dominates_the_mix(monkeypatch):
    """One lambda per batch: a batch mixed at lambda 0.05 is mostly the permuted clips, and a model that
    knows them is right about THEIR labels. Scored against the unpermuted labels it would read about 0.5."""
    from audioclf.trainer import TrainConfig, fit

    folds = ten_folds(per_fold=8)
    y = torch.from_numpy(np.arange(len(folds)) % 2).long()
    x = spectrograms(len(folds), mels=16, frames=32) * 0.1
    x[:, :8] += (y[:, None, None].float() * 2 - 1) * 20  # class 1 loud in the low bands, class 0 quiet
    lambdas = iter([0.05, 0.95] * 1000)
    monkeypatch.setattr(torch.distributions.Beta, "sample", lambda self, *a: torch.tensor(next(lambdas)))
    cfg = TrainConfig(arch="cnn", width=4, epochs=6, batch_size=16, lr=1e-2, mixup=0.4, augment=False,
                      channels_last=False)
    split = split_by_fold(folds, 10, 9)
    _, history = fit(AudioClassifier("cnn", 2, width=4), x.half(), y, split, cfg, torch.device("cpu"),
                     lambda *a: None, progress=False)
    assert history["val_accuracy"].iloc[-1] == 1.0  # the task is easy: the model knows the classes
    assert history["train_accuracy"].iloc[-1] >= 0.95


def _noisy_task(seed: int = 0):
    """Two classes a tiny CNN half-learns: validation accuracy goes up and down from epoch to epoch."""
    folds = ten_folds(per_fold=8, seed=seed)
    y = torch.from_numpy(np.arange(len(folds)) % 2).long()
    x = spectrograms(len(folds), seed=seed, mels=16, frames=32) * 0.3
    x[:, :4] += (y[:, None, None].float() * 2 - 1) * 1.5  # a weak cue under the noise
    return x.half(), y, split_by_fold(folds, 10, 9)


@pytest.mark.parametrize("select", ["last", "best-val"])
def test_fit_returns_the_weights_select_names(select):
    """select="last": the last epoch's weights and its validation accuracy; "best-val": the epoch with the best
    validation accuracy (the first of equals). Either way best_epoch/best_val_accuracy are the best epoch's."""
    from audioclf.trainer import TrainConfig, fit

    x, y, split = _noisy_task(seed=1)
    cfg = TrainConfig(arch="cnn", width=4, epochs=6, batch_size=16, lr=5e-2, augment=False, channels_last=False,
                      select=select)
    snapshots = {}
    model = AudioClassifier("cnn", 2, width=4)

    def log_scalar(tag, value, epoch):  # the last scalar of an epoch: the model holds that epoch's weights
        if tag == "lr/lr":
            snapshots[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    chosen, history = fit(model, x, y, split, cfg, torch.device("cpu"), log_scalar, progress=False)
    val = history["val_accuracy"].to_numpy()
    best_epoch = int(np.argmax(val)) + 1
    assert best_epoch < len(history), "the task must make the best epoch differ from the last"
    assert (chosen["best_epoch"], chosen["best_val_accuracy"]) == (best_epoch, val.max())
    epoch = len(history) if select == "last" else best_epoch
    assert (chosen["epoch"], chosen["val_accuracy"]) == (epoch, val[epoch - 1])
    for name, tensor in chosen["state"].items():
        assert torch.equal(tensor, snapshots[epoch][name]), name


def test_fit_rejects_an_unknown_select_mode():
    from audioclf.trainer import TrainConfig, fit

    x, y, split = _noisy_task()
    with pytest.raises(UserError, match="--select 'best'"):
        fit(AudioClassifier("cnn", 2, width=4), x, y, split, TrainConfig(width=4, epochs=1, select="best"),
            torch.device("cpu"), lambda *a: None, progress=False)


@pytest.mark.parametrize("select, where", [("last", "of the last epoch"), ("best-val", "of epoch 1")])
def test_fit_refuses_weights_that_stop_being_finite_while_the_loss_stays_finite(select, where):
    """A batch-norm statistic that becomes infinite leaves the training loss finite (training mode uses the
    batch's statistics) but the saved model would predict garbage: fit raises before returning any weights."""
    from audioclf.trainer import NonFiniteError, TrainConfig, fit

    x, y, split = _noisy_task()
    cfg = TrainConfig(arch="cnn", width=4, epochs=2, batch_size=16, lr=1e-2, augment=False, channels_last=False,
                      select=select)
    model = AudioClassifier("cnn", 2, width=4)
    running_var = next(buf for name, buf in model.named_buffers() if name.endswith("running_var"))
    losses = []

    def log_scalar(tag, value, epoch):
        if tag == "loss/train":
            losses.append(value)
        if tag == "lr/lr" and epoch == 1:  # after epoch 1's validation, before its weights are kept
            running_var.fill_(float("inf"))

    with pytest.raises(NonFiniteError, match=f"weights {where} are not finite: training diverged.*--lr"):
        fit(model, x, y, split, cfg, torch.device("cpu"), log_scalar, progress=False)
    assert losses and all(np.isfinite(losses))


def test_a_model_file_without_dropout_in_its_args_loads_with_the_old_head(tmp_path):
    # Files written before --dropout existed hold model_args without it; their head had dropout 0.3.
    model = AudioClassifier("cnn", 3, width=4, dropout=0.1).eval()
    save_model(tmp_path / "m.pt", model, ["a", "b", "c"], {}, {}, {})
    bundle = torch.load(tmp_path / "m.pt", weights_only=True)
    assert bundle["model_args"]["dropout"] == 0.1
    del bundle["model_args"]["dropout"]
    torch.save(bundle, tmp_path / "old.pt")
    old, _ = load_model(tmp_path / "old.pt")
    assert [m.p for m in old.modules() if isinstance(m, torch.nn.Dropout)] == [0.3]
    x = torch.randn(2, 64, 50)
    assert torch.equal(old(x), model(x))  # dropout changes nothing at inference


def test_a_torchvision_backbone_keeps_its_own_dropout():
    model = AudioClassifier("mobilenet_v3", 3, dropout=0.0)
    assert "dropout" not in model.model_args
    assert any(m.p > 0 for m in model.modules() if isinstance(m, torch.nn.Dropout))


def test_adding_a_config_field_keeps_the_hashes_of_the_committed_results():
    # benchmarks/results/*.csv key their rows by TrainConfig.spec(): a new field at the value every config had
    # before it must not orphan them, and any other value must give another hash.
    from pathlib import Path

    from audioclf.train_config import TrainConfig

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    specs = set(pd.read_csv(results / "accuracy-synthetic-n1200-seed0-v4.csv")["spec"].str[:10])
    assert TrainConfig().spec() in specs
    assert TrainConfig(dropout=0.5).spec() != TrainConfig().spec()


def test_a_checkpoint_from_before_a_field_existed_is_the_same_config():
    # --resume compares the checkpoint's recorded config: one written before --dropout existed has no such key.
    from audioclf.train_config import TrainConfig, same_config

    recorded = TrainConfig().to_dict()
    del recorded["dropout"]
    assert same_config(recorded, TrainConfig())
    assert not same_config(recorded, TrainConfig(dropout=0.5))
    assert not same_config({**recorded, "lr": 0.01}, TrainConfig())


def test_first_convs_doubles_the_first_block_and_travels_in_the_model_file(tmp_path):
    one, two = AudioClassifier("cnn", 3, width=4).eval(), AudioClassifier("cnn", 3, width=4, first_convs=2).eval()
    convs = [sum(isinstance(m, torch.nn.Conv2d) for m in model.backbone.features[0]) for model in (one, two)]
    assert convs == [1, 2]
    assert "first_convs" not in one.model_args  # files as before: they rebuild with one conv
    save_model(tmp_path / "m.pt", two, ["a", "b", "c"], {}, {}, {})
    loaded, bundle = load_model(tmp_path / "m.pt")
    assert bundle["model_args"]["first_convs"] == 2
    x = torch.randn(2, 64, 50)
    assert torch.equal(loaded(x), two(x))
    with pytest.raises(UserError, match="--first-convs must be 1 or 2"):
        AudioClassifier("cnn", 3, first_convs=3)
    from audioclf.train_config import TrainConfig, same_config

    assert TrainConfig(first_convs=2).spec() != TrainConfig().spec()
    recorded = TrainConfig().to_dict()
    del recorded["first_convs"]  # a checkpoint from before the field
    assert same_config(recorded, TrainConfig()) and not same_config(recorded, TrainConfig(first_convs=2))
