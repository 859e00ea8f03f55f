"""Where a training epoch's CPU time goes, and what lowers it: variants of the training loop as ratios to
the defaults, measured in the same run.

    python benchmarks/epoch_cost.py                            # built-in data (300 clips), every variant
    python benchmarks/epoch_cost.py --pack instruments-loop.npz --repeats 3
    python benchmarks/epoch_cost.py --variants baseline,compile --epochs 3

1. The breakdown: torch.profiler over a few training steps of the defaults' model (--batch-size, the
   default CNN), the operators' self CPU time grouped into convolution forward and backward, batch norm,
   pooling and ReLU, the optimizer, augmentation and the rest; and the validation pass's share of an epoch.
2. The variants: each trains the same data with audioclf.trainer.fit for ``--epochs`` epochs; the time of
   every epoch after the first (the first holds warm-up and torch.compile's compilation, printed apart) is
   the variant's epoch time. Variants run interleaved (``--repeats`` rounds of all of them), so a change in
   the machine's load hits them alike; the table gives each one's median epoch time over the rounds and
   its ratio to the baseline's (below 1: faster). Only variants that compute the same model are a free
   speed-up; the others change the recipe and need the paired cross-validation before they are adopted.

Time on a quiet machine: on 2 cores one background job skews a reading several-fold.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audioclf.models import AudioClassifier  # noqa: E402
from audioclf.train_config import TrainConfig  # noqa: E402
from audioclf.trainer import augment, default_val_fold, fit, predict_logits, split_by_fold  # noqa: E402

# name -> (what it changes, TrainConfig changes, same model as the baseline?)
VARIANTS = {
    "baseline": ("training.py's defaults", {}, True),
    "nchw": ("contiguous (NCHW) tensors instead of channels-last", {"channels_last": False}, True),
    "compile": ("torch.compile of the model (first epoch: compilation)", {"compile": True}, True),
    "one-thread": ("one intra-op thread instead of every core", {}, True),
    "batch-64": ("batch 64 (lr 4e-3): half the optimizer steps", {"batch_size": 64, "lr": 4e-3}, False),
    "width-24": ("24 base channels instead of 32: about 0.56x the multiply-adds", {"width": 24}, False),
}
GROUPS = (  # operator name fragments -> group, first match wins
    ("convolution_backward", "conv backward"), ("convolution", "conv forward"), ("conv", "conv forward"),
    ("batch_norm", "batch norm"), ("max_pool", "pooling, ReLU"), ("threshold", "pooling, ReLU"),
    ("relu", "pooling, ReLU"), ("clamp_min", "pooling, ReLU"),
    ("addcdiv", "optimizer"), ("addcmul", "optimizer"), ("lerp", "optimizer"), ("sqrt", "optimizer"),
    ("_foreach", "optimizer"), ("gather", "augmentation"), ("where", "augmentation"), ("randint", "augmentation"),
)


def load_data(pack: Path | None, num_clips: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    if pack is not None:
        with np.load(pack) as data:
            return torch.from_numpy(data["x"]), torch.from_numpy(data["y"]).long(), data["folds"]
    # Random spectrograms of the default feature shape: the cost of an epoch does not depend on the values.
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(-40, 15, (num_clips, 64, 173)).astype(np.float16))
    y = torch.from_numpy(rng.integers(0, 10, num_clips)).long()
    return x, y, np.arange(num_clips) % 10 + 1


def breakdown(x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, steps: int) -> list[tuple[str, float]]:
    """Self CPU seconds per operator group over ``steps`` training steps (after two warm-up steps)."""
    from torch.profiler import ProfilerActivity, profile

    model = AudioClassifier(cfg.arch, int(y.max()) + 1, **cfg.model_kwargs())
    model.fit_normalization(x[:256])
    model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(0)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    def step(i: int) -> None:
        idx = torch.arange(i * cfg.batch_size, (i + 1) * cfg.batch_size) % len(x)
        xb = augment(x[idx].float(), generator, masks=cfg.masks)
        loss = loss_fn(model(xb), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for i in range(2):
        step(i)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(steps):
            step(i)
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        name = event.key.lower()
        group = next((g for fragment, g in GROUPS if fragment in name), "other")
        totals[group] = totals.get(group, 0.0) + event.self_cpu_time_total / 1e6
    return sorted(totals.items(), key=lambda kv: -kv[1])


def epoch_times(x, y, folds, cfg: TrainConfig, epochs: int, threads: int) -> tuple[float, list[float]]:
    """fit() for ``epochs`` epochs: (first epoch's seconds, the later epochs' seconds)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        available = sorted(int(f) for f in np.unique(folds))
        split = split_by_fold(folds, available[-1], default_val_fold(available[-1], available))
        torch.manual_seed(cfg.seed)
        model = AudioClassifier(cfg.arch, int(y.max()) + 1, **cfg.model_kwargs())
        stamps = [time.perf_counter()]

        def log_scalar(tag: str, value: float, epoch: int) -> None:
            if tag == "lr/lr":  # the epoch's last scalar
                stamps.append(time.perf_counter())

        fit(model, x, y, split, replace(cfg, epochs=epochs), torch.device("cpu"), log_scalar, progress=False)
    finally:
        torch.set_num_threads(previous)
    times = np.diff(stamps).tolist()
    return times[0], times[1:]


