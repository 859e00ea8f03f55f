"""Stage 3: features dataset -> trained CNN, metrics and a confusion matrix.

    python training.py --dataset-id <features id printed by preprocessing.py>
    python training.py --dataset-id <id> --model resnet18 --epochs 40 --test-fold 1
    python training.py --dataset-id <id> --folds all          # 10-fold cross-validation
    python training.py --dataset-id <id> --resume outputs/runs/training-.../checkpoint.pt

Splits by the dataset's predefined folds: the test fold (default the last: 10
for UrbanSound8K, 5 for ESC-50) and a validation fold (default: the fold before
it) are kept apart from training.
Per epoch, training and validation loss, accuracy and macro-F1 and the learning
rate go to TensorBoard and ClearML; a checkpoint is written after each epoch.
The weights of the last epoch (``--select last``, the default: the end of the
one-cycle schedule) or those with the best validation accuracy (``--select
best-val``) are tested once on the test fold, which takes part in no choice.
The run folder receives metrics.json, the confusion matrix (PNG and CSV),
per-class precision/recall, the epoch history, the TensorBoard events and
model.pt (weights, architecture, class names and the feature config; loads with
torch.load(weights_only=True)). With several folds each gets a fold_<k>/
folder and the run reports mean ± std and the summed confusion matrix.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from audioclf import atomic, crossval, evaluation, metadata, naming, plots, stopping, sync, tracking
from audioclf.device import device_before_work, resolve_device
from audioclf.errors import UserError
from audioclf.export import EXPORT_FORMATS, export_file
from audioclf.cli import (DEVICE_CHOICES, device_name, fold_list, non_negative_float, non_negative_int, positive_float,
                          positive_int, unit_float)
from audioclf.models import (ARCHITECTURES, CNN_ARCHITECTURES, CNN_MIN_SIZE, COMPACT_WIDTH, DEFAULT_WIDTH,
                             AudioClassifier, save_model)
from audioclf.store import DatasetCorrupt, recover_hint
from audioclf.trainer import (SELECT_MODES, TrainConfig, default_val_fold, fit, load_checkpoint, load_features,
                              predict_logits, split_by_fold)

FEATURES_INDEX = metadata.FEATURES_INDEX
FEATURES_CONFIG = metadata.FEATURES_CONFIG
_DEFAULTS = TrainConfig()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-id", required=True, help="id of the features dataset (printed by preprocessing.py)")
    parser.add_argument("--model", choices=ARCHITECTURES, default=_DEFAULTS.arch,
                        help="'cnn': a 4-block VGG-style CNN (--width base channels); 'compact': the same at width "
                             f"{COMPACT_WIDTH}, 4x cheaper, less accurate; the others are torchvision backbones with a "
                             "1-channel stem (resnet18 as in the seed) (default: %(default)s)")
    parser.add_argument("--width", type=positive_int, default=_DEFAULTS.width,
                        help=f"base channels of the cnn (its blocks have w, 2w, 4w, 8w) (default: {DEFAULT_WIDTH})")
    parser.add_argument("--first-convs", type=int, choices=(1, 2), default=_DEFAULTS.first_convs,
                        help="3x3 convs in the cnn's first block; the other blocks have two (default: %(default)s)")
    parser.add_argument("--pretrained", action="store_true",
                        help="start from torchvision's ImageNet weights (needs a download; see --weights)")
    parser.add_argument("--weights", default=None,
                        help="start from a local torchvision ImageNet state dict of the same architecture")
    parser.add_argument("--export", choices=EXPORT_FORMATS, action="append", default=None,
                        help="also write the trained model as TorchScript or ONNX next to model.pt "
                             "(model.torchscript.pt, model.onnx, each with a <file>.json holding the feature config "
                             "and class names), checked against PyTorch; give it twice for both (default: no export)")
    folds = parser.add_argument_group("folds")
    folds.add_argument("--test-fold", type=int, default=None,
                       help="fold held out for testing (default: the dataset's last fold: 10 for UrbanSound8K, "
                            "5 for ESC-50)")
    folds.add_argument("--val-fold", type=int, default=None,
                       help="fold held out for validation: its loss and accuracy are reported every epoch, decide "
                            "--patience and, with --select best-val, which epoch's weights are kept (default: the "
                            "fold before the test fold)")
    folds.add_argument("--folds", type=fold_list, default=None,
                       help="cross-validation: 'all' or a list like 1,2,3 of test folds, one model each, each with "
                            "the fold before it for validation (default: only --test-fold)")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=positive_int, default=_DEFAULTS.epochs, help="epochs (default: %(default)s)")
    opt.add_argument("--batch-size", type=positive_int, default=_DEFAULTS.batch_size,
                     help="examples per batch through the model: clips per training step (default: %(default)s)")
    opt.add_argument("--lr", type=positive_float, default=_DEFAULTS.lr,
                     help="peak learning rate of the one-cycle schedule, AdamW (default: %(default)s)")
    opt.add_argument("--weight-decay", type=non_negative_float, default=_DEFAULTS.weight_decay,
                     help="(default: %(default)s)")
    opt.add_argument("--label-smoothing", type=unit_float, default=_DEFAULTS.label_smoothing,
                     help="(default: %(default)s)")
    opt.add_argument("--dropout", type=unit_float, default=_DEFAULTS.dropout,
                     help="dropout before the CNN's linear head; the torchvision models keep their own "
                          "(default: %(default)s)")
    opt.add_argument("--patience", type=non_negative_int, default=_DEFAULTS.patience,
                     help="stop after this many epochs without a better validation accuracy; 0 never stops early, "
                          "which suits the one-cycle schedule (default: %(default)s)")
    aug = parser.add_argument_group("augmentation (training batches only)")
    aug.add_argument("--no-augment", action="store_true",
                     help="disable the time shift, frequency shift, EQ and SpecAugment masks")
    aug.add_argument("--masks", type=non_negative_int, default=_DEFAULTS.masks,
                     help="SpecAugment: time masks and frequency masks per clip, each up to 1/8 of its axis "
                          "(default: %(default)s)")
    aug.add_argument("--freq-shift", type=non_negative_int, default=_DEFAULTS.freq_shift,
                     help="shift the mel axis by up to this many bands, a pitch change (default: %(default)s)")
    aug.add_argument("--eq-db", type=non_negative_float, default=_DEFAULTS.eq_db,
                     help="add a smooth random curve of up to this many dB over the mel bands, a microphone's "
                          "colour (default: %(default)s)")
    aug.add_argument("--mixup", type=non_negative_float, default=_DEFAULTS.mixup,
                     help="mixup alpha for training batches; 0 turns it off (default: %(default)s)")
    reg = parser.add_argument_group("model averaging, normalization and evaluation")
    reg.add_argument("--ema", type=unit_float, default=_DEFAULTS.ema,
                     help="decay per step of an exponential moving average of the weights, which is the model "
                          "validated and saved; 0 turns it off (default: %(default)s)")
    reg.add_argument("--no-band-norm", action="store_true",
                     help="normalize the input with one mean and std instead of one per mel band")
    reg.add_argument("--level-norm", action="store_true",
                     help="subtract each clip's maximum dB first, so a recording's gain changes nothing")
    reg.add_argument("--tta", type=positive_int, default=_DEFAULTS.tta,
                     help="validation and test: average the softmax over this many circular time shifts "
                          "(default: %(default)s)")
    reg.add_argument("--select", choices=SELECT_MODES, default=_DEFAULTS.select,
                     help="the weights tested and saved: the last epoch's, or those with the best validation "
                          "accuracy (default: %(default)s; chosen by cross-validation: docs/choosing-defaults.md, 'Which weights are tested')")
    opt.add_argument("--seed", type=int, default=_DEFAULTS.seed,
                     help="random seed of the training this run does (initial weights, batch order, augmentation) "
                          "(default: %(default)s)")
    opt.add_argument("--resume", type=Path, default=None,
                     help="continue from a checkpoint.pt written by an interrupted run with the same arguments")
    hw = parser.add_argument_group("hardware")
    hw.add_argument("--device", type=device_name, default="auto", help=f"{DEVICE_CHOICES} (default: %(default)s)")
    hw.add_argument("--no-amp", action="store_true", help="train in float32 on the GPU instead of bf16 autocast")
    hw.add_argument("--no-channels-last", action="store_true",
                    help="keep the convolutions in NCHW instead of NHWC (NHWC is 10-20%% faster for the CNNs on a CPU, "
                         "measured)")
    hw.add_argument("--compile", action="store_true", help="torch.compile the model")
    hw.add_argument("--threads", type=int, default=0,
                    help="CPU threads for torch; 0 keeps torch's default (default: %(default)s)")
    tracking.add_tracking_args(parser, stage="training")
    return parser


def train_config_from(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(arch=args.model, width=args.width, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       weight_decay=args.weight_decay, label_smoothing=args.label_smoothing, patience=args.patience,
                       augment=not args.no_augment, masks=args.masks, freq_shift=args.freq_shift, eq_db=args.eq_db,
                       mixup=args.mixup, dropout=args.dropout, first_convs=args.first_convs, ema=args.ema, band_norm=not args.no_band_norm, level_norm=args.level_norm,
                       tta=args.tta, select=args.select, amp=not args.no_amp,
                       channels_last=not args.no_channels_last, compile=args.compile, seed=args.seed)


def main(argv: list[str] | None = None, on_epoch: Callable[[int, float], None] | None = None) -> dict:
    """``on_epoch(epoch, validation accuracy)`` is called after each epoch (optimize.py prunes trials with it;
    an exception with ``stops_run = True`` stops the run, marked stopped)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    device = device_before_work(parser, args)

    # Named for what it sets; renamed with its test fold once the dataset says which that is.
    def provisional() -> str:
        return naming.compose(["training", args.model], naming.changed_flags(build_parser(), args, "training"))

    with tracking.stage("training", args, parser, task_type="training", task_name=provisional,
                        kept=kept_when_stopped) as run:
        result = _train_all(args, run, build_parser(), on_epoch, device)  # (a fresh parser: naming's reference)
        # Printed before the task closes, so that the task's console on the server ends with them too.
        _print_result(result, run)
    return result


