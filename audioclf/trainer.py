"""The training loop: the whole features set in one tensor, batches by indexing.

UrbanSound8K's 8732 clips x 64 mels x 173 frames in float16 are about 190 MB,
so the dataset is loaded once (on the GPU when there is one) and every batch is
an index into it: no file read per item, no loader workers. Augmentation runs
on the batch, on the device: a random circular time shift and SpecAugment-style
time and frequency masks.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from . import evaluation
from .models import AudioClassifier


@dataclass
class TrainConfig:
    arch: str = "compact"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.05
    patience: int = 10  # epochs without a better validation accuracy before stopping
    augment: bool = True
    mixup: float = 0.0  # Beta(alpha, alpha) mixup of training batches; 0 turns it off
    amp: bool = True  # bf16 autocast on CUDA (ignored on the CPU)
    channels_last: bool = False  # NHWC convolutions; measured slower for ResNet-18 on this CPU
    compile: bool = False  # torch.compile the model
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    test_fold: int
    val_fold: int


def split_by_fold(folds: np.ndarray, test_fold: int, val_fold: int) -> Split:
    """Train on every fold but the test and validation folds, which are kept apart."""
    available = sorted({int(f) for f in folds})
    for name, fold in (("--test-fold", test_fold), ("--val-fold", val_fold)):
        if fold not in available:
            raise ValueError(f"{name} {fold} is not a fold of this dataset; folds: {available}")
    if test_fold == val_fold:
        raise ValueError(f"--val-fold must differ from --test-fold ({test_fold})")
    train = np.flatnonzero((folds != test_fold) & (folds != val_fold))
    if train.size == 0:
        raise ValueError("no training clips left after removing the test and validation folds")
    return Split(train=train, val=np.flatnonzero(folds == val_fold), test=np.flatnonzero(folds == test_fold),
                 test_fold=test_fold, val_fold=val_fold)


def default_val_fold(test_fold: int, folds: list[int]) -> int:
    """The fold just before the test fold, wrapping around (test 10 -> val 9, test 1 -> val 10)."""
    ordered = sorted(int(f) for f in folds)
    return ordered[ordered.index(test_fold) - 1] if test_fold in ordered else test_fold - 1


def load_features(path_of: Callable[[str], Path], feature_paths: list[str], shape: tuple[int, int],
                  progress: bool = True) -> torch.Tensor:
    """All spectrograms in one float16 tensor (N, n_mels, frames), read once."""
    out = torch.empty((len(feature_paths), *shape), dtype=torch.float16)
    for i, rel in enumerate(tqdm(feature_paths, desc="load features", unit="clip", disable=not progress)):
        array = np.load(path_of(rel))
        if array.shape != tuple(shape):
            raise ValueError(f"{rel}: shape {array.shape}, expected {tuple(shape)} from features.json")
        out[i] = torch.from_numpy(array)
    return out


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random circular time shift plus one time mask and one frequency mask per clip, filled with
    the clip's minimum (the dB floor). x: (B, M, T) -> (B, M, T)."""
    batch, mels, frames = x.shape
    dev = x.device
    shift = torch.randint(0, frames, (batch,), generator=generator, device="cpu").to(dev)
    source = (torch.arange(frames, device=dev)[None, :] - shift[:, None]) % frames  # (B, T)
    rolled = torch.gather(x, 2, source[:, None, :].expand(batch, mels, frames))
    floor = rolled.amin(dim=(1, 2), keepdim=True)

    def mask(size: int, max_width: int) -> torch.Tensor:
        width = torch.randint(0, max_width + 1, (batch,), generator=generator).to(dev)
        start = (torch.rand(batch, generator=generator).to(dev) * (size - width + 1)).long()
        pos = torch.arange(size, device=dev)[None, :]
        return (pos >= start[:, None]) & (pos < (start + width)[:, None])  # (B, size)

    masked = mask(mels, mels // 8)[:, :, None] | mask(frames, frames // 8)[:, None, :]
    return torch.where(masked, floor, rolled)


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 256,
                   amp: bool = True) -> torch.Tensor:
    model.eval()
    with _autocast(device, amp):
        outs = [model(x[i:i + batch_size].to(device).float()).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(outs) if outs else torch.empty(0)


CHECKPOINT_FORMAT = "audioclf.checkpoint/1"


def save_checkpoint(path: Path, **state) -> None:
    """Everything needed to continue: weights, optimizer, schedule, RNG states, history, best so far.
    Written under a temporary name and renamed, so an interruption never leaves half a checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"--resume {path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"--resume {path} is not a training checkpoint (expected format {CHECKPOINT_FORMAT})")
    return state


def fit(
    model: AudioClassifier,
    x: torch.Tensor,
    y: torch.Tensor,
    split: Split,
    cfg: TrainConfig,
    device: torch.device,
    log_scalar: Callable[[str, float, int], None],
    progress: bool = True,
    checkpoint_path: Path | None = None,
    resume: dict | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Train with AdamW and a one-cycle schedule; keep the weights with the best validation accuracy.

    ``checkpoint_path``: written after every epoch. ``resume``: a loaded checkpoint of the same config and
    split to continue from. Returns the best state (weights, epoch, validation accuracy) and the history.
    """
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    x = x.to(device)  # float16 on the device; batches are cast to float32 when taken
    y = y.to(device)
    train_x = x[torch.from_numpy(split.train).to(device)].float()
    model.set_normalization(float(train_x.mean()), float(train_x.std()))
    del train_x
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if cfg.compile else model  # the same parameters; state_dict from `model`

    steps_per_epoch = math.ceil(len(split.train) / cfg.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, epochs=cfg.epochs,
                                                    steps_per_epoch=steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    train_idx = torch.from_numpy(split.train)
    val_x, val_y = x[torch.from_numpy(split.val).to(device)], y[torch.from_numpy(split.val).to(device)]
    mixup = torch.distributions.Beta(cfg.mixup, cfg.mixup) if cfg.mixup > 0 else None

    best = {"val_accuracy": -1.0, "epoch": 0, "state": None}
    history: list[dict] = []
    first_epoch = 1
    if resume is not None:
        if resume["train_config"] != cfg.to_dict() or resume["folds"] != [split.test_fold, split.val_fold]:
            raise ValueError("--resume: the checkpoint was made with another training config or folds "
                             f"({resume['train_config']}, folds {resume['folds']}); rerun with the same arguments")
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        generator.set_state(resume["generator"])
        torch.set_rng_state(resume["cpu_rng"])
        best, history = resume["best"], list(resume["history"])
        first_epoch = resume["epoch"] + 1
        print(f"resuming after epoch {resume['epoch']} (best validation accuracy so far "
              f"{best['val_accuracy']:.4f} at epoch {best['epoch']})")

    bar = tqdm(range(first_epoch, cfg.epochs + 1), desc=f"train {cfg.arch}", unit="epoch", disable=not progress)
    for epoch in bar:
        if epoch - best["epoch"] > cfg.patience:
            print(f"early stop before epoch {epoch}: no better validation accuracy since epoch {best['epoch']}")
            break
        model.train()
        order = train_idx[torch.randperm(len(train_idx), generator=generator)].to(device)
        total_loss, preds, targets = 0.0, [], []
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            xb, yb = x[idx].float(), y[idx]
            if cfg.augment:
                xb = augment(xb, generator)
            with _autocast(device, cfg.amp):
                if mixup is not None:
                    # Mix each clip with another of the batch; the loss mixes their labels alike.
                    lam = float(mixup.sample())
                    perm = torch.randperm(len(idx), generator=generator).to(device)
                    logits = step_model(lam * xb + (1 - lam) * xb[perm])
                    loss = lam * loss_fn(logits, yb) + (1 - lam) * loss_fn(logits, yb[perm])
                else:
                    logits = step_model(xb)
                    loss = loss_fn(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(idx)
            preds.append(logits.argmax(1).cpu())
            targets.append(yb.cpu())
        train_metrics = evaluation.summary(torch.cat(targets).numpy(), torch.cat(preds).numpy())
        val_logits = predict_logits(step_model, val_x, device, amp=cfg.amp)
        val_loss = float(loss_fn(val_logits, val_y.cpu()))
        val_metrics = evaluation.summary(val_y.cpu().numpy(), val_logits.argmax(1).numpy())
        row = {"epoch": epoch, "train_loss": total_loss / len(order), "val_loss": val_loss,
               "train_accuracy": train_metrics["accuracy"], "val_accuracy": val_metrics["accuracy"],
               "train_f1_macro": train_metrics["f1_macro"], "val_f1_macro": val_metrics["f1_macro"],
               "lr": scheduler.get_last_lr()[0]}
        history.append(row)
        for key in ("loss", "accuracy", "f1_macro"):
            log_scalar(f"{key}/train", row[f"train_{key}"], epoch)
            log_scalar(f"{key}/val", row[f"val_{key}"], epoch)
        log_scalar("lr/lr", row["lr"], epoch)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_acc=f"{row['val_accuracy']:.3f}")
        if row["val_accuracy"] > best["val_accuracy"]:
            best = {"val_accuracy": row["val_accuracy"], "epoch": epoch,
                    "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        if checkpoint_path is not None:
            save_checkpoint(checkpoint_path, epoch=epoch, model=model.state_dict(),
                            optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                            generator=generator.get_state(), cpu_rng=torch.get_rng_state(), best=best,
                            history=history, train_config=cfg.to_dict(), folds=[split.test_fold, split.val_fold])
    return best, pd.DataFrame(history)
