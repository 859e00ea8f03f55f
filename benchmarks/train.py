"""Training speed and accuracy: the seed's training loop against ours, on the same features.

    python benchmarks/train.py                     # 1000 generated clips, 120 s per config, prints the table
    python benchmarks/train.py --clips 1000 --seconds 120 --model resnet18
    python benchmarks/train.py --features-dir DIR  # keep the features in DIR; a later run with it reuses them
    python benchmarks/train.py --clips 300 --seconds 20   # a quick check

Generates an UrbanSound8K-shaped dataset (audioclf.synthetic, real folds),
computes its log-mel features once at the default FeatureConfig (one float16
.npy per clip) and trains on folds 1-8, validates on fold 9 and tests on fold
10, with the SAME features for every loop:

* the seed's loop: a Dataset that np.loads one .npy per item, DataLoader(batch 4,
  shuffle, 1 worker), SGD(lr 0.002, momentum 0.9), StepLR(3, 0.1) per epoch,
  float32, no augmentation, on ResNet-18 from random weights with a 1-channel
  stem (AudioClassifier("resnet18", 10), so the model is identical to ours);
* ours: audioclf.trainer.fit with a TrainConfig (the whole set in one tensor,
  batches by indexing, on-device augmentation, AdamW one-cycle).

Speed: training samples per second of each loop with the same model (--model,
default resnet18), after a warm-up, on the CPU and on the GPU when there is one.
Accuracy: each of (a) the seed's config, (b) our default config (the compact
CNN) and (c) ours with --model gets the same wall-clock budget (--seconds) on
--device and reports validation and test accuracy. Time on a quiet machine: a
background job skews every number here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audioclf import evaluation, metadata  # noqa: E402
from audioclf.device import resolve_device  # noqa: E402
from audioclf.features import FeatureConfig  # noqa: E402
from audioclf.models import ARCHITECTURES, AudioClassifier  # noqa: E402
from audioclf.preprocess import extract_features  # noqa: E402
from audioclf.synthetic import generate_dataset  # noqa: E402
from audioclf.trainer import Split, TrainConfig, fit, load_features, predict_logits, split_by_fold  # noqa: E402

FEATURES_INDEX = "features.csv"  # the names preprocessing.py gives them: a features dataset folder works too
FEATURES_CONFIG = "features.json"
TEST_FOLD, VAL_FOLD = 10, 9

# The seed's training config.
SEED_ARCH = "resnet18"
SEED_BATCH = 4
SEED_WORKERS = 1
SEED_LR = 0.002
SEED_MOMENTUM = 0.9
SEED_STEP_SIZE = 3
SEED_GAMMA = 0.1
SEED_WARMUP_STEPS = 10  # batches before the seed's speed clock starts (worker start-up, first allocations)
BUDGET_MARGIN = 0.95  # ours plans its epochs for 95 % of the budget: a noisy epoch must not overrun it
SPEED_VAL_CLIPS = 64  # ours' speed runs validate on this many clips only, so the time is training time


# ----------------------------------------------------------------------------- data
def prepare_features(tmp: Path, clips: int, features_dir: Path | None, device: torch.device
                     ) -> tuple[Path, pd.DataFrame, dict, str]:
    """The features folder, its index (feature_path, fold, label, ...), its features.json and a note.

    A ``features_dir`` that already holds an index is reused as it is; otherwise the clips are generated
    in ``tmp`` and their features written to ``features_dir`` (kept) or to ``tmp`` (removed with it)."""
    if features_dir is not None and (features_dir / FEATURES_INDEX).is_file():
        index = pd.read_csv(features_dir / FEATURES_INDEX)
        info = json.loads((features_dir / FEATURES_CONFIG).read_text())
        return features_dir, index, info, f"reused from {features_dir}"

    out = features_dir if features_dir is not None else tmp / "features"
    data = tmp / "data"
    started = time.perf_counter()
    generate_dataset(data, num_clips=clips, seed=0, workers=os.cpu_count() or 1, progress=False)
    generated = time.perf_counter() - started
    table = metadata.read_urbansound8k(data)
    table["feature_path"] = table["filepath"].map(metadata.feature_path)
    config = FeatureConfig()
    jobs = [(row.filepath, data / row.filepath, out / row.feature_path) for row in table.itertuples()]
    started = time.perf_counter()
    report = extract_features(jobs, config, device, workers=os.cpu_count() or 1, progress=False)
    extracted = time.perf_counter() - started
    skipped = {name for name, _ in report.skipped}
    index = table[~table["filepath"].isin(skipped)].reset_index(drop=True)
    info = {"feature_config": config.to_dict(), "fingerprint": config.fingerprint(),
            "class_names": metadata.class_names_of(table), "num_clips": len(index), "num_skipped": len(skipped),
            "dtype": "float16", "shape": [config.n_mels, config.num_frames]}
    out.mkdir(parents=True, exist_ok=True)
    index.to_csv(out / FEATURES_INDEX, index=False)
    (out / FEATURES_CONFIG).write_text(json.dumps(info, indent=2) + "\n")
    where = f", kept in {out}" if features_dir is not None else ""
    return out, index, info, f"generated in {generated:.1f} s, features in {extracted:.1f} s{where}"


class SeedDataset(torch.utils.data.Dataset):
    """The seed's dataset: every item is an np.load of its own .npy file."""

    def __init__(self, paths: list[Path], labels: np.ndarray):
        self.paths = [str(p) for p in paths]
        self.labels = [int(v) for v in labels]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(np.load(self.paths[i]).astype(np.float32)), self.labels[i]


