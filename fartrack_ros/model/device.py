"""Choose the torch device from a user string (auto, cpu, cuda, cuda:N) with a clear fallback."""

from __future__ import annotations

import logging
from typing import Callable, Optional

import torch

from ..choices import is_device_name

_LOG = logging.getLogger(__name__)


def resolve_device(device: str, strict: bool = False, warn: Optional[Callable[[str], None]] = None) -> torch.device:
    """torch.device for ``device``; CUDA that is absent falls back to CPU with one warning, through ``warn``
    (default: this module's logger), or is an error if strict."""
    text = str(device).strip().lower()
    if not is_device_name(text):
        raise ValueError(f"invalid device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    reason = cuda_unavailable_reason(text)
    if reason is None:
        return torch.device(text)
    if strict:
        raise RuntimeError(f"device {device!r} requested but {reason} (device_strict is set)")
    (warn or _LOG.warning)(f"device {device!r} requested but {reason}: running on CPU")
    return torch.device("cpu")


def cuda_unavailable_reason(device: str) -> "str | None":
    """Why the CUDA device named by ``device`` cannot be used (None if it can, or is not CUDA)."""
    text = str(device).strip().lower()
    if not is_device_name(text) or not text.startswith("cuda"):
        return None
    index = int(text.split(":")[1]) if ":" in text else 0
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if index < available:
        return None
    return "no CUDA device is available" if available == 0 else f"only {available} CUDA device(s) exist"
