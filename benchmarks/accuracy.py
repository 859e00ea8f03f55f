"""Accuracy over the predefined folds: our defaults against the old defaults and the seed's config.

    python benchmarks/accuracy.py                                    # built-in data, 1200 clips, all 10 folds
    python benchmarks/accuracy.py --source /data/UrbanSound8K        # the real dataset (or ESC-50's folder)
    python benchmarks/accuracy.py --folds 1,4,7,10 --budget 300      # 4 folds, 300 s of training per config
    python benchmarks/accuracy.py --budget defaults                  # each fold: the defaults' wall time for all
    python benchmarks/accuracy.py --configs defaults --config wide=defaults:width=48,epochs=40
    python benchmarks/accuracy.py --folds 1,4,7,10 --seeds 0,1,2       # 3 training seeds: error bars

For every test fold (validation: the fold before it) each config trains on the
other folds, keeps the weights its ``select`` names (the last epoch's, or the
best on the validation fold; the test fold takes part in no choice), and is
tested once on the test fold. The table gives per-fold accuracy, mean ± std of
accuracy and macro-F1 over the folds (population std, as UrbanSound8K papers
report) and the mean wall time per fold.

``--seeds 0,1,2`` runs every config on every fold once per training seed (the
seed of TrainConfig; the seed example's loop seeds torch with it), so that a
reader of any single-fold number knows its error bar. Per-fold cells and the
mean ± std over folds then use each fold's mean over seeds; "seed std" is the
std over seeds of one fold's accuracy (ddof 1), averaged over the folds: the
error bar of a single run on one fold; "SE/fold" is that over sqrt(seeds), the
error bar of a fold's mean over seeds. Every config after the first is compared
with the first, paired by fold and seed: the mean difference ± its SE (over the
folds' mean differences; over the seeds with one fold) and the runs won, tied
and lost. Without --seeds each config runs with its own seed (TrainConfig's
default, 0).

Configs: ``defaults`` (training.py's defaults, audioclf.trainer.TrainConfig),
``old-defaults`` (the compact CNN and settings used before the defaults were
chosen by cross-validation), ``seed`` (the seed example's loop: ResNet-18 from
random weights, SGD lr 0.002 momentum 0.9, StepLR(3, 0.1), batch 4, one .npy
read per item through a DataLoader, 10 epochs, its final weights), and any
``--config NAME=BASE:key=value,...`` (a TrainConfig field changed from ``defaults``
or ``old-defaults``). Every config gets the SAME features (the default
FeatureConfig, computed once into --work-dir and reused).

``--budget SECONDS`` gives every config the same wall time per fold: ours plan
their epochs from a calibration (3 epochs on the first fold, printed, not
counted) and then from each fold's measured epoch time, so that the one-cycle
schedule ends inside the budget; the seed's loop
stops when the budget is spent. Without it each config runs its own epochs.
``--budget defaults`` gives every config, on each fold, the wall time the
defaults took for their own schedule on that fold (they run first): equal time
that follows the machine, so that runs on machines of different speed, or a run
resumed in another session, compare the same recipes.

Results go to --results (CSV, one row per config, fold and seed) as they come:
a rerun with the same file skips what is done, so a long run can be resumed; a
CSV written before the seed column counts as seed 0 (the training default).
Time on a quiet machine: a background job skews wall times and budgets.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train import SEED_BATCH, SEED_GAMMA, SEED_LR, SEED_MOMENTUM, SEED_STEP_SIZE, SEED_WORKERS, SeedDataset  # noqa: E402

from audioclf import evaluation, metadata  # noqa: E402
from audioclf.crossval import parse_fold_list  # noqa: E402
from audioclf.errors import UserError  # noqa: E402
from audioclf.device import resolve_device  # noqa: E402
from audioclf.features import FeatureConfig  # noqa: E402
from audioclf.models import AudioClassifier  # noqa: E402
from audioclf.preprocess import extract_features  # noqa: E402
from audioclf.sources import detect_layout  # noqa: E402
from audioclf.synthetic import GENERATOR_VERSION, generate_dataset  # noqa: E402
from audioclf.train_config import named_config  # noqa: E402
from audioclf.trainer import (OLD_DEFAULTS, Split, TrainConfig, default_val_fold, fit, load_features,  # noqa: E402
                              predict_logits, split_by_fold)

SEED_EPOCHS = 10
BUDGET_MARGIN = 0.95  # ours plan their epochs for 95 % of the budget: a slow epoch must not overrun it
BASES = {"defaults": TrainConfig(), "old-defaults": OLD_DEFAULTS}
RESULT_COLUMNS = ["config", "spec", "data", "test_fold", "val_fold", "seed", "accuracy", "f1_macro",
                  "val_accuracy", "train_accuracy", "epochs", "best_epoch", "wall_s", "budget_s", "num_train",
                  "num_test"]
DEFAULT_SEED = TrainConfig().seed  # the seed of rows written before the seed column, and of the seed loop


# ----------------------------------------------------------------------------- configs
def parse_config(text: str) -> tuple[str, TrainConfig]:
    """'NAME=BASE:key=value,key=value' -> (NAME, the base TrainConfig with those fields changed)."""
    try:
        return named_config(text, BASES)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--config {text!r}: {exc}") from exc


def parse_budget(text: str) -> float | str:
    """'--budget': seconds (> 0) or 'defaults' (the defaults' own wall time on each fold)."""
    if text.strip().lower() == "defaults":
        return "defaults"
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"--budget {text!r}: expected seconds (> 0) or 'defaults'")
    return seconds


