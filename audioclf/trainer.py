"""The training loop: the whole features set in one tensor, batches by indexing.

UrbanSound8K's 8732 clips x 64 mels x 173 frames in float16 are about 190 MB,
so the dataset is loaded once (on the GPU when there is one) and every batch is
an index into it: no file read per item, no loader workers. Augmentation runs
on the batch, on the device: a random circular time shift and SpecAugment-style
time and frequency masks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from . import atomic, evaluation
from .errors import UserError
from .models import AudioClassifier
from .train_config import OLD_DEFAULTS, SELECT_MODES, TrainConfig, same_config  # noqa: F401  (re-exported: the config lives there)


# The per-epoch scalars: TensorBoard tag ('title/series' in ClearML) -> history.csv column.
SCALARS = {"loss/train": "train_loss", "loss/val": "val_loss", "accuracy/train": "train_accuracy",
           "accuracy/val": "val_accuracy", "f1_macro/val": "val_f1_macro", "lr/lr": "lr"}


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
            raise UserError(f"{name} {fold} is not a fold of this dataset; folds: {available}")
    if len(available) < 3:
        raise UserError(f"this dataset has {len(available)} fold(s), {available}: training needs three, one to test "
                        "on, one to validate on and one or more to train on; put the clips in more folds (the "
                        "metadata's fold column)")
    if test_fold == val_fold:
        raise UserError(f"--val-fold must differ from --test-fold ({test_fold})")
    train = np.flatnonzero((folds != test_fold) & (folds != val_fold))
    if train.size == 0:
        raise UserError("no training clips left after removing the test and validation folds")
    return Split(train=train, val=np.flatnonzero(folds == val_fold), test=np.flatnonzero(folds == test_fold),
                 test_fold=test_fold, val_fold=val_fold)


def default_val_fold(test_fold: int, folds: list[int]) -> int:
    """The fold just before the test fold, wrapping around (test 10 -> val 9, test 1 -> val 10)."""
    ordered = sorted(int(f) for f in folds)
    return ordered[ordered.index(test_fold) - 1] if test_fold in ordered else test_fold - 1


class FeatureFileError(UserError):
    """A spectrogram file that cannot be trained on; the message names it and the fix."""


def load_features(path_of: Callable[[str], Path], feature_paths: list[str], shape: tuple[int, int],
                  progress: bool = True, hint: str = "rerun preprocessing.py on the raw dataset") -> torch.Tensor:
    """All spectrograms in one float16 tensor (N, n_mels, frames), read once. A file that does not load, has
    another shape, or holds NaN or Inf is refused (FeatureFileError naming it and ``hint``): nothing is ever
    trained on garbage."""
    out = torch.empty((len(feature_paths), *shape), dtype=torch.float16)
    for i, rel in enumerate(tqdm(feature_paths, desc="load features", unit="clip", disable=not progress)):
        path = path_of(rel)
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise FeatureFileError(f"{path}: the spectrogram {rel} cannot be read ({type(exc).__name__}: {exc}); "
                                   f"{hint}") from exc
        if array.shape != tuple(shape):
            raise FeatureFileError(f"{path}: the spectrogram {rel} has shape {array.shape}, expected {tuple(shape)} "
                                   f"from features.json; {hint}")
        if not np.isfinite(array).all():
            raise FeatureFileError(f"{path}: the spectrogram {rel} holds NaN or Inf values; {hint}")
        out[i] = torch.from_numpy(array.astype(np.float16, copy=False))
    return out


def augment(x: torch.Tensor, generator: torch.Generator, masks: int = 1, freq_shift: int = 0,
            eq_db: float = 0.0) -> torch.Tensor:
    """Training-batch augmentation on the device. x: (B, M, T) dB -> (B, M, T).

    A random circular time shift; ``freq_shift``: the mel axis shifted by up to that many bands (edges
    repeated), a pitch change; ``eq_db``: a smooth random curve over the mel bands added (a microphone's
    colour); then ``masks`` time masks and frequency masks per clip, each up to 1/8 of its axis, filled
    with the clip's minimum (the dB floor)."""
    batch, mels, frames = x.shape
    dev = x.device
    shift = torch.randint(0, frames, (batch,), generator=generator, device="cpu").to(dev)
    source = (torch.arange(frames, device=dev)[None, :] - shift[:, None]) % frames  # (B, T)
    out = torch.gather(x, 2, source[:, None, :].expand(batch, mels, frames))
    if freq_shift > 0:
        bands = torch.randint(-freq_shift, freq_shift + 1, (batch,), generator=generator).to(dev)
        rows = (torch.arange(mels, device=dev)[None, :] - bands[:, None]).clamp(0, mels - 1)  # (B, M)
        out = torch.gather(out, 1, rows[:, :, None].expand(batch, mels, frames))
    if eq_db > 0:
        # Three random cosines over the band index: a smooth curve, scaled to a random peak <= eq_db.
        pos = torch.linspace(0, math.pi, mels, device=dev)[None, :, None]  # (1, M, 1)
        k = torch.arange(1, 4, device=dev, dtype=out.dtype)[None, None, :]  # (1, 1, 3)
        amps = torch.randn(batch, 1, 3, generator=generator).to(dev, out.dtype)
        phases = (torch.rand(batch, 1, 3, generator=generator) * 2 * math.pi).to(dev, out.dtype)
        curve = (amps * torch.cos(k * pos + phases)).sum(-1)  # (B, M)
        peak = curve.abs().amax(dim=1, keepdim=True).clamp_min(1e-6)
        scale = torch.rand(batch, 1, generator=generator).to(dev, out.dtype) * eq_db
        out = out + (curve / peak * scale)[:, :, None]
    floor = out.amin(dim=(1, 2), keepdim=True)

    def mask(size: int, max_width: int) -> torch.Tensor:
        width = torch.randint(0, max_width + 1, (batch,), generator=generator).to(dev)
        start = (torch.rand(batch, generator=generator).to(dev) * (size - width + 1)).long()
        pos = torch.arange(size, device=dev)[None, :]
        return (pos >= start[:, None]) & (pos < (start + width)[:, None])  # (B, size)

    masked = torch.zeros(batch, mels, frames, dtype=torch.bool, device=dev)
    for _ in range(masks):
        masked |= mask(mels, mels // 8)[:, :, None] | mask(frames, frames // 8)[:, None, :]
    return torch.where(masked, floor, out)


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 256,
                   amp: bool = True, tta: int = 1) -> torch.Tensor:
    """Logits for (N, M, T) spectrograms. ``tta`` > 1: the log of the mean softmax over that many
    circular time shifts (0, T/tta, 2T/tta, ...), the clip looped as if it were heard from other offsets."""
    model.eval()
    frames = x.shape[-1] if x.ndim == 3 else 1
    shifts = [round(i * frames / tta) for i in range(max(1, tta))]
    with _autocast(device, amp):
        outs = []
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device).float()
            if len(shifts) == 1:
                outs.append(model(xb).float().cpu())
                continue
            probs = torch.stack([model(torch.roll(xb, s, dims=-1)).float().softmax(-1) for s in shifts]).mean(0)
            outs.append(probs.clamp_min(1e-12).log().cpu())
    return torch.cat(outs) if outs else torch.empty(0)


