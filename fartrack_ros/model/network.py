"""The FARTrack network: token layout, the ViT stack, the tied coordinate head and template pruning.

The sequence is ``[template slot 0 .. slot S-1 | search | 4 coordinate commands]`` with full
bidirectional attention. Two forward paths give the same outputs:

* :meth:`FARTrack.forward` is the official computation: every token is present and pruned template
  tokens are masked (their keys get -inf, their LayerNorm input is zeroed).
* :meth:`FARTrack.forward_embedded` takes template patch embeddings computed once per stored
  template and, by default, drops pruned tokens from the sequence instead of masking them. Masked
  keys receive exactly zero attention, so the unpruned tokens, the logits and the prune scores are
  unchanged; the sequence is just shorter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .layers import Block

# Level of pruning the tracker uses, and all levels the official model reports.
PRUNE_LEVELS = (0.25, 0.5, 0.75, 0.9)
_POS_EMBED_Z_ALIASES = ("pos_embed_z", "pos_embed_z0", "pos_embed_z1")


@dataclass
class ModelOutput:
    """What one forward returns; the prune fields describe the template in the last slot."""

    logits: Tensor  # (B, 4, vocab) for x0, y0, x1, y1
    prune_scores: Tensor  # (B, T) attention the centre search token paid to each newest-template token
    prune_keep: Tensor  # (B, T) bool, False for the lowest-scoring num_pruned tokens
    template_scores: Tensor  # (B, S*T) the same scores over every template slot (0 where pruned)


def prune_keep_mask(scores: Tensor, ratio: float) -> Tensor:
    """Keep mask that drops the int(T*ratio) lowest scores of each row (official argsort rule)."""
    num_tokens = scores.shape[-1]
    num_pruned = int(num_tokens * ratio)
    keep = torch.ones_like(scores, dtype=torch.bool)
    if num_pruned:
        lowest = torch.argsort(scores, dim=-1)[..., :num_pruned]
        keep.scatter_(-1, lowest, False)
    return keep


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection (conv with kernel = stride = patch size)."""

    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        """Images (B,3,H,W) -> patch tokens (B,(H/p)*(W/p),D), row-major over the grid."""
        return self.proj(x).flatten(2).transpose(1, 2)