def validation_share(x, y, folds, cfg: TrainConfig, epoch_s: float) -> float:
    """The validation pass's seconds (one fold's clips) over an epoch's."""
    model = AudioClassifier(cfg.arch, int(y.max()) + 1, **cfg.model_kwargs()).eval()
    val = torch.from_numpy(np.flatnonzero(folds == sorted(np.unique(folds))[-2]))
    predict_logits(model, x[val], torch.device("cpu"))
    started = time.perf_counter()
    predict_logits(model, x[val], torch.device("cpu"))
    return (time.perf_counter() - started) / epoch_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", type=Path, default=None,
                        help="a features pack (benchmarks/cv_sweep.py --make-pack); default: random "
                             "spectrograms of the default shape")
    parser.add_argument("--num-clips", type=int, default=300, help="clips without --pack (default: %(default)s)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, the first is the baseline (default: {','.join(VARIANTS)})")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per variant and round (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of all variants (default: %(default)s)")
    parser.add_argument("--profile-steps", type=int, default=5,
                        help="training steps profiled for the breakdown; 0: no breakdown (default: %(default)s)")
    args = parser.parse_args(argv)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        parser.error(f"--variants: unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(VARIANTS)}")
    if args.epochs < 2 or args.repeats < 1:
        parser.error("--epochs must be at least 2 (the first is warm-up) and --repeats at least 1")
    x, y, folds = load_data(args.pack, args.num_clips)
    base = TrainConfig()
    threads = torch.get_num_threads()
    print(f"{len(x)} clips of {tuple(x.shape[1:])}, {threads} threads, torch {torch.__version__}")

    if args.profile_steps:
        groups = breakdown(x, y, base, args.profile_steps)
        total = sum(s for _, s in groups)
        print(f"\nwhere a training step's CPU time goes (defaults, batch {base.batch_size}, "
              f"{args.profile_steps} steps profiled):")
        for group, seconds in groups:
            print(f"  {group:16s} {seconds / total:6.1%}")

    times: dict[str, list[float]] = {n: [] for n in names}
    first: dict[str, list[float]] = {n: [] for n in names}
    for round_ in range(args.repeats):
        for name in names:
            _, changes, _ = VARIANTS[name]
            t0, rest = epoch_times(x, y, folds, replace(base, **changes), args.epochs,
                                   1 if name == "one-thread" else threads)
            first[name].append(t0)
            times[name].extend(rest)
            print(f"  round {round_ + 1} {name:12s} first epoch {t0:6.1f} s, then "
                  + " ".join(f"{t:.1f}" for t in rest), flush=True)
    baseline = statistics.median(times[names[0]])
    share = validation_share(x, y, folds, base, baseline)
    print(f"\nvalidation pass: {share:.1%} of an epoch\n")
    print(f"{'variant':12s} {'epoch s':>8s} {'ratio':>6s} {'1st epoch s':>11s}  same model  what")
    for name in names:
        what, _, same = VARIANTS[name]
        median = statistics.median(times[name])
        print(f"{name:12s} {median:8.2f} {median / baseline:6.2f} {statistics.median(first[name]):11.1f}  "
              f"{'yes' if same else 'no ':10s}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
