"""Cross-validate training configs over folds AND seeds, several runs at once (sized for one GPU).

    python benchmarks/cv_sweep.py --pack features.npz --pack loop=features-loop.npz \\
        --config mix=defaults:mixup=0.2 --config loopd=defaults@loop --configs defaults,mix,loopd \\
        --folds all --seeds 0,1 --jobs 12 --deadline 480 --results sweep.csv
    python benchmarks/cv_sweep.py --make-pack zero.npz --pad zero            # built-in data, 1200 clips
    python benchmarks/cv_sweep.py --make-pack short-loop.npz --pad loop --shorten 0.42  # half the clips short
    python benchmarks/cv_sweep.py --make-pack us8k.npz --source /data/UrbanSound8K
    python benchmarks/cv_sweep.py --report sweep.csv --baseline defaults      # the table again
    python benchmarks/cv_sweep.py --pack short-loop.npz @benchmarks/sweeps/regularization.args \\
        --folds all --seeds 0,1 --jobs 14 --deadline 540 --results reg.csv   # a preset: one argument per line

benchmarks/accuracy.py answers "which recipe wins at equal wall time on this
machine"; this script answers "which change to the recipe helps, and by more
than the noise", which needs many more runs than a 2-core CPU can give: every
config on every test fold (validation: the fold before) and several seeds, run
as ``--jobs`` processes at once (on one GPU each run is launch-bound, so a dozen
share it well). Every run uses the project's own training loop
(audioclf.trainer.fit): the weights its ``select`` names (the last epoch's, or
the best on the validation fold) are tested once on the test fold. Besides that
number each run records, for analysis only (nothing is chosen on them):

* ``acc_tta``: the same weights tested with ``--tta`` circular time shifts;
* ``acc_last``: the last epoch's weights on the test fold (for a ``best-val``
  config: is choosing on the validation fold better than training to the end?);
* per epoch (``--epochs-csv``): validation and test accuracy and loss.

The report pairs every config with ``--baseline`` on the same fold and seed: the
mean difference, its standard error over the pairs, and how many pairs it wins.

A pack (``--make-pack``) is the whole features set in one .npz: spectrograms
(float16), labels, folds and class names, computed with the project's
preprocessing (audioclf.preprocess) at the default FeatureConfig, or with
``--pad zero|loop`` (short clips padded with silence, or repeated), and for the
built-in data ``--shorten`` (that fraction of the 4-s clips made shorter). A run needs only
torch, numpy and pandas, so a pack can be carried to a machine without the
audio stack. Config specs: ``NAME=BASE:key=value,...[@PACK]`` (BASE ``defaults``
or ``old-defaults``; PACK a ``--pack NAME=FILE``, default the unnamed pack).
Rows go to ``--results`` as they finish; ``--deadline SECONDS`` stops starting
runs after that long (what finished is kept; a rerun skips it).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# train_config imports no torch: --report stays light.
from audioclf.train_config import OLD_DEFAULTS, TrainConfig, named_config  # noqa: E402

RESULT_COLUMNS = ["config", "pack", "spec", "test_fold", "val_fold", "seed", "accuracy", "f1_macro", "acc_tta",
                  "acc_last", "val_accuracy", "train_accuracy", "best_epoch", "epochs", "wall_s"]


# ----------------------------------------------------------------------------- packs
def make_pack(out: Path, source: str, num_clips: int, data_seed: int, pad: str, work_dir: Path,
              shorten: float = 0.0) -> None:
    """The features of a dataset (built-in or a folder) in one .npz, through the project's preprocessing."""
    import torch  # noqa: F401  (imported before the audio stack, as the scripts do)

    from audioclf import metadata
    from audioclf.device import resolve_device
    from audioclf.features import FeatureConfig
    from audioclf.preprocess import extract_features
    from audioclf.sources import detect_layout
    from audioclf.synthetic import generate_dataset
    from audioclf.trainer import load_features

    if source == "synthetic":
        root = work_dir / (f"synthetic-n{num_clips}-seed{data_seed}" + (f"-short{shorten:g}" if shorten else ""))
        generate_dataset(root, num_clips=num_clips, seed=data_seed, workers=os.cpu_count() or 1, shorten=shorten)
    else:
        root = Path(source).expanduser().resolve()
    root, layout = detect_layout(root)
    config = FeatureConfig(pad=pad)
    feats = work_dir / f"features-{root.name}-{config.fingerprint()}"  # the data's folder name is unique
    table = metadata.read_table(root, layout)
    table["feature_path"] = table["filepath"].map(metadata.feature_path)
    jobs = [(row.filepath, root / row.filepath, feats / row.feature_path) for row in table.itertuples()]
    report = extract_features(jobs, config, resolve_device("cpu"), workers=os.cpu_count() or 1)
    skipped = {name for name, _ in report.skipped}
    table = table[~table["filepath"].isin(skipped)].reset_index(drop=True)
    x = load_features(lambda rel: feats / rel, table["feature_path"].tolist(), (config.n_mels, config.num_frames))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, x=x.numpy(), y=table["label"].to_numpy(np.int64), folds=table["fold"].to_numpy(np.int64),
             class_names=np.array(metadata.class_names_of(table)), feature_config=np.array(str(config.to_dict())))
    os.replace(tmp, out)
    print(f"{len(table)} clips ({len(skipped)} skipped) -> {out}")