# ----------------------------------------------------------------------------- the two loops
def num_classes(y: torch.Tensor) -> int:
    return int(y.max()) + 1  # labels are 0..K-1 (metadata.normalize_urbansound8k)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class LoopResult:
    samples: int  # training samples processed inside the timed part
    seconds: float  # wall time of the timed part
    epochs: float  # epochs run in all (fractional for the seed, which stops mid-epoch)

    @property
    def rate(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")


def seed_train(model: AudioClassifier, dataset: SeedDataset, device: torch.device, seconds: float,
               warmup_steps: int = 0) -> LoopResult:
    """The seed's loop, stopped after ``seconds`` of wall time counted from the end of ``warmup_steps``
    batches (from the start when 0). The clock covers the DataLoader (its np.loads, worker start-ups
    each epoch), the copies to the device and the steps."""
    torch.manual_seed(0)  # the DataLoader's shuffle
    started = time.perf_counter()
    model.to(device)
    loader = torch.utils.data.DataLoader(dataset, batch_size=SEED_BATCH, shuffle=True, num_workers=SEED_WORKERS)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=SEED_LR, momentum=SEED_MOMENTUM)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=SEED_STEP_SIZE, gamma=SEED_GAMMA)
    steps, samples, seen = 0, 0, 0
    while True:
        model.train()
        for inputs, labels in loader:
            inputs, labels = inputs.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = criterion(model(inputs), labels)
            loss.backward()
            optimizer.step()
            steps += 1
            seen += len(labels)
            if steps == warmup_steps:
                _sync(device)
                started = time.perf_counter()
            elif steps > warmup_steps:
                samples += len(labels)
                if steps % 4 == 0:  # the GPU runs ahead; synchronise only now and then
                    _sync(device)
                    if time.perf_counter() - started >= seconds:
                        return LoopResult(samples, time.perf_counter() - started, seen / len(dataset))
        scheduler.step()


class EpochClock:
    """fit's log_scalar callback: the time at which each epoch's metrics are logged (after its
    validation pass; fit has synchronised with the device by then, through .item() and .cpu())."""

    def __init__(self):
        self.started = time.perf_counter()
        self.stamps: dict[int, float] = {}

    def __call__(self, tag: str, value: float, step: int) -> None:
        self.stamps.setdefault(step, time.perf_counter())