def _print_result(result: dict, run: tracking.Run) -> None:
    if "cross_validation" in result:
        cv = result["cross_validation"]
        print(f"cross-validation: accuracy {cv['accuracy_mean']:.4f} ± {cv['accuracy_std']:.4f}")
    else:
        test = result["test"]
        print(f"test fold {result['test_fold']}: accuracy {test['accuracy']:.4f}, macro-F1 {test['f1_macro']:.4f}")
        print(f"model: {result['model_path']}")
        if result.get("model_id"):
            print(f"model id: {result['model_id']} (predict.py and serve.py take it)")
    print(f"results: {run.where()}", flush=True)


def kept_when_stopped(run: tracking.Run) -> str:
    """What a stopped training run kept and how to go on: a checkpoint is written after every epoch."""
    checkpoints = sorted(run.run_dir.glob("**/checkpoint.pt"), key=lambda p: p.stat().st_mtime)
    if not checkpoints:
        return "no epoch had finished, so nothing is kept: rerun the same command to start again"
    last = checkpoints[-1]
    if last.parent == run.run_dir:
        return f"its last finished epoch is kept in {last}: to resume, rerun the same command with --resume {last}"
    fold = last.parent.name.removeprefix("fold_")
    finished = sorted(p.parent.name.removeprefix("fold_") for p in run.run_dir.glob("fold_*/model.pt"))
    return (f"the folds that finished keep their model.pt ({', '.join(finished) or 'none'}), and fold {fold}'s last "
            f"finished epoch is kept in {last}: resume that fold with --test-fold {fold} --resume {last} instead of "
            "--folds, then train the folds not done one by one")