# ----------------------------------------------------------------------------- configs
BASES = {"defaults": TrainConfig(), "old-defaults": OLD_DEFAULTS}


def parse_spec(text: str) -> tuple[str, str, TrainConfig]:
    """'NAME=BASE:key=value,...[@PACK]' -> (NAME, PACK, TrainConfig)."""
    body, _, pack = text.partition("@")
    try:
        name, cfg = named_config(body, BASES)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--config {text!r}: {exc}") from exc
    return name, pack, cfg


# ----------------------------------------------------------------------------- one run
_PACKS: dict = {}


def _worker_init(packs: dict, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    for name, path in packs.items():
        with np.load(path) as data:
            _PACKS[name] = {k: data[k] for k in ("x", "y", "folds")}


def run_one(job: dict) -> dict:
    import torch

    from audioclf import evaluation
    from audioclf.device import resolve_device
    from audioclf.models import AudioClassifier
    from audioclf.trainer import default_val_fold, fit, predict_logits, split_by_fold

    cfg = job["cfg"]
    pack = _PACKS[job["pack"]]
    x = torch.from_numpy(pack["x"])
    y = torch.from_numpy(pack["y"]).long()
    folds = pack["folds"]
    available = sorted(int(f) for f in np.unique(folds))
    split = split_by_fold(folds, job["fold"], default_val_fold(job["fold"], available))
    device = resolve_device(job["device"])
    num_classes = int(y.max()) + 1
    torch.manual_seed(cfg.seed)
    model = AudioClassifier(cfg.arch, num_classes, **cfg.model_kwargs())
    test_sel = torch.from_numpy(split.test)
    test_x, test_y = x[test_sel], y[test_sel].numpy()
    epochs: list[dict] = []

    def log_scalar(tag: str, value: float, epoch: int) -> None:
        if tag.endswith("/val"):
            row = next((r for r in epochs if r["epoch"] == epoch), None)
            if row is None:
                row = {"epoch": epoch}
                epochs.append(row)
            row[f"val_{tag.split('/')[0]}"] = value
        if tag == "lr/lr":  # the last scalar of an epoch: the weights are this epoch's
            logits = predict_logits(model, test_x, device, amp=cfg.amp)
            epochs[-1]["test_accuracy"] = float((logits.argmax(1).numpy() == test_y).mean())
            epochs[-1]["test_loss"] = float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(test_y)))

    started = time.perf_counter()
    best, history = fit(model, x, y, split, cfg, device, log_scalar, progress=False)
    last_acc = epochs[-1]["test_accuracy"]
    model.load_state_dict(best["state"])
    pred = predict_logits(model, test_x, device, amp=cfg.amp, tta=cfg.tta).argmax(1).numpy()
    pred_tta = predict_logits(model, test_x, device, amp=cfg.amp, tta=job["tta"]).argmax(1).numpy()
    wall = time.perf_counter() - started
    summary = evaluation.summary(test_y, pred)
    row = {"config": job["name"], "pack": job["pack"], "spec": job["spec"], "test_fold": split.test_fold,
           "val_fold": split.val_fold, "seed": cfg.seed, "accuracy": summary["accuracy"],
           "f1_macro": summary["f1_macro"], "acc_tta": float((pred_tta == test_y).mean()), "acc_last": last_acc,
           "val_accuracy": best["val_accuracy"], "train_accuracy": float(history["train_accuracy"].iloc[-1]),
           "best_epoch": best["epoch"], "epochs": len(history), "wall_s": wall}
    per_epoch = [{"config": job["name"], "spec": job["spec"], "test_fold": split.test_fold, "seed": cfg.seed, **r}
                 for r in epochs]
    return {"row": row, "epochs": per_epoch}


