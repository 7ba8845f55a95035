"""Named model sizes for training: the project's small CPU-friendly models and the official variants."""

from __future__ import annotations

from ..model.config import VARIANT_LAYERS, ModelConfig, variant_config

# bundled-s: the shipped default model. 4 layers of dim 128 over 5x9 template + 36 search + 4
# command tokens (85 in all): small enough to train on a shared 2-core CPU within the hour and
# to track at CPU frame rates. Crops keep the official context factors (2 and 4) and the
# official equal scale of template and search (48/2 = 96/4 px per target side).
MODEL_CONFIGS = {
    "bundled-s": ModelConfig(embed_dim=128, depth=4, extension_depth=0, num_heads=4, template_size=48,
                             search_size=96, name="bundled-s"),
    # for tests and smoke runs: 2 layers of dim 32, 32 px templates, 64 px search
    "test-xs": ModelConfig(embed_dim=32, depth=2, extension_depth=0, num_heads=2, template_size=32,
                           search_size=64, name="test-xs"),
}


def model_config(name: str) -> ModelConfig:
    """A named training config (bundled-s, test-xs) or an official variant (tiny, nano, pico)."""
    if name in MODEL_CONFIGS:
        return MODEL_CONFIGS[name]
    if name in VARIANT_LAYERS:
        return variant_config(name)
    raise ValueError(f"unknown model config {name!r}: choose one of {sorted(MODEL_CONFIGS) + sorted(VARIANT_LAYERS)}")