def ours_fit(arch: str, x: torch.Tensor, y: torch.Tensor, split: Split, device: torch.device,
             epochs: int, patience: int | None = None) -> tuple[AudioClassifier, dict, EpochClock, float]:
    """fit with the TrainConfig defaults but ``arch`` and ``epochs``: (model, best, epoch clock, wall s)."""
    cfg = TrainConfig(arch=arch, epochs=epochs)
    if patience is not None:
        cfg.patience = patience
    torch.manual_seed(cfg.seed)
    model = AudioClassifier(arch, num_classes(y))
    clock = EpochClock()
    best, _ = fit(model, x, y, split, cfg, device, clock, progress=False)
    return model, best, clock, time.perf_counter() - clock.started


def ours_speed(arch: str, x: torch.Tensor, y: torch.Tensor, split: Split, device: torch.device,
               seconds: float) -> LoopResult:
    """Our loop's training samples/s: epochs 2.. of a fit, timed from the end of epoch 1 (warm-up).

    fit cannot be stopped from outside, so a first 2-epoch fit gives the epoch time and the measured fit
    gets as many epochs as fill ``seconds``. Validation runs on SPEED_VAL_CLIPS clips only, so the
    time is that of the training loop (batching, augmentation, steps, per-epoch bookkeeping)."""
    speed_split = Split(train=split.train, val=split.val[:SPEED_VAL_CLIPS], test=split.test,
                        test_fold=split.test_fold, val_fold=split.val_fold)
    no_stop = 10**6  # early stopping would cut the measurement short
    _, _, clock, _ = ours_fit(arch, x, y, speed_split, device, epochs=2, patience=no_stop)
    epoch_s = clock.stamps[2] - clock.stamps[1]
    measured = min(500, max(1, math.ceil(seconds / epoch_s)))
    _, _, clock, _ = ours_fit(arch, x, y, speed_split, device, epochs=1 + measured, patience=no_stop)
    return LoopResult(measured * len(split.train), clock.stamps[1 + measured] - clock.stamps[1], 1 + measured)


# ----------------------------------------------------------------------------- accuracy in a budget
@dataclass
class BudgetResult:
    name: str
    epochs: float
    seconds: float
    val_accuracy: float
    test_accuracy: float
    note: str = ""


def accuracy(model: AudioClassifier, x: torch.Tensor, y: torch.Tensor, idx: np.ndarray, device: torch.device,
             amp: bool) -> float:
    sel = torch.from_numpy(idx)
    pred = predict_logits(model, x[sel], device, amp=amp).argmax(1).numpy()
    return evaluation.summary(y[sel].numpy(), pred)["accuracy"]


def seed_in_budget(dataset: SeedDataset, x, y, split: Split, norm: tuple[float, float], device: torch.device,
                   seconds: float) -> BudgetResult:
    torch.manual_seed(0)
    model = AudioClassifier(SEED_ARCH, num_classes(y))
    model.set_normalization(*norm)
    run = seed_train(model, dataset, device, seconds)
    # No selection in the seed: its final weights, in float32.
    return BudgetResult(f"(a) seed: {SEED_ARCH}, batch {SEED_BATCH}, SGD {SEED_LR}", run.epochs, run.seconds,
                        accuracy(model, x, y, split.val, device, amp=False),
                        accuracy(model, x, y, split.test, device, amp=False), "final weights")


