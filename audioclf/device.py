"""Resolve the compute device once; callers pass it down."""

from __future__ import annotations

import torch

from .cli import DEVICE_CHOICES, device_name
from .errors import UserError


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when available, else CPU; 'cpu', 'cuda', 'cuda:1' force one. A UserError naming
    --device for anything else, or for CUDA on a machine without it."""
    try:
        name = device_name(name)
    except Exception:  # argparse.ArgumentTypeError: the same words as the parser's
        raise UserError(f"--device {name}: expected {DEVICE_CHOICES}") from None
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                        f"numbered from 0; use --device cuda or auto")
    return device


def device_before_work(parser, args) -> torch.device | None:
    """--device resolved before any work or ClearML session starts (an argparse error, exit 2: a machine without
    CUDA stops at once, not after loading the data); None for a run that --queue hands to an agent, whose
    machine resolves it."""
    from clearml.config import running_remotely

    if getattr(args, "queue", None) and not running_remotely():
        return None
    try:
        return resolve_device(args.device)
    except UserError as exc:
        parser.error(str(exc))
