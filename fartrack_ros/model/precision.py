"""Reduced-precision inference: the layer stack in bfloat16 or float16, everything else in float32.

The layer stack is almost all of the arithmetic. Patch embedding, token assembly, the final
LayerNorm, the coordinate head and the prune scores stay in float32, so boxes and confidences are
read from float32 logits. bfloat16 uses the CPU's native bf16 dot products where it has them
(AVX512-BF16, AMX) and halves the memory traffic elsewhere; float16 is for CUDA.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Optional

import torch

from .network import FARTrack

PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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


def cuda_has_native_bf16() -> Optional[bool]:
    """Whether the current CUDA device computes bfloat16 natively (Ampere and later); None without CUDA."""
    if not torch.cuda.is_available():
        return None
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # a torch before the keyword (setup.py admits 2.1): Ampere is compute capability 8
        return torch.cuda.get_device_capability()[0] >= 8


def precision_for_device(precision: str, device_type: str) -> tuple[str, Optional[str]]:
    """The precision to run when ``precision`` is asked for on a ``device_type`` ("cpu", "cuda"),
    and a warning for the user when it differs or will be slow (None when all is well).

    float16 on a CPU is emulated, about 8x slower than float32 on this project's CPU (pico tracker
    177 ms against 21 ms), so it becomes bfloat16 where the CPU has native bf16, else float32: a
    CUDA configuration falling back to the CPU keeps its speed intent instead of crawling.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {list(PRECISIONS)}")
    if device_type == "cuda" and precision == "bfloat16" and cuda_has_native_bf16() is False:
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