def ours_in_budget(label: str, arch: str, x, y, split: Split, device: torch.device, seconds: float) -> BudgetResult:
    """fit with as many epochs as fit in ``seconds``, so that the one-cycle schedule ends within the budget.

    The one-cycle schedule is sized by ``epochs`` up front, and fit cannot be stopped from outside
    without losing its best weights, so the epoch count comes from a calibration: a 2-epoch fit gives
    the steady epoch time (epoch 2, validation included) and the one-off set-up (the rest of the time
    to the end of epoch 1); BUDGET_MARGIN leaves room for epochs slower than the calibration's. The
    calibration is a measurement, not training: it is not counted in the budget (its time is printed).
    Early stopping (the default patience) may end a run sooner."""
    _, _, clock, _ = ours_fit(arch, x, y, split, device, epochs=2)
    epoch_s = clock.stamps[2] - clock.stamps[1]
    setup_s = max(0.0, clock.stamps[1] - clock.started - epoch_s)
    calibration_s = clock.stamps[2] - clock.started
    epochs = max(1, math.floor((BUDGET_MARGIN * seconds - setup_s) / epoch_s))
    model, best, clock, wall = ours_fit(arch, x, y, split, device, epochs=epochs)
    model.load_state_dict(best["state"])  # the weights training.py tests (TrainConfig.select)
    amp = TrainConfig().amp
    note = (f"{len(clock.stamps)}/{epochs} epochs (~{epoch_s:.1f} s each, calibration {calibration_s:.1f} s "
            f"not counted), tested epoch {best['epoch']}")
    return BudgetResult(label, len(clock.stamps), wall, accuracy(model, x, y, split.val, device, amp),
                        accuracy(model, x, y, split.test, device, amp), note)


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=1000, help="generated clips (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="wall-clock budget of each config in the accuracy comparison (default: %(default)s)")
    parser.add_argument("--model", choices=ARCHITECTURES, default=SEED_ARCH,
                        help="model of both loops in the speed comparison, and of config (c) (default: %(default)s)")
    parser.add_argument("--speed-seconds", type=float, default=None,
                        help="timed part of each speed measurement (default: --seconds / 2, at most 30)")
    parser.add_argument("--device", default="auto",
                        help="device of the accuracy comparison: auto (CUDA when available), cpu or cuda "
                             "(default: %(default)s); the speed comparison runs on the CPU and on the GPU if any")
    parser.add_argument("--features-dir", type=Path, default=None,
                        help="keep the features (.npy files, features.csv, features.json) in this folder; "
                             "when it already holds them they are reused and --clips is ignored")
    parser.add_argument("--skip-accuracy", action="store_true", help="only the speed comparison")
    args = parser.parse_args(argv)
    reuse = args.features_dir is not None and (args.features_dir / FEATURES_INDEX).is_file()
    if not reuse and args.clips < 100:  # from 100 clips on, every fold holds every class (synthetic.select_rows)
        parser.error(f"--clips must be at least 100, got {args.clips}")
    if args.seconds <= 0 or (args.speed_seconds is not None and args.speed_seconds <= 0):
        parser.error("--seconds and --speed-seconds must be positive")
    command = shlex.join(["python", *(sys.argv if argv is None else [sys.argv[0], *argv])])
    speed_seconds = args.speed_seconds if args.speed_seconds is not None else min(30.0, args.seconds / 2)
    device = resolve_device(args.device)

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root, index, info, how = prepare_features(Path(tmp), args.clips, args.features_dir, device)
        shape = tuple(info["shape"])
        started = time.perf_counter()
        x = load_features(lambda rel: root / rel, index["feature_path"].tolist(), shape, progress=False)
        load_s = time.perf_counter() - started
        y = torch.from_numpy(index["label"].to_numpy()).long()
        split = split_by_fold(index["fold"].to_numpy(), TEST_FOLD, VAL_FOLD)
        train_x = x[torch.from_numpy(split.train)].float()
        norm = (float(train_x.mean()), float(train_x.std()))  # as fit sets them for ours
        del train_x
        dataset = SeedDataset([root / p for p in index["feature_path"].iloc[split.train]],
                              index["label"].to_numpy()[split.train])
        threads = torch.get_num_threads()
        print(f"{len(index)} clips ({how}); features {shape[0]}x{shape[1]} float16; train folds 1-8: "
              f"{len(split.train)}, val fold {VAL_FOLD}: {len(split.val)}, test fold {TEST_FOLD}: {len(split.test)}; "
              f"{threads} torch threads, {os.cpu_count()} cores")

        speed_devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
        speeds = []
        for dev in speed_devices:
            print(f"speed on {dev}: the seed's loop ({args.model}, {speed_seconds:.0f} s after "
                  f"{SEED_WARMUP_STEPS} warm-up batches) ...", flush=True)
            torch.manual_seed(0)
            model = AudioClassifier(args.model, num_classes(y))
            model.set_normalization(*norm)
            seed = seed_train(model, dataset, dev, speed_seconds, warmup_steps=SEED_WARMUP_STEPS)
            print(f"  seed: {seed.rate:.1f} samples/s; ours ({args.model}, epochs after a warm-up epoch) ...",
                  flush=True)
            ours = ours_speed(args.model, x, y, split, dev, speed_seconds)
            print(f"  ours: {ours.rate:.1f} samples/s", flush=True)
            speeds.append((dev, seed, ours))

        results: list[BudgetResult] = []
        if not args.skip_accuracy:
            print(f"accuracy in {args.seconds:.0f} s on {device}: (a) the seed's config ...", flush=True)
            results.append(seed_in_budget(dataset, x, y, split, norm, device, args.seconds))
            print(f"  (b) our default config ({TrainConfig().arch}) ...", flush=True)
            results.append(ours_in_budget(f"(b) ours default: {TrainConfig().arch}", TrainConfig().arch,
                                          x, y, split, device, args.seconds))
            print(f"  (c) ours with {args.model} ...", flush=True)
            results.append(ours_in_budget(f"(c) ours: {args.model}", args.model, x, y, split, device, args.seconds))

    print()
    print("training benchmark: the seed's loop against audioclf.trainer.fit, on the same features")
    print(f"command:  {command}")
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    print(f"machine:  {os.cpu_count()} cores, {threads} torch threads{gpu}; torch {torch.__version__}")
    print(f"data:     {len(index)} clips, {shape[0]}x{shape[1]} log-mel (default FeatureConfig); "
          f"train {len(split.train)} / val {len(split.val)} / test {len(split.test)} clips (folds 1-8 / 9 / 10); "
          f"our one-off feature load {load_s:.2f} s (not timed)")
    defaults = TrainConfig()
    print(f"ours:     TrainConfig defaults (batch {defaults.batch_size}, AdamW lr {defaults.lr} one-cycle, "
          f"augment {defaults.augment}, mixup {defaults.mixup}, amp {defaults.amp} on CUDA, "
          f"channels_last {defaults.channels_last}, compile {defaults.compile})")
    print()
    print(f"speed, {args.model}, training samples/s     seed loop        ours   ours/seed")
    for dev, seed, ours in speeds:
        name = f"{dev.type} ({torch.cuda.get_device_name()})" if dev.type == "cuda" else "cpu"
        print(f"  {name:38s}{seed.rate:10.1f}  {ours.rate:10.1f}  {ours.rate / seed.rate:9.2f}x")
    if not torch.cuda.is_available():
        print("  cuda: no GPU here, GPU numbers skipped")
    for dev, seed, ours in speeds:
        print(f"  ({dev.type}: seed {seed.samples} samples in {seed.seconds:.1f} s after {SEED_WARMUP_STEPS} warm-up "
              f"batches; ours {ours.samples} samples in {ours.seconds:.1f} s, {ours.epochs - 1:.0f} epochs after a "
              f"warm-up epoch)")
    if results:
        print()
        print(f"accuracy within {args.seconds:.0f} s of training on {device}   epochs   wall s   val acc   test acc")
        for r in results:
            over = "  OVER BUDGET" if r.seconds > 1.1 * args.seconds else ""
            print(f"  {r.name:40s}{r.epochs:6.1f}  {r.seconds:7.1f}   {r.val_accuracy:7.3f}   "
                  f"{r.test_accuracy:8.3f}{over}")
        for r in results:
            print(f"  {r.name.split(':')[0]}: {r.note}")
        print("  (ours: the weights TrainConfig.select names, the last epoch's by default; the seed: final weights, "
              "no per-epoch validation in its time)")


if __name__ == "__main__":
    main()