class Backbone(nn.Module):
    """Embeddings, blocks and the tied output head, named as under ``backbone.`` in checkpoints."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.output_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))  # present in checkpoints, unused
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.search_tokens + 1, dim))  # unused
        # Official pos_embed_z/_z0/_z1 share one storage (quirk Q2); one Parameter stands for all three.
        self.pos_embed_z0 = nn.Parameter(torch.zeros(1, cfg.template_tokens, dim))
        self.pos_embed_x = nn.Parameter(torch.zeros(1, cfg.search_tokens, dim))
        self.word_embeddings = nn.Embedding(cfg.vocab_size, dim, padding_idx=cfg.vocab_size - 1, max_norm=1.0)
        self.position_embeddings = nn.Embedding(4, dim)
        self.prev_position_embeddings = nn.Embedding(12, dim)  # trajectory input, unused by the sparse model
        self.patch_embed = PatchEmbed(cfg.patch_size, dim)
        self.blocks = nn.ModuleList(Block(dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.extension = nn.ModuleList(
            Block(dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.extension_depth)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.register_buffer(
            "command_ids", torch.arange(cfg.num_bins, cfg.num_bins + 4), persistent=False
        )
        self.register_state_dict_post_hook(_write_pos_embed_aliases)
        self.register_load_state_dict_pre_hook(_read_pos_embed_aliases)

    def layers(self) -> list[Block]:
        """All blocks in run order: the ViT blocks, then the extension."""
        return [*self.blocks, *self.extension]

    def command_tokens(self, batch: int) -> Tensor:
        """The 4 command tokens; the lookup renorms their word-embedding rows to norm <= 1 (quirk Q1)."""
        tokens = self.word_embeddings(self.command_ids) + self.position_embeddings.weight
        return tokens.unsqueeze(0).expand(batch, -1, -1)

    def head(self, hidden: Tensor) -> Tensor:
        """Final LN on the last 4 tokens, projected on the tied word embeddings: (B, 4, vocab)."""
        return self.norm(hidden) @ self.word_embeddings.weight.t() + self.output_bias


def _write_pos_embed_aliases(module: Backbone, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    value = state_dict[prefix + "pos_embed_z0"]
    state_dict[prefix + "pos_embed_z"] = value
    state_dict[prefix + "pos_embed_z1"] = value


def _read_pos_embed_aliases(
    module: Backbone, state_dict: dict, prefix: str, local_metadata: Any, strict: bool,
    missing_keys: list, unexpected_keys: list, error_msgs: list,
) -> None:
    # Loading copies the aliases in order z, z0, z1 into one storage, so the last one present wins.
    present = [state_dict.pop(prefix + name) for name in _POS_EMBED_Z_ALIASES if prefix + name in state_dict]
    if present:
        state_dict[prefix + "pos_embed_z0"] = present[-1]


class FARTrack(nn.Module):
    """FARTrack-Sparse network: templates + search in, coordinate logits and template prune masks out."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.identity = nn.Parameter(torch.zeros(1, cfg.num_template_slots + 1, cfg.embed_dim))
        self.backbone = Backbone(cfg)

    # -- embeddings --------------------------------------------------------------------------------
    def embed_template(self, z: Tensor) -> Tensor:
        """Patch embedding of template crops (B,3,Ht,Wt) -> (B,T,D); cache it per stored template."""
        return self.backbone.patch_embed(z)

    def _template_tokens(self, template_embeds: Tensor) -> Tensor:
        slots = template_embeds.shape[1]
        ids = self.identity[:, :slots].unsqueeze(2)
        tokens = template_embeds + self.backbone.pos_embed_z0.unsqueeze(1) + ids
        return tokens.flatten(1, 2)

    def _search_tokens(self, search: Tensor) -> Tensor:
        slots = self.cfg.num_template_slots
        return self.backbone.patch_embed(search) + self.identity[:, slots] + self.backbone.pos_embed_x

    # -- forward paths -----------------------------------------------------------------------------
    def forward(self, templates: Tensor, search: Tensor, token_keep: Optional[Tensor] = None) -> ModelOutput:
        """Official masked computation. templates (B,S,3,Ht,Wt), search (B,3,Hs,Ws).

        token_keep is (B,S*T) over the template tokens, or (B,N) over the whole sequence as the
        official mask row; only template tokens can be pruned.
        """
        batch, slots = templates.shape[:2]
        embeds = self.embed_template(templates.flatten(0, 1)).unflatten(0, (batch, slots))
        keep = None
        if token_keep is not None:
            num_template = slots * self.cfg.template_tokens
            if token_keep.shape[-1] == self.cfg.sequence_length:
                if not bool(token_keep[..., num_template:].all()):
                    raise ValueError("only template tokens can be pruned; search and command tokens must be kept")
                token_keep = token_keep[..., :num_template]
            keep = token_keep.reshape(batch, slots, self.cfg.template_tokens)
        return self.forward_embedded(embeds, keep, search, drop_pruned=False)

    def forward_embedded(
        self,
        template_embeds: Tensor,
        template_keep: Optional[Tensor],
        search: Tensor,
        drop_pruned: bool = True,
        fused: Optional[bool] = None,
    ) -> ModelOutput:
        """Forward from cached template embeddings (B,S,T,D) and keep masks (B,S,T) bool.

        drop_pruned=True removes pruned tokens from the sequence, False masks them. fused (default:
        same as drop_pruned) runs the layer stack through :meth:`encode_logits` (fused attention, or
        another backend's graph); unfused is the official arithmetic. Outputs agree to float rounding.
        """
        fused = drop_pruned if fused is None else fused
        cfg = self.cfg
        batch, slots, per_slot, _ = template_embeds.shape
        if slots != cfg.num_template_slots or per_slot != cfg.template_tokens:
            raise ValueError(
                f"expected template embeddings (B,{cfg.num_template_slots},{cfg.template_tokens},D), "
                f"got {tuple(template_embeds.shape)}"
            )
        tokens = torch.cat(
            [self._template_tokens(template_embeds), self._search_tokens(search), self.backbone.command_tokens(batch)],
            dim=1,
        )
        num_template = slots * per_slot
        if template_keep is None:
            template_keep = torch.ones(batch, num_template, dtype=torch.bool, device=tokens.device)
        template_keep = template_keep.reshape(batch, num_template).to(tokens.device)
        if drop_pruned:
            hidden, key_keep, order, valid = self._drop_pruned(tokens, template_keep)
        else:
            rest = torch.ones(batch, tokens.shape[1] - num_template, dtype=torch.bool, device=tokens.device)
            hidden = tokens
            key_keep = torch.cat([template_keep, rest], dim=1)
        if fused:
            # Pruned tokens' own rows never reach other tokens, so the key mask alone is enough here.
            logits, row = self.encode_logits(hidden, key_keep)
        else:
            hidden_cmd, row = self.encode(hidden, key_keep, token_keep=None if drop_pruned else key_keep)
            logits = self.backbone.head(hidden_cmd)
        if drop_pruned:
            kept = row[:, : order.shape[1]] * valid
            template_scores = tokens.new_zeros(batch, num_template).scatter(1, order, kept)
        else:
            template_scores = row[:, :num_template]
        newest = template_scores[:, num_template - per_slot :]
        return ModelOutput(
            logits=logits,
            prune_scores=newest,
            prune_keep=prune_keep_mask(newest, cfg.prune_ratio),
            template_scores=template_scores,
        )

    def encode(
        self, hidden: Tensor, key_keep: Optional[Tensor], token_keep: Optional[Tensor] = None, fused: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Run all layers over [templates | search | commands]; the last 4 tokens and the score row.

        The score row (B,L) is the centre search token's attention, summed over layers and averaged
        over heads. The search block is found from the end, so the template block may be any length.
        The layers compute in their weights' dtype (see `with_precision`); outputs are float32.
        ``fused`` also trims the last block to the rows anyone reads (centre token and commands).
        """
        query = hidden.shape[1] - 4 - self.cfg.search_tokens + self.cfg.search_center_index
        layers = self.backbone.layers()
        hidden = hidden.to(self.compute_dtype)
        row_sum = None
        for index, block in enumerate(layers):
            if fused and index == len(layers) - 1:
                hidden, row = block.forward_rows(hidden, [slice(query, query + 1), slice(-4, None)], key_keep)
            else:
                hidden, row = block(hidden, token_keep=token_keep, key_keep=key_keep, score_query=query, fused=fused)
            row_sum = row.float() if row_sum is None else row_sum + row.float()
        return hidden[:, -4:].float(), row_sum

    @property
    def compute_dtype(self) -> torch.dtype:
        """dtype the layer stack computes in: float32 unless `with_precision` lowered it."""
        return self.backbone.blocks[0].attn.qkv.weight.dtype

    def encode_logits(self, hidden: Tensor, key_keep: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """Fast path of the heavy part: fused attention over a gathered sequence -> (logits, score row).

        This is the graph other backends (ONNX Runtime) replace.
        """
        hidden_cmd, row = self.encode(hidden, key_keep, fused=True)
        return self.backbone.head(hidden_cmd), row

    def _drop_pruned(self, tokens: Tensor, template_keep: Tensor) -> tuple[Tensor, Optional[Tensor], Tensor, Tensor]:
        """Gather each sample's kept template tokens (in order) in front of its search and command tokens.

        Samples with fewer kept tokens are padded at the end of the template block; the pads are
        masked as keys. Returns the shorter sequence, its key mask (None when no sample needs
        padding), the gathered template positions and which of them are real.
        """
        num_template = template_keep.shape[1]
        counts = template_keep.sum(dim=1)
        fewest, kept_len = torch.stack(torch.aminmax(counts)).tolist()  # one device sync
        order = torch.argsort((~template_keep).to(torch.int8), dim=1, stable=True)[:, :kept_len]
        valid = torch.arange(kept_len, device=tokens.device).unsqueeze(0) < counts.unsqueeze(1)
        gathered = torch.gather(tokens[:, :num_template], 1, order.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        hidden = torch.cat([gathered, tokens[:, num_template:]], dim=1)
        key_keep = None
        if fewest != kept_len:
            rest = torch.ones(tokens.shape[0], tokens.shape[1] - num_template, dtype=torch.bool, device=tokens.device)
            key_keep = torch.cat([valid, rest], dim=1)
        return hidden, key_keep, order, valid


def init_weights(model: FARTrack, std: float = 0.02) -> FARTrack:
    """Fresh weights for training from scratch: truncated-normal embeddings and linears, unit LNs."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=std)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.trunc_normal_(module.weight, std=std)
        for param in (model.identity, model.backbone.pos_embed_z0, model.backbone.pos_embed_x,
                      model.backbone.pos_embed, model.backbone.cls_token):
            nn.init.trunc_normal_(param, std=std)
    return model


def build_model(variant_or_config: "str | ModelConfig" = "tiny") -> FARTrack:
    """A FARTrack network of a named variant (tiny, nano, pico) or an explicit config, freshly initialised."""
    from .config import variant_config

    cfg = variant_config(variant_or_config) if isinstance(variant_or_config, str) else variant_or_config
    return init_weights(FARTrack(cfg))