def seed_list(text: str) -> list[int]:
    """'--seeds': training seeds like 0,1,2 (the syntax of --folds, without 'all')."""
    try:
        seeds = parse_fold_list(text)
    except UserError:
        seeds = None
    if not seeds:
        raise argparse.ArgumentTypeError(f"--seeds takes seed numbers like 0,1,2; got {text!r}")
    return seeds


def fold_list(text: str) -> list[int]:
    """'--folds': 'all' -> [] (every fold of the data); '1,4,7' -> [1, 4, 7]."""
    try:
        folds = parse_fold_list(text)
    except UserError:
        raise argparse.ArgumentTypeError(f"--folds takes 'all' or fold numbers like 1,4,7,10; got {text!r}") from None
    return folds or []


def read_results(path: Path) -> pd.DataFrame:
    """The results CSV (empty when absent). Older files lack columns: ``data`` (rows from unknown data, never
    reused) and ``seed`` (rows trained with the default seed, DEFAULT_SEED). ValueError for a file that is
    not such a table."""
    if not path.is_file():
        return pd.DataFrame(columns=RESULT_COLUMNS)
    try:
        done = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as exc:  # ParserError and EmptyDataError are ValueErrors
        raise ValueError(f"--results {path} is not a readable CSV ({exc}); move it away to start afresh") from exc
    missing = [c for c in ("config", "spec", "test_fold", "accuracy") if c not in done.columns]
    if missing:
        raise ValueError(f"--results {path} lacks the columns {missing}: not a results file of this benchmark")
    if "data" not in done.columns:
        done["data"] = None
    done["seed"] = (pd.to_numeric(done["seed"], errors="coerce") if "seed" in done.columns
                    else pd.Series(float("nan"), index=done.index)).fillna(DEFAULT_SEED).astype(int)
    return done


def spec_of(cfg: TrainConfig | str) -> str:
    """A short hash of a config, so that results of a changed config are not mistaken for the old ones."""
    return cfg.spec() if isinstance(cfg, TrainConfig) else hashlib.sha256(cfg.encode()).hexdigest()[:10]


