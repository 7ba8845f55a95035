"""Named model sizes for training: the project's small CPU-friendly models and the official variants."""

from __future__ import annotations

import math

import torch

from ..model.config import VARIANT_LAYERS, ModelConfig, variant_config
from ..model.decode import bin_values
from ..model.network import FARTrack

# bundled-s: a smaller sibling of the shipped bundled-m. 4 layers of dim 128 over 5x9 template + 36 search + 4
# command tokens (85 in all): small enough to train on a shared 2-core CPU within the hour and
# to track at CPU frame rates. Crops keep the official context factors (2 and 4) and the
# official equal scale of template and search (48/2 = 96/4 px per target side). 64 bins per crop
# side (1.5 px at 96 px) instead of 300: the coordinate distributions of a model this small are a
# few pixels wide, and over 300 bins their peak probability (the tracker's confidence) would sit
# far below the tracker's lost_threshold; over 64 bins it is comparable to the official model's.
MODEL_CONFIGS = {
    "bundled-s": ModelConfig(embed_dim=128, depth=4, extension_depth=0, num_heads=4, template_size=48,
                             search_size=96, bins=64, name="bundled-s"),
    # bundled-m: bundled-s at the resolution of the first design (64 px templates, 128 px search,
    # 5x16 + 64 + 4 = 148 tokens): finer localisation for about 1.7x the compute
    "bundled-m": ModelConfig(embed_dim=128, depth=4, extension_depth=0, num_heads=4, template_size=64,
                             search_size=128, bins=64, name="bundled-m"),
    # for tests and smoke runs: 2 layers of dim 32, 32 px templates, 64 px search
    "test-xs": ModelConfig(embed_dim=32, depth=2, extension_depth=0, num_heads=2, template_size=32,
                           search_size=64, name="test-xs"),
}


def model_config(name: str) -> ModelConfig:
    """A named training config (bundled-m, bundled-s, test-xs) or an official variant (tiny, nano, pico)."""
    if name in MODEL_CONFIGS:
        return MODEL_CONFIGS[name]
    if name in VARIANT_LAYERS:
        return variant_config(name)
    raise ValueError(f"unknown model config {name!r}: choose one of {sorted(MODEL_CONFIGS) + sorted(VARIANT_LAYERS)}")


MIN_PERIOD, MAX_PERIOD = 0.05, 4.0  # in crop units; the coordinate range is [-0.5, 1.5]


def sincos_features(values: torch.Tensor, dim: int, min_period: float, max_period: float) -> torch.Tensor:
    """(N,) positions -> (N, dim) [sin, cos] features at dim/2 periods spaced geometrically."""
    periods = torch.logspace(math.log10(max_period), math.log10(min_period), dim // 2, dtype=torch.float64)
    angles = 2 * math.pi * values.double().unsqueeze(-1) / periods
    return torch.cat([angles.sin(), angles.cos()], dim=-1).float()


def init_for_training(model: FARTrack) -> FARTrack:
    """Spatially structured starting values for training from scratch (all stay trainable).

    - search and template position embeddings: 2D sin-cos of the patch centre in crop units
      (x features in the first half of the channels, y in the second), at the scale of the patch
      embeddings, so position is visible from the first step instead of drowned by the content;
    - slot identity embeddings (the 5 template slots and the search): random at the scale of the
      content, so a template token never looks like a search token at the same place;
    - command tokens: distinct random directions at the content scale, so the x0/y0/x1/y1 queries
      differ from the start;
    - coordinate-bin word embeddings (the output head): the same sin-cos features of each bin's
      value in both halves, norm 1, so neighbouring bins score alike and the position features of
      the search tokens can be read out linearly as a coordinate.

    Without these a small ViT trained from scratch on a CPU budget sits for thousands of steps
    predicting the mean box.
    """
    cfg = model.cfg
    dim = cfg.embed_dim
    with torch.no_grad():
        half = dim // 2
        for param, grid in ((model.backbone.pos_embed_x, cfg.search_grid),
                            (model.backbone.pos_embed_z0, cfg.template_grid)):
            centres = (torch.arange(grid, dtype=torch.float64) + 0.5) / grid
            fx = sincos_features(centres, half, MIN_PERIOD, MAX_PERIOD)
            ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
            pos = torch.cat([fx[xs.reshape(-1)], fx[ys.reshape(-1)]], dim=-1)
            param.copy_(0.5 * pos.unsqueeze(0))
        model.identity.normal_(0.0, 0.5)
        model.backbone.position_embeddings.weight.normal_(0.0, 0.5)
        commands = torch.randn(4, dim)
        model.backbone.word_embeddings.weight[cfg.num_bins: cfg.num_bins + 4] = commands / commands.norm(dim=-1, keepdim=True)
        # the same features in the x half and the y half: a state holding a position's features in
        # either half scores the bins around that position highest
        fv = sincos_features(bin_values(cfg).double(), half, MIN_PERIOD, MAX_PERIOD)
        rows = torch.cat([fv, fv], dim=-1)
        model.backbone.word_embeddings.weight[: cfg.num_bins] = rows / rows.norm(dim=-1, keepdim=True)
    return model
