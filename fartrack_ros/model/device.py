"""Choose the torch device from a user string (auto, cpu, cuda, cuda:N) with a clear fallback."""

from __future__ import annotations

import logging
import re

import torch

_LOG = logging.getLogger(__name__)
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(device: str, strict: bool = False) -> torch.device:
    """torch.device for ``device``; CUDA that is absent falls back to CPU with one warning (error if strict)."""
    text = str(device).strip().lower()
    if not _DEVICE_PATTERN.match(text):
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
    _LOG.warning("device %r requested but %s: running on CPU", device, reason)
    return torch.device("cpu")


def cuda_unavailable_reason(device: str) -> "str | None":
    """Why the CUDA device named by ``device`` cannot be used (None if it can, or is not CUDA)."""
    text = str(device).strip().lower()
    if not _DEVICE_PATTERN.match(text) or not text.startswith("cuda"):
        return None
    index = int(text.split(":")[1]) if ":" in text else 0
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if index < available:
        return None
    return "no CUDA device is available" if available == 0 else f"only {available} CUDA device(s) exist"
