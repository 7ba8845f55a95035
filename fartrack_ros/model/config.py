"""Model configuration: the official FARTrack sizes and the project's smaller custom ones."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

# Layer counts of the published variants: Tiny is 12 ViT blocks + 3 extension blocks; Nano and Pico
# are the first 10 and 6 blocks of a self-distilled checkpoint with no extension.
VARIANT_LAYERS = {"tiny": 15, "nano": 10, "pico": 6}


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of a FARTrack network; the defaults are FARTrack-Tiny as released."""

    embed_dim: int = 192
    depth: int = 12
    extension_depth: int = 3
    num_heads: int = 3
    mlp_ratio: float = 4.0
    patch_size: int = 16
    template_size: int = 112
    search_size: int = 224
    template_factor: float = 2.0
    search_factor: float = 4.0
    num_template_slots: int = 5
    bins: int = 300
    coord_range: int = 2
    prune_ratio: float = 0.25
    name: str = "tiny"

    def __post_init__(self) -> None:
        for count_name in ("embed_dim", "depth", "extension_depth", "num_heads", "patch_size", "template_size",
                           "search_size", "num_template_slots", "bins", "coord_range"):
            value = getattr(self, count_name)
            if type(value) is not int or value < (0 if count_name == "extension_depth" else 1):
                raise ValueError(f"{count_name} must be a positive integer, got {value!r}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        for size_name in ("template_size", "search_size"):
            size = getattr(self, size_name)
            if size <= 0 or size % self.patch_size:
                raise ValueError(f"{size_name} {size} must be a positive multiple of patch_size {self.patch_size}")
        if self.depth < 1 or self.extension_depth < 0:
            raise ValueError(f"need depth >= 1 and extension_depth >= 0, got {self.depth}, {self.extension_depth}")
        if self.num_template_slots < 1:
            raise ValueError(f"num_template_slots must be >= 1, got {self.num_template_slots}")
        if not 0.0 <= self.prune_ratio < 1.0:
            raise ValueError(f"prune_ratio must be in [0, 1), got {self.prune_ratio}")

    @property
    def num_layers(self) -> int:
        """Blocks in the stack: the ViT depth plus the extension blocks."""
        return self.depth + self.extension_depth

    @property
    def template_grid(self) -> int:
        """Patches along one side of a template crop."""
        return self.template_size // self.patch_size

    @property
    def search_grid(self) -> int:
        """Patches along one side of the search crop."""
        return self.search_size // self.patch_size

    @property
    def template_tokens(self) -> int:
        """Tokens of one template slot (its patch grid)."""
        return self.template_grid**2

    @property
    def search_tokens(self) -> int:
        """Tokens of the search crop (its patch grid)."""
        return self.search_grid**2

    @property
    def num_bins(self) -> int:
        """Coordinate ids 0..num_bins-1; the four command ids and the padding id follow."""
        return self.bins * self.coord_range

    @property
    def vocab_size(self) -> int:
        """Rows of the word embedding: the coordinate ids, 4 command ids and the padding id."""
        return self.num_bins + 5

    @property
    def num_pruned(self) -> int:
        """Tokens pruned from each template, as the official argsort rule counts them."""
        return int(self.template_tokens * self.prune_ratio)

    @property
    def sequence_length(self) -> int:
        """Tokens of the full, unpruned sequence: every template slot, the search and 4 commands."""
        return self.num_template_slots * self.template_tokens + self.search_tokens + 4

    @property
    def search_center_index(self) -> int:
        """Index, inside the search tokens, of the grid cell (g//2, g//2) whose attention scores templates."""
        g = self.search_grid
        return (g // 2) * g + g // 2

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain values, as checkpoints store them."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        """Config from stored fields; unknown names are refused rather than silently dropped."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model config fields {unknown}")
        return cls(**values)


def variant_config(variant: str) -> ModelConfig:
    """The official-size config of a named variant (tiny, nano, pico)."""
    if variant not in VARIANT_LAYERS:
        raise ValueError(f"unknown variant {variant!r}: choose one of {sorted(VARIANT_LAYERS)}")
    layers = VARIANT_LAYERS[variant]
    if variant == "tiny":
        return ModelConfig(name=variant)
    return ModelConfig(depth=layers, extension_depth=0, name=variant)


def truncate_config(config: ModelConfig, variant: "str | int") -> ModelConfig:
    """Config of the first N layers of `config`, as Nano/Pico are cut from Tiny: N from the variant
    name (tiny/nano/pico) or given as a number (3 or "3": the first 3 layers, for a checkpoint
    trained with self-distillation down to that depth)."""
    if isinstance(variant, int) and not isinstance(variant, bool):
        variant = str(variant)
    if not isinstance(variant, str):
        raise ValueError(f"variant must be a name or a number of layers, got {variant!r}")
    if variant.isdigit() and int(variant) >= 1:
        layers, name = int(variant), f"{config.name}-{int(variant)}L"
    elif variant in VARIANT_LAYERS:
        layers, name = VARIANT_LAYERS[variant], variant
    else:
        raise ValueError(f"unknown variant {variant!r}: choose one of {sorted(VARIANT_LAYERS)} or a number of layers")
    if layers > config.num_layers:
        raise ValueError(
            f"variant {variant!r} needs {layers} layers but the checkpoint has only {config.num_layers}"
        )
    if layers == config.num_layers:
        return replace(config, name=name if not variant.isdigit() else config.name)
    if layers <= config.depth:
        return replace(config, depth=layers, extension_depth=0, name=name)
    return replace(config, extension_depth=layers - config.depth, name=name)