def load_dataset(dataset):
    """features.json and features.csv of a features dataset, checked; raises UserError naming the file."""
    kind = metadata.dataset_kind(dataset.list_files())
    if kind == "raw":
        raise UserError(f"dataset {dataset.id} is a raw dataset (made by get_data.py), not a features dataset: run "
                        f"preprocessing.py --dataset-id {dataset.id} and pass the id it prints to training.py")
    if kind != "features":
        raise UserError(f"dataset {dataset.id} has no {FEATURES_CONFIG} and {FEATURES_INDEX}: it was not made by "
                        "preprocessing.py; pass the id that preprocessing.py printed")
    info = dataset.read_json(FEATURES_CONFIG)
    missing = [k for k in ("feature_config", "class_names", "shape") if k not in info]
    if missing:
        raise DatasetCorrupt(f"{FEATURES_CONFIG} of dataset {dataset.id} lacks {missing}: {recover_hint(dataset.id)}")
    index = dataset.read_table(FEATURES_INDEX)
    metadata.validate_features_index(index, info["class_names"], f"{FEATURES_INDEX} of dataset {dataset.id}")
    return info, index


def check_trainable(info: dict, index, arch: str, dataset_id: str) -> None:
    """Refuse, naming the fix, data a classifier cannot learn from: fewer than two classes with clips, or
    spectrograms too small for the CNN's four 2x2 max-pools."""
    present = sorted(int(v) for v in index["label"].unique())
    if len(present) < 2:
        names = [info["class_names"][i] for i in present]
        raise UserError(f"dataset {dataset_id} has clips of {len(present)} class {names}: a classifier needs at "
                        "least two; run get_data.py with more --classes")
    if arch in CNN_ARCHITECTURES and min(info["shape"]) < CNN_MIN_SIZE:
        raise UserError(f"dataset {dataset_id} holds spectrograms of {info['shape'][0]} mel bands x "
                        f"{info['shape'][1]} frames; --model {arch} pools them four times by 2 and needs at least "
                        f"{CNN_MIN_SIZE} of each: run preprocessing.py with --n-mels >= {CNN_MIN_SIZE} and a "
                        "--duration / --hop-length giving >= 16 frames, or use --model resnet18")


