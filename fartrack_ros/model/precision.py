"""Reduced-precision inference: the layer stack in bfloat16 or float16, everything else in float32.

The layer stack is almost all of the arithmetic. Patch embedding, token assembly, the final
LayerNorm, the coordinate head and the prune scores stay in float32, so boxes and confidences are
read from float32 logits. bfloat16 uses the CPU's native bf16 dot products where it has them
(AVX512-BF16, AMX) and halves the memory traffic elsewhere; float16 is for CUDA.
"""

from __future__ import annotations

import copy

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