# ----------------------------------------------------------------------------- data
def prepare(args: argparse.Namespace, device: torch.device) -> tuple[Path, pd.DataFrame, dict]:
    """The features folder (one .npy per clip at the default FeatureConfig), its index and its info."""
    work = args.work_dir
    if args.source == "synthetic":
        root = work / f"synthetic-n{args.num_clips}-seed{args.data_seed}"
        generate_dataset(root, num_clips=args.num_clips, seed=args.data_seed, workers=os.cpu_count() or 1)
    else:
        root = Path(args.source).expanduser().resolve()
    root, layout = detect_layout(root)
    config = FeatureConfig()
    key = hashlib.sha256(f"{root}|{config.fingerprint()}".encode()).hexdigest()[:12]
    out = work / f"features-{key}"
    index_path = out / "index.csv"
    if index_path.is_file():
        index = pd.read_csv(index_path)
    else:
        table = metadata.read_table(root, layout)
        table["feature_path"] = table["filepath"].map(metadata.feature_path)
        jobs = [(row.filepath, root / row.filepath, out / row.feature_path) for row in table.itertuples()]
        print(f"features of {len(jobs)} clips of {root} -> {out}", flush=True)
        report = extract_features(jobs, config, device, workers=os.cpu_count() or 1)
        for name, reason in report.skipped:
            print(f"  skipped {name}: {reason}")
        skipped = {name for name, _ in report.skipped}
        index = table[~table["filepath"].isin(skipped)].reset_index(drop=True)
        tmp = index_path.with_name("index.csv.tmp")
        index.to_csv(tmp, index=False)
        os.replace(tmp, index_path)
    info = {"shape": [config.n_mels, config.num_frames], "root": str(root), "layout": layout.name,
            "class_names": metadata.class_names_of(index),
            "data": (f"synthetic-n{args.num_clips}-seed{args.data_seed}-v{GENERATOR_VERSION}"
                     if args.source == "synthetic" else root.name) + f"|features-{config.fingerprint()}"}
    return out, index, info


# ----------------------------------------------------------------------------- one run
def run_ours(cfg: TrainConfig, x, y, split: Split, device, num_classes: int) -> dict:
    torch.manual_seed(cfg.seed)
    model = AudioClassifier(cfg.arch, num_classes, **cfg.model_kwargs())
    started = time.perf_counter()
    best, history = fit(model, x, y, split, cfg, device, lambda *a: None, progress=False)
    model.load_state_dict(best["state"])
    sel = torch.from_numpy(split.test)
    pred = predict_logits(model, x[sel], device, amp=cfg.amp, tta=cfg.tta).argmax(1).numpy()
    wall = time.perf_counter() - started
    return {**evaluation.summary(y[sel].numpy(), pred), "val_accuracy": best["val_accuracy"],
            "train_accuracy": float(history["train_accuracy"].iloc[-1]),  # of the last epoch (augmented batches)
            "epochs": len(history), "best_epoch": best["epoch"], "wall_s": wall}


def run_seed(root: Path, index: pd.DataFrame, x, y, split: Split, device, num_classes: int,
             budget: float | None, seed: int = DEFAULT_SEED) -> dict:
    """The seed's loop for SEED_EPOCHS epochs, or until ``budget`` seconds; its final weights. ``seed`` seeds
    torch (the weights and the loader's shuffling)."""
    torch.manual_seed(seed)
    started = time.perf_counter()
    model = AudioClassifier("resnet18", num_classes, level_norm=False)
    train_x = x[torch.from_numpy(split.train)].float()
    model.set_normalization(float(train_x.mean()), float(train_x.std()))
    del train_x
    model.to(device)
    dataset = SeedDataset([root / p for p in index["feature_path"].iloc[split.train]],
                          index["label"].to_numpy()[split.train])
    loader = torch.utils.data.DataLoader(dataset, batch_size=SEED_BATCH, shuffle=True, num_workers=SEED_WORKERS)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=SEED_LR, momentum=SEED_MOMENTUM)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=SEED_STEP_SIZE, gamma=SEED_GAMMA)
    epochs, stop = 0.0, False
    for epoch in range(SEED_EPOCHS if budget is None else 10**6):
        model.train()
        for step, (inputs, labels) in enumerate(loader, 1):
            optimizer.zero_grad()
            criterion(model(inputs.to(device)), labels.to(device)).backward()
            optimizer.step()
            if budget is not None and time.perf_counter() - started >= budget:
                epochs, stop = epoch + step / len(loader), True
                break
        if stop:
            break
        epochs = epoch + 1
        scheduler.step()
    sel = torch.from_numpy(split.test)
    pred = predict_logits(model, x[sel], device, amp=False).argmax(1).numpy()
    val = torch.from_numpy(split.val)
    val_pred = predict_logits(model, x[val], device, amp=False).argmax(1).numpy()
    return {**evaluation.summary(y[sel].numpy(), pred),
            "val_accuracy": evaluation.summary(y[val].numpy(), val_pred)["accuracy"], "train_accuracy": float("nan"),
            "epochs": round(epochs, 2), "best_epoch": round(epochs, 2), "wall_s": time.perf_counter() - started}