def _train_all(args: argparse.Namespace, run: tracking.Run, parser: argparse.ArgumentParser, on_epoch=None,
               device: torch.device | None = None) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = device or resolve_device(args.device)
    dataset = tracking.open_store(run).get(args.dataset_id, alias="features_dataset",
                                           needs=("features/*", FEATURES_INDEX, FEATURES_CONFIG), verify=args.verify)
    info, index = load_dataset(dataset)
    check_trainable(info, index, args.model, dataset.id)
    available = sorted(int(f) for f in index["fold"].unique())
    if args.folds is not None:
        folds = args.folds or available
    else:
        folds = [args.test_fold if args.test_fold is not None else available[-1]]
    if args.resume and len(folds) > 1:
        raise UserError("--resume continues one training run; run the remaining folds one by one with --test-fold")
    run.name_as(f"training {naming.training_descriptor(parser, args, folds)}")
    run.add_tags(naming.training_tags(args.model, folds))
    if len(folds) == 1:
        # The folds this run uses, written back to Args/: the UI shows them, and a clone reruns them.
        val_fold = args.val_fold if args.val_fold is not None else default_val_fold(folds[0], available)
        run.record_args(test_fold=folds[0], val_fold=val_fold)
    x = load_features(dataset.path, index["feature_path"].tolist(), tuple(info["shape"]),
                      hint=recover_hint(dataset.id))
    y = torch.from_numpy(index["label"].to_numpy()).long()
    common = {"dataset_id": dataset.id, "index": index, "info": info, "x": x, "y": y, "device": device,
              "on_epoch": on_epoch, "parser": parser}
    if len(folds) == 1:
        result = _train_fold(args, run, folds[0], val_fold, run.run_dir, None, **common)
        result.pop("confusion_matrix")
        return {**result, **run.identity()}

    per_fold, matrices = [], []
    for fold in folds:
        out = run.run_dir / f"fold_{fold}"
        out.mkdir(exist_ok=True)
        print(f"\n--- test fold {fold} ---")
        result = _train_fold(args, run, fold, None, out, fold, **common)
        per_fold.append(result)
        matrices.append(result.pop("confusion_matrix"))
    cv = crossval.report(run, per_fold, matrices, info["class_names"])
    return {"cross_validation": cv, "folds": per_fold, "run_dir": str(run.run_dir), **run.identity()}


