"""Turn coordinate logits into crop-normalised boxes and a confidence, as the official tracker does.

The official decode averages two estimates of each coordinate: the argmax id (over every id, the
command and padding ids included: quirk Q4) and the softmax expectation over the coordinate bins.
No Hann window is applied.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .config import ModelConfig


def bin_values(cfg: ModelConfig, device: "torch.device | str | None" = None) -> Tensor:
    """Value of each coordinate bin, -0.5*(range-1) + k/bins, computed in float64 then cast to float32."""
    k = torch.arange(cfg.num_bins, dtype=torch.float64, device=device)
    return (-0.5 * (cfg.coord_range - 1) + k / cfg.bins).to(torch.float32)


def decode_terms(logits: Tensor, cfg: ModelConfig) -> tuple[Tensor, Tensor]:
    """The argmax term and the expectation term, (B,4) each, in crop-normalised units."""
    seqs = logits.softmax(dim=-1).argmax(dim=-1)
    argmax_term = (seqs.to(torch.float32) + 0.5) / (cfg.bins - 1) - 0.5 * (cfg.coord_range - 1)
    bin_probs = logits[..., : cfg.num_bins].float().softmax(dim=-1)
    expect_term = (bin_probs * bin_values(cfg, logits.device)).sum(dim=-1)
    return argmax_term, expect_term


def decode_boxes(logits: Tensor, cfg: ModelConfig) -> Tensor:
    """(B,4,vocab) logits -> (B,4) crop-normalised x0, y0, x1, y1 = (argmax + expectation) / 2."""
    argmax_term, expect_term = decode_terms(logits, cfg)
    return (argmax_term + expect_term) / 2


def xyxy_to_cxcywh(box: Tensor) -> Tensor:
    """x0,y0,x1,y1 -> cx,cy,w,h with the official order of operations (no clamping)."""
    w = box[..., 2] - box[..., 0]
    h = box[..., 3] - box[..., 1]
    return torch.stack([box[..., 0] + w / 2, box[..., 1] + h / 2, w, h], dim=-1)


def box_confidence(logits: Tensor, cfg: ModelConfig) -> Tensor:
    """(B,) confidence in [0,1]: mean over the 4 coordinates of the peak probability over the bins.

    FARTrack has no score head; a sharp coordinate distribution means the model found the target.
    """
    bin_probs = logits[..., : cfg.num_bins].float().softmax(dim=-1)
    return bin_probs.max(dim=-1).values.mean(dim=-1)