CHECKPOINT_FORMAT = "audioclf.checkpoint/1"


def save_checkpoint(path: Path, **state) -> None:
    """Everything needed to continue: weights, optimizer, schedule, RNG states, history, best so far.
    Written under a temporary name and renamed, so an interruption never leaves half a checkpoint."""
    atomic.save_torch(path, {"format": CHECKPOINT_FORMAT, **state})


def load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"--resume {path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"--resume {path} is not a training checkpoint (expected format {CHECKPOINT_FORMAT})")
    return state


class NonFiniteError(UserError):
    """Training diverged (a NaN or Inf loss or weight); nothing is saved."""


def _finite_state(state: dict) -> bool:
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def _snapshot(model: nn.Module, which: str, lr: float) -> dict:
    """A CPU copy of ``model``'s weights; NonFiniteError (naming ``which`` weights) when one is not finite."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if not _finite_state(state):
        raise NonFiniteError(f"the weights {which} are not finite: training diverged, and no model was saved. "
                             f"Lower --lr (now {lr})")
    return state


@dataclass
class _Run:
    """What one training run holds between its parts (fit's set-up, resume, epochs, checkpoints)."""

    cfg: TrainConfig
    device: torch.device
    model: AudioClassifier
    step_model: nn.Module  # the model, or its torch.compile'd form: the same parameters
    averaged: nn.Module | None  # the EMA copy (weights and batch-norm statistics) when cfg.ema is set
    eval_model: nn.Module  # what is validated and kept: the EMA copy's module, or the model
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: nn.Module
    generator: torch.Generator
    mixup: torch.distributions.Beta | None
    x: torch.Tensor
    y: torch.Tensor
    train_idx: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor


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
    data: dict | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Train with AdamW and a one-cycle schedule and return the weights ``cfg.select`` names: those of the
    last epoch ("last": the end of the schedule, where the learning rate has annealed) or those with the
    best validation accuracy ("best-val"). The test fold takes part in neither.

    With ``cfg.ema`` the exponential moving average of the weights is the model that is validated,
    chosen and returned. ``checkpoint_path``: written after every epoch. ``resume``: a loaded checkpoint of
    the same config and split to continue from. ``data``: what identifies the training data (dataset id, class
    names, feature shape), written into the checkpoint; a resume from another dataset's checkpoint is refused.
    Returns the chosen state (``state``, its ``epoch`` and
    ``val_accuracy``, and ``best_epoch`` / ``best_val_accuracy``: the best validation accuracy of any epoch)
    and the history. Raises NonFiniteError when the loss or the weights stop being finite.
    """
    if cfg.batch_size < 1 or cfg.epochs < 1:
        raise UserError(f"--batch-size and --epochs must be at least 1 (got {cfg.batch_size}, {cfg.epochs})")
    if cfg.select not in SELECT_MODES:
        raise UserError(f"--select {cfg.select!r}: choose one of {', '.join(SELECT_MODES)}")
    run = _start(model, x, y, split, cfg, device)
    best = {"val_accuracy": -1.0, "epoch": 0, "state": None}
    history: list[dict] = []
    first_epoch = 1
    if resume is not None:
        best, history, first_epoch = _resume(run, resume, split, data)

    bar = tqdm(range(first_epoch, cfg.epochs + 1), desc=f"train {cfg.arch}", unit="epoch", disable=not progress)
    for epoch in bar:
        if cfg.patience and epoch - best["epoch"] > cfg.patience:
            print(f"early stop before epoch {epoch}: no better validation accuracy since epoch {best['epoch']}")
            break
        row = _validate(run, epoch, *_train_epoch(run, epoch))
        history.append(row)
        # Eight series per run, what the web UI's compare view shows before a user picks more (it selects the
        # first 8 in title order, after the test results): loss and accuracy of both splits, the validation
        # macro-F1 and the learning rate. The training macro-F1, of augmented batches, is in history.csv.
        for tag, column in SCALARS.items():
            log_scalar(tag, row[column], epoch)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_acc=f"{row['val_accuracy']:.3f}")
        if row["val_accuracy"] > best["val_accuracy"]:
            # Only best-val returns these weights; "last" needs just the epoch and its accuracy.
            state = _snapshot(run.eval_model, f"of epoch {epoch}", cfg.lr) if cfg.select == "best-val" else None
            best = {"val_accuracy": row["val_accuracy"], "epoch": epoch, "state": state}
        if checkpoint_path is not None:
            _checkpoint(run, checkpoint_path, epoch, best, history, split, data)
    chosen = best
    if cfg.select == "last" and history:
        chosen = {"val_accuracy": history[-1]["val_accuracy"], "epoch": history[-1]["epoch"],
                  "state": _snapshot(run.eval_model, "of the last epoch", cfg.lr)}
    return {**chosen, "best_epoch": best["epoch"], "best_val_accuracy": best["val_accuracy"]}, pd.DataFrame(history)


def _start(model: AudioClassifier, x: torch.Tensor, y: torch.Tensor, split: Split, cfg: TrainConfig,
           device: torch.device) -> _Run:
    """Seed, normalization, device placement, optimizer and schedule: a run before its first epoch."""
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    x = x.to(device)  # float16 on the device; batches are cast to float32 when taken
    y = y.to(device)
    model.fit_normalization(x[torch.from_numpy(split.train).to(device)], per_band=cfg.band_norm)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if cfg.compile else model  # the same parameters; state_dict from `model`
    averaged = (torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(
        cfg.ema), use_buffers=True) if cfg.ema > 0 else None)
    steps_per_epoch = math.ceil(len(split.train) / cfg.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, epochs=cfg.epochs,
                                                    steps_per_epoch=steps_per_epoch)
    val = torch.from_numpy(split.val).to(device)
    return _Run(cfg=cfg, device=device, model=model, step_model=step_model, averaged=averaged,
                eval_model=averaged.module if averaged is not None else model, optimizer=optimizer,
                scheduler=scheduler, loss_fn=nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing),
                generator=generator, mixup=torch.distributions.Beta(cfg.mixup, cfg.mixup) if cfg.mixup > 0 else None,
                x=x, y=y, train_idx=torch.from_numpy(split.train), val_x=x[val], val_y=y[val])


def _resume(run: _Run, resume: dict, split: Split, data: dict | None) -> tuple[dict, list[dict], int]:
    """Load a checkpoint into the run (after checking it was made with this config, folds and data): the best
    epoch so far, the history and the first epoch still to train."""
    if not same_config(resume["train_config"], run.cfg) or resume["folds"] != [split.test_fold, split.val_fold]:
        raise UserError("--resume: the checkpoint was made with another training config or folds "
                        f"({resume['train_config']}, folds {resume['folds']}); rerun with the same arguments")
    if data is not None and resume.get("data") not in (None, data):
        raise UserError(f"--resume: the checkpoint was made on other data ({resume['data']}), not on "
                        f"{data}; resume with the dataset it was made on, or start afresh")
    try:
        run.model.load_state_dict(resume["model"])
    except RuntimeError as exc:  # another class count or input shape than this dataset's
        raise UserError("--resume: the checkpoint's model does not fit this dataset (other classes or feature "
                        f"shape: {str(exc).splitlines()[-1].strip()}); resume with the dataset it was made "
                        "on") from exc
    if run.averaged is not None:
        run.averaged.load_state_dict(resume["averaged"])
    run.optimizer.load_state_dict(resume["optimizer"])
    run.scheduler.load_state_dict(resume["scheduler"])
    run.generator.set_state(resume["generator"])
    torch.set_rng_state(resume["cpu_rng"])
    best = resume["best"]
    print(f"resuming after epoch {resume['epoch']} (best validation accuracy so far "
          f"{best['val_accuracy']:.4f} at epoch {best['epoch']})")
    return best, list(resume["history"]), resume["epoch"] + 1


def _train_epoch(run: _Run, epoch: int) -> tuple[float, dict]:
    """One pass over the training folds in a seeded order: the mean loss and the training metrics."""
    cfg, device = run.cfg, run.device
    run.model.train()
    order = run.train_idx[torch.randperm(len(run.train_idx), generator=run.generator)].to(device)
    # Sums stay on the device: one host synchronisation per epoch, not per step.
    total_loss = torch.zeros((), device=device)
    preds, targets = [], []
    for start in range(0, len(order), cfg.batch_size):
        idx = order[start:start + cfg.batch_size]
        xb, yb = run.x[idx].float(), run.y[idx]
        if cfg.augment:
            xb = augment(xb, run.generator, masks=cfg.masks, freq_shift=cfg.freq_shift, eq_db=cfg.eq_db)
        with _autocast(device, cfg.amp):
            if run.mixup is not None:
                # Mix each clip with another of the batch; the loss mixes their labels alike.
                lam = float(run.mixup.sample())
                perm = torch.randperm(len(idx), generator=run.generator).to(device)
                logits = run.step_model(lam * xb + (1 - lam) * xb[perm])
                loss = lam * run.loss_fn(logits, yb) + (1 - lam) * run.loss_fn(logits, yb[perm])
                # The training accuracy counts the label that dominates the mix: with one lambda per
                # batch, counting yb alone would score a batch with lambda near 0 as wrong.
                yb = yb if lam >= 0.5 else yb[perm]
            else:
                logits = run.step_model(xb)
                loss = run.loss_fn(logits, yb)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.scheduler.step()
        if run.averaged is not None:
            run.averaged.update_parameters(run.model)
        total_loss += loss.detach().float() * len(idx)
        preds.append(logits.detach().argmax(1))
        targets.append(yb)
    epoch_loss = float(total_loss) / len(order)
    if not math.isfinite(epoch_loss):
        raise NonFiniteError(
            f"the training loss became {epoch_loss} in epoch {epoch}: training diverged, and no model was saved. "
            f"Lower --lr (now {cfg.lr}), or check the features for extreme values")
    return epoch_loss, evaluation.summary(torch.cat(targets).cpu().numpy(), torch.cat(preds).cpu().numpy())


def _validate(run: _Run, epoch: int, epoch_loss: float, train_metrics: dict) -> dict:
    """The epoch's row of the history: training loss and metrics, and those of the validation fold."""
    val_logits = predict_logits(run.eval_model, run.val_x, run.device, amp=run.cfg.amp, tta=run.cfg.tta)
    val_loss = float(nn.functional.cross_entropy(val_logits, run.val_y.cpu()))
    val_metrics = evaluation.summary(run.val_y.cpu().numpy(), val_logits.argmax(1).numpy())
    return {"epoch": epoch, "train_loss": epoch_loss, "val_loss": val_loss,
            "train_accuracy": train_metrics["accuracy"], "val_accuracy": val_metrics["accuracy"],
            "train_f1_macro": train_metrics["f1_macro"], "val_f1_macro": val_metrics["f1_macro"],
            "lr": run.scheduler.get_last_lr()[0]}


def _checkpoint(run: _Run, path: Path, epoch: int, best: dict, history: list[dict], split: Split,
                data: dict | None) -> None:
    """Everything _resume needs to continue after ``epoch`` exactly as if the run had not stopped."""
    save_checkpoint(path, epoch=epoch, model=run.model.state_dict(),
                    averaged=run.averaged.state_dict() if run.averaged is not None else None,
                    optimizer=run.optimizer.state_dict(), scheduler=run.scheduler.state_dict(),
                    generator=run.generator.get_state(), cpu_rng=torch.get_rng_state(), best=best,
                    history=history, train_config=run.cfg.to_dict(), folds=[split.test_fold, split.val_fold],
                    data=data)