def _train_fold(args: argparse.Namespace, run: tracking.Run, test_fold: int, val_fold: int | None, out: Path,
                cv_fold: int | None, dataset_id: str, index, info: dict, x: torch.Tensor, y: torch.Tensor,
                device: torch.device, parser: argparse.ArgumentParser, on_epoch=None) -> dict:
    """Train and test one model. ``cv_fold`` (in a cross-validation): its scalar series and artifacts carry the
    fold (loss/train_fold3, metrics_fold3); the model's name always does ("audio classifier cnn fold 3 ...")."""
    tag = "" if cv_fold is None else f"_fold{cv_fold}"
    class_names = info["class_names"]
    folds = index["fold"].to_numpy()
    val_fold = int(val_fold if val_fold is not None else default_val_fold(test_fold, sorted(set(folds))))
    split = split_by_fold(folds, test_fold, val_fold)
    print(f"training {args.model} on {len(split.train)} clips (validation fold {val_fold}: {len(split.val)}, "
          f"test fold {test_fold}: {len(split.test)}) on {device}")
    cfg = train_config_from(args)
    model = AudioClassifier(cfg.arch, len(class_names), pretrained=args.pretrained, weights_file=args.weights,
                            **cfg.model_kwargs())
    resume = load_checkpoint(args.resume) if args.resume else None
    started = time.time()
    def log_scalar(name: str, value: float, epoch: int) -> None:
        run.scalar(name + tag, value, epoch)
        if on_epoch is not None and name == "accuracy/val":
            on_epoch(epoch, value)

    data = {"dataset_id": dataset_id, "class_names": list(class_names), "shape": list(info["shape"])}
    best, history = fit(model, x, y, split, cfg, device, log_scalar, checkpoint_path=out / "checkpoint.pt",
                        resume=resume, data=data)
    train_seconds = time.time() - started
    model.load_state_dict(best["state"])

    # Test once, with the weights --select chose (the last epoch's, or the best on the validation fold).
    y_true = y[torch.from_numpy(split.test)].numpy()
    y_pred = predict_logits(model, x[torch.from_numpy(split.test)], device, amp=cfg.amp,
                            tta=cfg.tta).argmax(1).numpy()
    test = evaluation.summary(y_true, y_pred)
    matrix = evaluation.confusion(y_true, y_pred, len(class_names))
    series = f"test fold {test_fold}"

    confusion = evaluation.confusion_frame(matrix, class_names)
    atomic.write_csv(out / "confusion_matrix.csv", confusion, index=True)
    plots.confusion_matrix_png(matrix, class_names, out / "confusion_matrix.png",
                               f"{series}: accuracy {test['accuracy']:.3f}")
    atomic.write_csv(out / "history.csv", history)
    run.confusion_matrix(series, matrix, class_names, iteration=best["epoch"])
    per_class = evaluation.per_class_table(y_true, y_pred, class_names)
    atomic.write_csv(out / "per_class.csv", per_class)
    run.logger.report_table(title="Per-class precision and recall", series=series, iteration=0, table_plot=per_class)
    for name, value in test.items():
        run.single_value(f"test_{name}{tag}", value)
    _log_samples(run, x, y, split, y_pred, class_names, tag)

    metrics = {
        "test": test, "test_fold": test_fold, "val_fold": val_fold,
        "select": cfg.select, "model_epoch": best["epoch"], "model_val_accuracy": best["val_accuracy"],
        "best_epoch": best["best_epoch"], "best_val_accuracy": best["best_val_accuracy"],
        "epochs_run": len(history), "train_seconds": round(train_seconds, 1),
        "num_train": len(split.train), "num_val": len(split.val), "num_test": len(split.test),
        "dataset_id": dataset_id, "class_names": class_names, "device": str(device),
        "train_config": cfg.to_dict(),
    }
    model_path = out / "model.pt"
    save_model(model_path, model.cpu(), class_names, info["feature_config"], cfg.to_dict(), metrics)
    exports = [export_file(model_path, fmt) for fmt in args.export or []]
    # The serving tag (serve.py --auto-update follows it) marks a run's final model, which is also published;
    # not a fold's, nor a search trial's (optimize.py), which is a short run in the same project.
    serving = cv_fold is None and not _is_search_trial(run)
    if run.user_named:  # --task-name: the user's name for the run, and the fold in a cross-validation
        name = f"audio classifier {args.task_name}" + ("" if cv_fold is None else f" fold {cv_fold}")
    else:
        name = f"audio classifier {naming.training_descriptor(parser, args, [test_fold])}"
    model_id = _register_model(run, model_path, name, metrics, info["feature_config"], tag,
                               tags=naming.training_tags(args.model, [test_fold])
                               + ([tracking.SERVING_TAG] if serving else []), publish=serving)
    if model_id:
        metrics["model_id"] = model_id
    if cv_fold is None:
        run.output("model_id", model_id or model_path.name)
    # The pipeline's cross-validation step reads the metrics and the confusion matrix back. What goes to the
    # server holds no local path (the model is its id there); metrics.json in the run folder has them too.
    run.artifact(f"confusion_matrix{tag}", confusion)
    run.artifact(f"metrics{tag}", metrics, preview=json.dumps(metrics, indent=1))
    for e in exports:
        run.artifact(f"model{tag}_{e.format}", e.path)
    local = {**metrics, "model_path": str(model_path), "exports": {e.format: str(e.path) for e in exports}}
    atomic.write_json(out / "metrics.json", local)
    return {**local, "run_dir": str(out), "confusion_matrix": matrix}


