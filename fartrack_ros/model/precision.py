"""Reduced-precision inference: the layer stack in bfloat16 or float16, everything else in float32.

The layer stack is almost all of the arithmetic. Patch embedding, token assembly, the final
LayerNorm and the coordinate head stay in float32, so boxes and confidences are read from float32
logits; the prune scores are summed in float32 from attention rows computed in the lowered
precision (so in bfloat16 which tokens are pruned may flip where two scores nearly tie). bfloat16 uses the CPU's native bf16 dot products where it has them
(AVX512-BF16, AMX) and halves the memory traffic elsewhere; float16 is for CUDA.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Optional

import torch

from ..choices import PRECISIONS as PRECISION_NAMES
from .network import FARTrack

PRECISIONS = {name: getattr(torch, name) for name in PRECISION_NAMES}  # name -> torch dtype


def with_precision(model: FARTrack, precision: str) -> FARTrack:
    """``model`` itself for float32, else a copy whose layer stack holds (and computes in) ``precision``."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {list(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if dtype == model.compute_dtype:
        return model
    lowered = copy.deepcopy(model)
    for block in lowered.backbone.layers():
        block.to(dtype)
    return lowered


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> Optional[bool]:
    """Whether this CPU has bfloat16 dot products (``avx512_bf16`` or ``amx_bf16`` among the flags
    of /proc/cpuinfo); None where that cannot be read (not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def cuda_has_native_bf16(device: "str | torch.device | None" = None) -> Optional[bool]:
    """Whether CUDA ``device`` (default: the current one) computes bfloat16 natively: Ampere and
    later, compute capability 8 (a machine may mix GPUs: ``cuda:1`` is asked about itself). None
    without CUDA."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_capability(device)[0] >= 8


def precision_for_device(precision: str, device: "str | torch.device") -> tuple[str, Optional[str]]:
    """The precision to run when ``precision`` is asked for on ``device`` ("cpu", "cuda", "cuda:1",
    a torch.device), and a warning for the user when it differs or will be slow (None when all is
    well).

    float16 on a CPU is emulated, about 8x slower than float32 on this project's CPU (pico tracker
    177 ms against 21 ms), so it becomes bfloat16 where the CPU has native bf16, else float32: a
    CUDA configuration falling back to the CPU keeps its speed intent instead of crawling.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {list(PRECISIONS)}")
    device_type = torch.device(device).type
    if device_type == "cuda" and precision == "bfloat16" and cuda_has_native_bf16(device) is False:
        return precision, ("this GPU has no native bfloat16 arithmetic (it came with Ampere): bfloat16 is "
                           "emulated and may run slower than float32; float16 is this GPU's fast precision")
    if device_type != "cpu" or precision == "float32":
        return precision, None
    native = cpu_has_native_bf16()
    if precision == "float16":
        chosen = "bfloat16" if native else "float32"
        return chosen, (f"precision float16 is for CUDA; on the CPU it is emulated and about 8x slower than "
                        f"float32: running {chosen} instead")
    if native is False:
        return precision, ("this CPU has no native bfloat16 dot products (avx512_bf16 / amx_bf16): bfloat16 "
                           "may run slower than float32 here")
    return precision, None