def calibrate(cfg: TrainConfig, x, y, split: Split, device, num_classes: int) -> tuple[float, float]:
    """The epoch time of ``cfg`` and its one-off set-up, from a 3-epoch fit: the faster of epochs 2 and 3,
    validation included, so that a passing background job does not shrink the plan."""
    stamps: dict[int, float] = {}
    probe = replace(cfg, epochs=3, patience=0)
    model = AudioClassifier(cfg.arch, num_classes, **cfg.model_kwargs())
    started = time.perf_counter()
    fit(model, x, y, split, probe, device, lambda tag, value, step: stamps.setdefault(step, time.perf_counter()),
        progress=False)
    epoch_s = min(stamps[2] - stamps[1], stamps[3] - stamps[2])
    setup_s = max(0.0, stamps[1] - started - epoch_s)
    return epoch_s, setup_s


def plan_epochs(budget: float, epoch_s: float, setup_s: float = 0.0) -> int:
    return max(1, math.floor((BUDGET_MARGIN * budget - setup_s) / epoch_s))


def measured_epoch_time(row: dict) -> tuple[float, float]:
    """After a fold: the epoch time it measured (its whole wall time, set-up and test included, over its
    epochs) and no separate set-up, so that the next fold's plan follows the machine, not one calibration."""
    return row["wall_s"] / max(1, row["epochs"]), 0.0


# ----------------------------------------------------------------------------- report
def _paired(rows: pd.DataFrame, base: pd.Series) -> str:
    """'diff ± SE  won/tied/lost' of ``rows`` against ``base`` (accuracy by (test_fold, seed)), paired by fold
    and seed. The SE is over the folds' mean differences (folds are the independent units; seeds within a fold
    share its data), or over the runs when there is one fold."""
    paired = rows.set_index(["test_fold", "seed"])["accuracy"].to_frame().join(base.rename("base"), how="inner")
    if paired.empty:
        return "-"
    diff = paired["accuracy"] - paired["base"]
    per_fold = diff.groupby(level="test_fold").mean()
    units = per_fold if len(per_fold) > 1 else diff
    se = units.std(ddof=1) / math.sqrt(len(units)) if len(units) > 1 else float("nan")
    return (f"{diff.mean():+.3f} ± {se:.3f}  {int((diff > 0).sum())}/{int((diff == 0).sum())}/"
            f"{int((diff < 0).sum())}")