SAMPLE_LABEL_CHARS = 20  # what the web UI's 180 px debug-sample card shows of its series name


def sample_label(class_name: str) -> str:
    """A class name as a debug sample's series: cut to what its card shows."""
    return class_name if len(class_name) <= SAMPLE_LABEL_CHARS else class_name[:SAMPLE_LABEL_CHARS - 1] + "\u2026"


def _log_samples(run: tracking.Run, x: torch.Tensor, y: torch.Tensor, split, y_pred, class_names: list[str],
                 tag: str) -> None:
    """One training and one test spectrogram per class as ClearML debug samples: title 'train' or 'test'
    (and the fold), series the true class, so that two runs' samples line up in the compare view; the test
    one has its prediction written over it (green when right, red when wrong)."""
    for part, indices in (("train", split.train), ("test", split.test)):
        labels = y[torch.from_numpy(indices)].numpy()
        for k, name in enumerate(class_names):
            where = (labels == k).nonzero()[0]
            if not where.size:
                continue
            spec = x[int(indices[where[0]])].float().numpy()
            if part == "train":
                heading, color = name, "black"
            else:
                predicted = class_names[int(y_pred[where[0]])]
                heading = f"predicted {predicted}"
                color = "forestgreen" if predicted == name else "crimson"
            image = plots.labelled_spectrogram(spec, heading, color)
            run.logger.report_image(title=f"{part}{tag}", series=sample_label(name), iteration=0, image=image)