# ----------------------------------------------------------------------------- report
def report(results: pd.DataFrame, baseline: str, order: list[str] | None = None) -> str:
    """Per config: mean ± std over folds (seeds averaged first), and the paired difference to the baseline."""
    order = order or list(dict.fromkeys(results["config"]))
    base = results[results["config"] == baseline].set_index(["test_fold", "seed"])
    lines = [f"{'config':16s} runs  accuracy (mean±std over folds)  macro-F1   with TTA   last epoch (paired)   "
             f"vs {baseline}: diff ± SE   wins/ties/losses   best ep  train  wall s"]
    for name in order:
        rows = results[results["config"] == name]
        if rows.empty:
            continue
        by_fold = rows.groupby("test_fold")[["accuracy", "f1_macro", "acc_tta", "acc_last"]].mean()
        paired = rows.set_index(["test_fold", "seed"]).join(base[["accuracy"]], rsuffix="_base", how="inner")
        if name != baseline and len(paired):
            diff = paired["accuracy"] - paired["accuracy_base"]
            se = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
            vs = (f"{diff.mean():+.3f} ± {se:.3f}  ({len(diff)} pairs)  "
                  f"{int((diff > 0).sum())}/{int((diff == 0).sum())}/{int((diff < 0).sum())}")
        else:
            vs = "-"
        last = rows["acc_last"] - rows["accuracy"]
        last_se = last.std(ddof=1) / math.sqrt(len(last)) if len(last) > 1 else float("nan")
        lines.append(f"{name:16s} {len(rows):4d}  {by_fold['accuracy'].mean():.3f} ± {by_fold['accuracy'].std(ddof=0):.3f}"
                     f" ({len(by_fold)} folds)      {by_fold['f1_macro'].mean():.3f}     "
                     f"{by_fold['acc_tta'].mean():.3f}      {by_fold['acc_last'].mean():.3f} "
                     f"({last.mean():+.3f} ± {last_se:.3f})  {vs:44s}"
                     f"{rows['best_epoch'].mean():5.1f}   {rows['train_accuracy'].mean():.2f}  "
                     f"{rows['wall_s'].mean():5.0f}")
    return "\n".join(lines)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     fromfile_prefix_chars="@")
    parser.add_argument("--make-pack", type=Path, metavar="FILE", help="write the features pack and stop")
    parser.add_argument("--source", default="synthetic", help="--make-pack: 'synthetic' or a dataset folder")
    parser.add_argument("--num-clips", type=int, default=1200, help="--make-pack synthetic: clips (default 1200)")
    parser.add_argument("--data-seed", type=int, default=0,
                        help="--make-pack synthetic: random seed of the data (default 0)")
    parser.add_argument("--pad", default=None, choices=["zero", "loop"],
                        help="--make-pack: how clips shorter than the duration are filled (default: the "
                             "FeatureConfig default)")
    parser.add_argument("--shorten", type=float, default=0.0,
                        help="--make-pack synthetic: the fraction of 4-s clips made shorter, whatever their "
                             "class (0.42: about half the clips short; default 0: the real durations)")
    parser.add_argument("--work-dir", type=Path, default=Path("outputs") / "benchmarks",
                        help="--make-pack: generated data and features (default: %(default)s)")
    parser.add_argument("--pack", action="append", default=[], metavar="[NAME=]FILE",
                        help="a features pack; unnamed: the default one")
    parser.add_argument("--config", action="append", default=[], type=parse_spec, metavar="NAME=BASE:k=v,...[@PACK]",
                        help="a config: TrainConfig fields changed from BASE (defaults, old-defaults), on PACK")
    parser.add_argument("--configs", default="defaults", help="comma-separated configs to run, in priority order")
    parser.add_argument("--folds", default="all", help="test folds: 'all' or a list like 1,4,7,10")
    parser.add_argument("--seeds", default="0", help="training seeds, e.g. 0,1 (default: 0)")
    parser.add_argument("--tta", type=int, default=4, help="shifts for the acc_tta column (default: 4)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (default: 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--deadline", type=float, default=None, help="start no run after this many seconds")
    parser.add_argument("--results", type=Path, default=Path("outputs") / "benchmarks" / "sweep.csv")
    parser.add_argument("--epochs-csv", type=Path, default=None, help="per-epoch rows (default: <results>-epochs.csv)")
    parser.add_argument("--report", type=Path, metavar="CSV", help="print the table of a results CSV and stop")
    parser.add_argument("--baseline", default="defaults", help="the config others are paired with")
    args = parser.parse_args(argv)

    if args.report:
        print(report(pd.read_csv(args.report), args.baseline))
        return 0
    if args.make_pack:
        from audioclf.features import FeatureConfig

        if args.shorten and args.source != "synthetic":
            parser.error("--shorten makes built-in data: it needs --source synthetic")
        make_pack(args.make_pack, args.source, args.num_clips, args.data_seed, args.pad or FeatureConfig().pad,
                  args.work_dir, args.shorten)
        return 0

    packs = {}
    for item in args.pack:
        name, _, path = item.rpartition("=")
        packs[name] = path
    if not packs:
        parser.error("give at least one --pack (make one with --make-pack)")
    specs = {name: ("", cfg) for name, cfg in BASES.items()}
    for name, pack, cfg in args.config:
        specs[name] = (pack, cfg)
    order = [c.strip() for c in args.configs.split(",") if c.strip()]
    for name in order:
        if name not in specs:
            parser.error(f"--configs: unknown config {name!r}")
        if specs[name][0] not in packs:
            parser.error(f"config {name}: no --pack named {specs[name][0]!r}")
    with np.load(next(iter(packs.values()))) as data:
        available = sorted(int(f) for f in np.unique(data["folds"]))
    folds = available if args.folds == "all" else [int(f) for f in args.folds.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]

    done = pd.read_csv(args.results) if args.results.is_file() else pd.DataFrame(columns=RESULT_COLUMNS)
    epochs_path = args.epochs_csv or args.results.with_name(args.results.stem + "-epochs.csv")
    epoch_rows = pd.read_csv(epochs_path) if epochs_path.is_file() else pd.DataFrame()
    jobs = []
    for seed in seeds:  # seed-major, fold next: a deadline leaves every config with the same folds
        for fold in folds:
            for name in order:
                pack, cfg = specs[name]
                cfg = replace(cfg, seed=seed)
                spec = cfg.spec() + (f"@{pack}" if pack else "")
                if ((done["config"] == name) & (done["spec"] == spec) & (done["test_fold"] == fold)
                        & (done["seed"] == seed)).any():
                    continue
                jobs.append({"name": name, "pack": pack, "cfg": cfg, "spec": spec, "fold": fold,
                             "tta": args.tta, "device": args.device})
    print(f"{len(jobs)} runs to do ({len(order)} configs x {len(folds)} folds x {len(seeds)} seeds, "
          f"{len(done)} done), {args.jobs} at once -> {args.results}", flush=True)
    threads = max(1, (os.cpu_count() or 1) // max(1, args.jobs))
    started = time.perf_counter()
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.jobs, initializer=_worker_init, initargs=(packs, threads)) as pool:
        pending = []
        queue = list(jobs)
        while queue or pending:
            while queue and len(pending) < args.jobs and (
                    args.deadline is None or time.perf_counter() - started < args.deadline):
                job = queue.pop(0)
                pending.append((job, pool.apply_async(run_one, (job,))))
            if args.deadline is not None and time.perf_counter() - started >= args.deadline and queue:
                print(f"deadline: {len(queue)} runs not started", flush=True)
                queue = []
            for item in [p for p in pending if p[1].ready()]:
                pending.remove(item)
                job, result = item
                out = result.get()
                done = pd.concat([f for f in (done, pd.DataFrame([out["row"]])) if not f.empty], ignore_index=True)
                epoch_rows = pd.concat([f for f in (epoch_rows, pd.DataFrame(out["epochs"])) if not f.empty],
                                       ignore_index=True)
                _write_csv(done, args.results)
                _write_csv(epoch_rows, epochs_path)
                r = out["row"]
                print(f"{time.perf_counter() - started:6.0f}s  {r['config']:14s} fold {r['test_fold']:2d} seed "
                      f"{r['seed']}  acc {r['accuracy']:.3f}  tta {r['acc_tta']:.3f}  last {r['acc_last']:.3f}  "
                      f"best ep {r['best_epoch']}  {r['wall_s']:.0f} s", flush=True)
            time.sleep(0.2)
    mine = done[done["config"].isin(order) & done["test_fold"].isin(folds) & done["seed"].isin(seeds)]
    print()
    print(report(mine, args.baseline, order))
    for name in order:
        pack, cfg = specs[name]
        print(f"  {name}{'@' + pack if pack else ''}: " + ", ".join(
            f"{k}={v}" for k, v in asdict(cfg).items() if k not in {"amp", "channels_last", "compile", "seed"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