def report(results: pd.DataFrame, order: list[str], folds: list[int], seeds: list[int] | None = None) -> str:
    """One line per config: per-fold accuracy (mean over ``seeds``), mean ± std over folds of accuracy and
    macro-F1, the seed spread (mean std over seeds; its per-fold SE), the paired difference to the first
    config, wall time and epochs. ``seeds`` None: one run per config and fold, each with its own seed."""
    if seeds is None:  # one run per config and fold, each with its config's own seed: pair by fold
        results = results.assign(seed=DEFAULT_SEED)
        seeds = [DEFAULT_SEED]
    present = [name for name in order if (results["config"] == name).any()]
    base = (results[results["config"] == present[0]].set_index(["test_fold", "seed"])["accuracy"]
            if present else pd.Series(dtype=float))
    lines = []
    head = f"{'config':14s}" + "".join(f"{f'f{f}':>7s}" for f in folds)
    vs = f"vs {present[0]}: diff ± SE  won/tied/lost" if present else ""
    lines.append(head + f"   accuracy mean±std   macro-F1 mean±std   train-val   seed std (SE/fold)   {vs:40s}"
                 "wall s/fold  epochs")
    for name in order:
        rows = results[results["config"] == name]
        if rows.empty:
            continue
        by_fold = rows.groupby("test_fold")[["accuracy", "f1_macro", "wall_s", "epochs"]].mean()
        by_fold = by_fold.loc[[f for f in folds if f in by_fold.index]]
        cells = "".join(f"{by_fold.loc[f, 'accuracy']:7.3f}" if f in by_fold.index else f"{'-':>7s}" for f in folds)
        per_fold = rows.groupby("test_fold")["accuracy"]
        spread = pd.DataFrame({"std": per_fold.std(ddof=1), "n": per_fold.size()}).dropna()
        spread = spread[spread["n"] > 1]
        seed_cell = (f"{spread['std'].mean():.3f} ({(spread['std'] / np.sqrt(spread['n'])).mean():.3f})"
                     if len(spread) else "-")
        paired = "-" if name == present[0] else _paired(rows, base)
        # The last epoch's training accuracy (on the augmented batches) minus the validation accuracy: how much
        # the config fits the training folds beyond what carries over (a runner without it, the seed's, shows -).
        gap = (rows["train_accuracy"] - rows["val_accuracy"]).groupby(rows["test_fold"]).mean().dropna() \
            if "train_accuracy" in rows else pd.Series(dtype=float)
        gap_cell = f"{gap.mean():+.3f}" if len(gap) else "-"
        expected = len(folds) * len(seeds)
        lines.append(f"{name:14s}{cells}   {by_fold['accuracy'].mean():.3f} ± {by_fold['accuracy'].std(ddof=0):.3f}"
                     f"       {by_fold['f1_macro'].mean():.3f} ± {by_fold['f1_macro'].std(ddof=0):.3f}"
                     f"       {gap_cell:>6s}      {seed_cell:14s}       {paired:40s}"
                     f"{by_fold['wall_s'].mean():7.0f}      {by_fold['epochs'].mean():6.1f}"
                     + ("" if len(rows) >= expected else f"   ({len(rows)}/{expected} runs)"))
    if len(seeds) > 1:
        lines.append(f"seeds {seeds}: cells and mean ± std over folds use each fold's mean over seeds. seed std: "
                     "the std over seeds of one fold's accuracy, averaged over folds (the error bar of one run "
                     "on one fold); SE/fold: that / sqrt(seeds) (of a fold's mean over seeds).")
    lines.append("train-val: the last epoch's training accuracy (augmented batches) minus the validation accuracy, "
                 "mean over folds: above 0 the config fits the training folds better than it generalizes.")
    if len(present) > 1:
        lines.append(f"diff: accuracy minus {present[0]}'s on the same fold and seed, mean ± SE over the folds' "
                     "mean differences (over the runs with one fold); runs won/tied/lost.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="synthetic",
                        help="'synthetic' (the built-in data) or a folder in UrbanSound8K or ESC-50 layout "
                             "(default: %(default)s)")
    parser.add_argument("--num-clips", type=int, default=1200,
                        help="synthetic: clips, with the real fold and class distribution (default: %(default)s)")
    parser.add_argument("--data-seed", type=int, default=0,
                        help="random seed of the data (synthetic) (default: %(default)s)")
    parser.add_argument("--folds", type=fold_list, default="all",
                        help="test folds: 'all' or a list like 1,4,7,10 (default: all)")
    parser.add_argument("--seeds", type=seed_list, default=None,
                        help="training seeds, a list like 0,1,2: every config runs on every fold once per seed, "
                             "and the report gives the spread over seeds (default: each config's own seed, "
                             f"{DEFAULT_SEED} for the defaults)")
    parser.add_argument("--budget", type=parse_budget, default=None,
                        help="wall seconds of training per config and fold, or 'defaults': on each fold the wall "
                             "time the defaults took for their own epochs (default: each config's own epochs)")
    parser.add_argument("--configs", default="defaults,old-defaults,seed",
                        help="comma-separated named configs to run: defaults, old-defaults, seed and the names "
                             "given with --config (default: %(default)s)")
    parser.add_argument("--config", action="append", type=parse_config, default=[], metavar="NAME=BASE:k=v,...",
                        help="an extra config: a TrainConfig field changed from BASE (defaults or old-defaults)")
    parser.add_argument("--work-dir", type=Path, default=Path("outputs") / "benchmarks",
                        help="generated data and features, reused across runs (default: %(default)s)")
    parser.add_argument("--results", type=Path, default=None,
                        help="CSV of per-fold results; done rows are skipped (default: <work-dir>/accuracy.csv)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    args = parser.parse_args(argv)
    extra = dict(args.config)
    order = [c.strip() for c in args.configs.split(",") if c.strip()]
    for name in order:
        if name not in BASES and name != "seed" and name not in extra:
            parser.error(f"--configs: unknown config {name!r}; give it with --config {name}=BASE:key=value,...")
    if args.budget == "defaults":
        if "defaults" not in order:
            parser.error("--budget defaults times the defaults: add 'defaults' to --configs")
        order = ["defaults", *(name for name in order if name != "defaults")]  # they set each fold's budget
    device = resolve_device(args.device)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    results_path = args.results or args.work_dir / "accuracy.csv"
    command = shlex.join(["python", *(sys.argv if argv is None else [sys.argv[0], *argv])])
    try:  # before the data: a bad --results file stops the run at once
        done = read_results(results_path)
    except ValueError as exc:
        parser.error(str(exc))

    root, index, info = prepare(args, device)
    x = load_features(lambda rel: root / rel, index["feature_path"].tolist(), tuple(info["shape"]), progress=False)
    y = torch.from_numpy(index["label"].to_numpy()).long()
    fold_of = index["fold"].to_numpy()
    available = sorted(int(f) for f in np.unique(fold_of))
    folds = args.folds or available
    if set(folds) - set(available):
        parser.error(f"--folds {','.join(map(str, folds))}: the data has the folds {available}")
    num_classes = len(info["class_names"])
    configs = {name: (extra.get(name) or BASES.get(name)) for name in order}
    if args.budget == "defaults":  # the others' rows depend on the defaults' recipe too
        budget_tag = f"budget-defaults-{spec_of(configs['defaults'])}"
    else:
        budget_tag = f"budget{args.budget:g}" if args.budget else "own"
    print(f"{len(index)} clips of {info['root']} ({info['layout']}), {num_classes} classes, folds {folds}; "
          f"{torch.get_num_threads()} torch threads on {device}; results -> {results_path}", flush=True)

    # Rounds of (config, seed) runs, each over every fold, the configs in order (the defaults first when they set
    # the budget). With --seeds one round per seed, seed-major: an interrupted run leaves whole seeds, the first
    # being the usual single-seed table. Without it one round, each config with its own seed.
    own_seed = {name: DEFAULT_SEED if configs[name] is None else configs[name].seed for name in order}
    rounds = ([[(name, seed) for name in order] for seed in args.seeds] if args.seeds
              else [[(name, own_seed[name]) for name in order]])
    runs: dict[tuple[str, int], tuple[TrainConfig | None, str]] = {}  # (config, seed) -> what runs, its spec
    for name, seed in (key for one in rounds for key in one):
        cfg = None if configs[name] is None else replace(configs[name], seed=seed)
        runs[name, seed] = cfg, spec_of(f"seed|{SEED_EPOCHS}" if cfg is None else cfg) + f"-{budget_tag}"
    timing_of: dict[str, tuple[float, float]] = {}  # config -> (s per epoch, set-up s) on this machine
    for keys, fold in itertools.product(rounds, folds):
        split = split_by_fold(fold_of, fold, default_val_fold(fold, available))
        budget = args.budget if args.budget != "defaults" else None
        for name, seed in keys:
            cfg, spec = runs[name, seed]
            previous = done[(done["config"] == name) & (done["spec"] == spec) & (done["data"] == info["data"])
                            & (done["test_fold"] == fold) & (done["seed"] == seed)]
            if not previous.empty:
                if args.budget == "defaults" and name == "defaults":
                    budget = float(previous["wall_s"].iloc[-1])
                continue
            if cfg is None:
                row = run_seed(root, index, x, y, split, device, num_classes, budget, seed=seed)
            else:
                if budget is not None:
                    if name not in timing_of:
                        timing_of[name] = calibrate(cfg, x, y, split, device, num_classes)
                        epoch_s, setup_s = timing_of[name]
                        print(f"  {name}: ~{epoch_s:.1f} s/epoch, set-up {setup_s:.1f} s -> "
                              f"{plan_epochs(budget, epoch_s, setup_s)} epochs in {budget:.0f} s", flush=True)
                    cfg = replace(cfg, epochs=plan_epochs(budget, *timing_of[name]))
                row = run_ours(cfg, x, y, split, device, num_classes)
                if budget is not None:
                    timing_of[name] = measured_epoch_time(row)
            if args.budget == "defaults" and name == "defaults":
                budget = row["wall_s"]
            row = {"config": name, "spec": spec, "data": info["data"], "test_fold": fold, "val_fold": split.val_fold,
                   "seed": seed, **row, "budget_s": budget, "num_train": len(split.train),
                   "num_test": len(split.test)}
            print(f"fold {fold:2d} seed {seed} {name:14s} accuracy {row['accuracy']:.3f}  "
                  f"macro-F1 {row['f1_macro']:.3f}  "
                  f"val {row['val_accuracy']:.3f}  train {row['train_accuracy']:.3f}  {row['epochs']} epochs "
                  f"(best {row['best_epoch']})  {row['wall_s']:.0f} s", flush=True)
            done = pd.concat([frame for frame in (done, pd.DataFrame([row])) if not frame.empty], ignore_index=True)
            tmp = results_path.with_name(results_path.name + ".tmp")
            done.to_csv(tmp, index=False)
            os.replace(tmp, results_path)

    mine = done[done.apply(lambda r: runs.get((r["config"], int(r["seed"])), (None, None))[1] == r["spec"]
                           and r["data"] == info["data"] and r["test_fold"] in folds, axis=1)]
    if not args.budget:
        timing = "each config its own epochs"
    elif args.budget == "defaults":
        timing = "per fold every config the wall time of the defaults' own schedule"
    else:
        timing = f"{args.budget:g} s per config and fold"
    print()
    seeds = f"seeds {args.seeds}" if args.seeds else "each config's own seed"
    print(f"accuracy over folds {folds}, {seeds} ({timing})")
    print(f"command: {command}")
    print(f"data:    {len(index)} clips, {info['layout']} layout, {info['root']}")
    print(report(mine, order, folds, args.seeds))
    for name in order:
        cfg = configs[name]
        described = ("seed: resnet18, SGD 0.002 momentum 0.9, StepLR(3, 0.1), batch 4, 10 epochs" if cfg is None
                     else ", ".join(f"{k}={v}" for k, v in asdict(cfg).items()
                                    if k not in {"amp", "channels_last", "compile", *(["seed"] if args.seeds else [])}))
        print(f"  {name}: {described}")
    return mine


if __name__ == "__main__":
    main()