def _is_search_trial(run: tracking.Run) -> bool:
    """A trial of a hyperparameter search: ClearML's optimizer tags the clones it runs 'optimization' and
    'opt: <optimizer task id>' (clearml/automation/optimization.py)."""
    if run.offline or run.task is None:
        return False
    return any(t == "optimization" or t.startswith("opt:") for t in run.task.get_tags() or [])


def _register_model(run: tracking.Run, model_path, name: str, metrics: dict, feature_config: dict, tag: str,
                    tags: list[str] | None = None, publish: bool = False) -> str | None:
    """Online: a ClearML OutputModel with the label enumeration and feature config, its weights uploaded to
    --storage or the files server (named explicitly: under an agent Task.init(output_uri=...) is ignored,
    and without a destination only a file:// path on the training machine would be recorded), its results,
    classes and settings as metadata (the model page's METADATA tab, and columns of the models table), a
    description without local paths, and, with ``publish``, published. Returns its id. Offline the SDK's
    OutputModel is broken (clearml 2.1.12), so the file goes into the session as an artifact. ``tags``: the
    model's tags (tracking.SERVING_TAG on a run's final model, for serve.py --auto-update)."""
    if run.offline:
        # What push_offline.py needs to register it as it would have been online (audioclf/sync.py).
        run.artifact(f"model{tag}", model_path, metadata=sync.offline_model_metadata(name, tags or [], publish))
        return None
    from clearml import OutputModel

    class_names = metrics["class_names"]
    test = metrics["test"]
    comment = (f"{metrics['train_config']['arch']} trained by task {run.task.id} on features dataset "
               f"{metrics['dataset_id']}: test fold {metrics['test_fold']} accuracy {test['accuracy']:.4f}, "
               f"macro-F1 {test['f1_macro']:.4f} ({metrics['num_test']} clips, {len(class_names)} classes)")
    output_model = OutputModel(task=run.task, name=name, framework="PyTorch", comment=comment,
                               label_enumeration={c: i for i, c in enumerate(class_names)},
                               config_dict={"feature_config": feature_config}, tags=tags)
    output_model.update_weights(weights_filename=str(model_path), upload_uri=run.upload_destination,
                                auto_delete_file=False, async_enable=False, update_comment=False)
    output_model.set_all_metadata(model_metadata(metrics, feature_config), replace=True)
    if publish:
        output_model.publish()
    return output_model.id


def model_metadata(metrics: dict, feature_config: dict) -> dict[str, dict[str, str]]:
    """What the model page's METADATA tab lists: the test results, the classes, the training and feature
    settings (ClearML metadata: {key: {"value": str, "type": ...}})."""
    def entry(value) -> dict[str, str]:
        kind = ("bool" if isinstance(value, bool) else "float" if isinstance(value, float) else
                "int" if isinstance(value, int) else "str")
        return {"value": str(round(value, 4) if isinstance(value, float) else value), "type": kind}

    train = metrics["train_config"]
    values = {"test_accuracy": float(metrics["test"]["accuracy"]), "test_f1_macro": float(metrics["test"]["f1_macro"]),
              "test_fold": int(metrics["test_fold"]), "val_fold": int(metrics["val_fold"]),
              "num_classes": len(metrics["class_names"]), "classes": ", ".join(metrics["class_names"]),
              "dataset_id": metrics["dataset_id"], "model": train["arch"], "epochs_run": int(metrics["epochs_run"]),
              **{f"train.{k}": v for k, v in train.items() if isinstance(v, (int, float, str)) and v is not None},
              **{f"features.{k}": v for k, v in feature_config.items() if isinstance(v, (int, float, str))}}
    return {k: entry(v) for k, v in values.items()}


if __name__ == "__main__":
    stopping.run_script(main, "training")
