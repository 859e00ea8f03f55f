"""Stage 3: features dataset -> trained CNN, metrics and a confusion matrix.

    python training.py --dataset-id <features id printed by preprocessing.py>
    python training.py --dataset-id <id> --model resnet18 --epochs 40 --test-fold 1

Splits by UrbanSound8K's predefined folds: the test fold (default 10) and a
validation fold (default: the fold before it) are kept apart from training.
Per epoch, training and validation loss, accuracy and macro-F1 go to
TensorBoard and ClearML. The weights with the best validation accuracy are
tested once on the test fold. The run folder receives metrics.json, the
confusion matrix (PNG and CSV), per-class precision/recall, the epoch history,
the TensorBoard events and model.pt (weights, architecture, class names and the
feature config; loads with torch.load(weights_only=True)).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from audioclf import evaluation, plots, tracking
from audioclf.device import resolve_device
from audioclf.models import ARCHITECTURES, AudioClassifier, save_model
from audioclf.trainer import TrainConfig, default_val_fold, fit, load_features, predict_logits, split_by_fold

FEATURES_INDEX = "features.csv"
FEATURES_CONFIG = "features.json"
_DEFAULTS = TrainConfig()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-id", required=True, help="id of the features dataset (printed by preprocessing.py)")
    parser.add_argument("--model", choices=ARCHITECTURES, default=_DEFAULTS.arch,
                        help="'compact': a small CNN that trains in minutes on a CPU; 'resnet18': torchvision "
                             "ResNet-18 with a 1-channel stem, as in the seed (default: %(default)s)")
    parser.add_argument("--test-fold", type=int, default=10, help="fold held out for testing (default: %(default)s)")
    parser.add_argument("--val-fold", type=int, default=None,
                        help="fold used to pick the best epoch (default: the fold before the test fold)")
    parser.add_argument("--epochs", type=int, default=_DEFAULTS.epochs, help="maximum epochs (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size, help="(default: %(default)s)")
    parser.add_argument("--lr", type=float, default=_DEFAULTS.lr,
                        help="peak learning rate of the one-cycle schedule, AdamW (default: %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=_DEFAULTS.weight_decay, help="(default: %(default)s)")
    parser.add_argument("--label-smoothing", type=float, default=_DEFAULTS.label_smoothing, help="(default: %(default)s)")
    parser.add_argument("--patience", type=int, default=_DEFAULTS.patience,
                        help="stop after this many epochs without a better validation accuracy (default: %(default)s)")
    parser.add_argument("--no-augment", action="store_true",
                        help="disable the time-shift and SpecAugment masks applied to training batches")
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed, help="(default: %(default)s)")
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when available), 'cpu' or 'cuda' (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch; 0 keeps torch's default (default: %(default)s)")
    tracking.add_tracking_args(parser, stage="training")
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = tracking.start_run("training", args, parser, task_type="training")
    try:
        result = _train(args, run)
    except (ValueError, LookupError) as exc:
        run.close()
        tracking.fail(str(exc))
    run.close()
    test = result["test"]
    print(f"test fold {result['test_fold']}: accuracy {test['accuracy']:.4f}, macro-F1 {test['f1_macro']:.4f}")
    print(f"model: {result['model_path']}")
    print(f"results: {run.where()}")
    return result


def _train(args: argparse.Namespace, run: tracking.Run) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dataset = tracking.open_store(run).get(args.dataset_id, alias="features_dataset",
                                           needs=("features/*", FEATURES_INDEX, FEATURES_CONFIG))
    info = dataset.read_json(FEATURES_CONFIG)
    index = dataset.read_table(FEATURES_INDEX)
    class_names = info["class_names"]
    folds = index["fold"].to_numpy()
    val_fold = args.val_fold if args.val_fold is not None else default_val_fold(args.test_fold, sorted(set(folds)))
    val_fold = int(val_fold)
    split = split_by_fold(folds, args.test_fold, val_fold)
    print(f"training {args.model} on {len(split.train)} clips (validation fold {val_fold}: {len(split.val)}, "
          f"test fold {args.test_fold}: {len(split.test)}) on {device}")

    x = load_features(dataset.path, index["feature_path"].tolist(), tuple(info["shape"]))
    y = torch.from_numpy(index["label"].to_numpy()).long()
    cfg = TrainConfig(arch=args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
                      patience=args.patience, augment=not args.no_augment, seed=args.seed)
    model = AudioClassifier(cfg.arch, len(class_names))
    started = time.time()
    best, history = fit(model, x, y, split, cfg, device, run.scalar)
    train_seconds = time.time() - started
    model.load_state_dict(best["state"])

    # Test once, with the weights chosen on the validation fold.
    test_x = x[torch.from_numpy(split.test)]
    y_true = y[torch.from_numpy(split.test)].numpy()
    y_pred = predict_logits(model, test_x, device).argmax(1).numpy()
    test = evaluation.summary(y_true, y_pred)
    matrix = evaluation.confusion(y_true, y_pred, len(class_names))
    per_class = evaluation.per_class_table(y_true, y_pred, class_names)

    out = run.run_dir
    confusion = evaluation.confusion_frame(matrix, class_names)
    confusion.to_csv(out / "confusion_matrix.csv")
    run.artifact("confusion_matrix", confusion)  # read back by the pipeline's cross-validation step
    plots.confusion_matrix_png(matrix, class_names, out / "confusion_matrix.png",
                               f"test fold {args.test_fold}: accuracy {test['accuracy']:.3f}")
    history.to_csv(out / "history.csv", index=False)
    run.logger.report_confusion_matrix(
        title="Confusion matrix", series=f"test fold {args.test_fold}", matrix=matrix, iteration=best["epoch"],
        xaxis="Predicted", yaxis="True", xlabels=class_names, ylabels=class_names, yaxis_reversed=True)
    run.table("Per-class precision and recall", per_class, csv_name="per_class.csv")
    for name, value in test.items():
        run.logger.report_single_value(f"test_{name}", value)

    metrics = {
        "test": test, "test_fold": args.test_fold, "val_fold": val_fold,
        "best_epoch": best["epoch"], "best_val_accuracy": best["val_accuracy"],
        "epochs_run": len(history), "train_seconds": round(train_seconds, 1),
        "num_train": len(split.train), "num_val": len(split.val), "num_test": len(split.test),
        "dataset_id": dataset.id, "class_names": class_names, "device": str(device),
        "train_config": cfg.to_dict(),
    }
    model_path = out / "model.pt"
    save_model(model_path, model.cpu(), class_names, info["feature_config"], cfg.to_dict(), metrics)
    metrics["model_path"] = str(model_path)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _register_model(run, model_path, class_names, info["feature_config"])
    run.artifact("metrics", metrics)
    return {**metrics, "run_dir": str(out), **run.identity()}


def _register_model(run: tracking.Run, model_path, class_names: list[str], feature_config: dict) -> None:
    """Online: a ClearML OutputModel with the label enumeration. Offline the SDK's OutputModel is broken
    (CLEARML_NOTES.md section 0), so the file goes into the session as an artifact."""
    if run.offline:
        run.artifact("model", model_path)
        return
    from clearml import OutputModel

    output_model = OutputModel(task=run.task, name="audio classifier", framework="PyTorch",
                               label_enumeration={name: i for i, name in enumerate(class_names)},
                               config_dict={"feature_config": feature_config})
    output_model.update_weights(weights_filename=str(model_path), auto_delete_file=False)


if __name__ == "__main__":
    main(sys.argv[1:])
