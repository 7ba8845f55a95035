"""ViT building blocks of FARTrack: masked LayerNorm, attention with a scoring row, MLP, block.

Parameter names follow the official checkpoint (``masknorm1.norm``, ``attn.qkv``, ``mlp.fc1``, ...).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MaskedLayerNorm(nn.Module):
    """LayerNorm that zeroes pruned tokens first, so a pruned token's output equals the LN bias."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: Tensor, token_keep: Optional[Tensor] = None) -> Tensor:
        """LayerNorm of x (B,N,D) with the tokens where ``token_keep`` (B,N) is False zeroed first."""
        if token_keep is not None:
            x = x * token_keep.unsqueeze(-1).to(x.dtype)
        return self.norm(x)


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """fc1, GELU and fc2 on each token of x (...,D)."""
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention over all tokens; pruned or padded keys get no attention.

    Besides its output it can return one query row of the head-averaged attention map: FARTrack
    scores template tokens by the attention they receive from the centre search token.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: Tensor,
        key_keep: Optional[Tensor] = None,
        score_query: Optional[int] = None,
        fused: bool = False,
    ) -> tuple[Tensor, Optional[Tensor]]:
        """x (B,N,D); key_keep (B,N) bool or None; score_query the row index to report, or None.

        Returns the projected output and, when score_query is given, the (B,N) attention row of
        that query averaged over heads. ``fused`` selects the fast kernels (PyTorch's fused attention
        or batched GEMMs, whichever is faster at this shape); the unfused path is the official
        arithmetic, kept for bit-level parity.
        """
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        key_mask = None if key_keep is None else key_keep[:, None, None, :]
        score_row = None
        if fused and _batched_gemm_is_faster(q):
            out, score_row = _gemm_attention(q, k, v, self.scale, key_keep, score_query)
        elif fused:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
            if score_query is not None:
                q_row = q[:, :, score_query : score_query + 1]
                score_row = _softmax_scores(q_row, k, self.scale, key_mask).mean(dim=1)[:, 0]
        else:
            attn = _softmax_scores(q, k, self.scale, key_mask)
            out = attn @ v
            if score_query is not None:
                score_row = attn[:, :, score_query].mean(dim=1)
        out = out.transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj(out), score_row

    def forward_rows(self, x: Tensor, queries: Tensor, key_keep: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """Attention output for the query tokens ``queries`` (B,R,D) only, keys and values from all of ``x``.

        Returns the projected (B,R,D) output and the head-averaged (B,N) attention row of the first
        query. Only queries are trimmed, so each output row equals the full computation's.
        """
        batch, tokens, dim = x.shape
        count = queries.shape[1]
        weight, bias = self.qkv.weight, self.qkv.bias
        q = F.linear(queries, weight[:dim], bias[:dim]).reshape(batch, count, self.num_heads, self.head_dim)
        kv = F.linear(x, weight[dim:], bias[dim:]).reshape(batch, tokens, 2, self.num_heads, self.head_dim)
        kv = kv.permute(2, 0, 3, 1, 4)
        key_mask = None if key_keep is None else key_keep[:, None, None, :]
        attn = _softmax_scores(q.transpose(1, 2), kv[0], self.scale, key_mask)
        out = (attn @ kv[1]).transpose(1, 2).reshape(batch, count, dim)
        return self.proj(out), attn[:, :, 0].mean(dim=1)


# Above this many attention scores (batch x heads x tokens^2) the explicit map outgrows the caches
# and the fused kernel, which never builds it, wins again in float32 (8 x 3 x 385^2 = 3.6 M:
# fused 7.4 ms, explicit 12.4 ms; 8 x 3 x 300^2 = 2.2 M: fused 6.3 ms, explicit 4.7 ms).
_GEMM_ATTENTION_MAX_SCORES = 3_000_000


def _batched_gemm_is_faster(q: Tensor) -> bool:
    """Whether `_gemm_attention` beats PyTorch's fused attention kernel for queries q (B,H,N,d).

    On the CPU at tracker sizes it does in bf16/fp16 (tiny's 3 x 385 x 64, 2 threads: 0.61 against
    1.22 ms with the score row), and in float32 for short heads or several targets (the bundled
    model's 4 x 132 x 32: 0.15 against 0.25 ms; 8 targets 0.71 against 1.58 ms). One float32
    target of an official size is the fused kernel's case (tiny: 1.05 against 1.39 ms).
    """
    if q.device.type != "cpu":
        return False
    if q.dtype != torch.float32:
        return True
    batch, heads, tokens, head_dim = q.shape
    return (head_dim <= 32 or batch > 1) and batch * heads * tokens * tokens <= _GEMM_ATTENTION_MAX_SCORES


def _gemm_attention(q: Tensor, k: Tensor, v: Tensor, scale: float, key_keep: Optional[Tensor],
                    score_query: Optional[int]) -> tuple[Tensor, Optional[Tensor]]:
    """Attention as two batched GEMMs, the scale and the key mask folded into the first one.

    Returns the (B,H,N,d) output and, for ``score_query``, its head-averaged (B,N) attention row.
    """
    batch, heads, tokens, head_dim = q.shape
    q2, k2, v2 = (t.reshape(batch * heads, tokens, head_dim) for t in (q, k, v))
    if key_keep is None:
        scores = torch.baddbmm(q2.new_zeros(1, 1, 1), q2, k2.transpose(1, 2), beta=0, alpha=scale)
    else:
        bias = torch.zeros(batch, 1, 1, tokens, dtype=q.dtype, device=q.device)
        bias = bias.masked_fill(~key_keep[:, None, None, :], float("-inf"))
        bias = bias.expand(batch, heads, 1, tokens).reshape(batch * heads, 1, tokens)
        scores = torch.baddbmm(bias, q2, k2.transpose(1, 2), alpha=scale)
    attn = scores.softmax(dim=-1)
    out = torch.bmm(attn, v2).view(batch, heads, tokens, head_dim)
    score_row = None
    if score_query is not None:
        score_row = attn.view(batch, heads, tokens, tokens)[:, :, score_query].mean(dim=1)
    return out, score_row


def _softmax_scores(q: Tensor, k: Tensor, scale: float, key_mask: Optional[Tensor]) -> Tensor:
    """softmax((q @ k^T) * scale) with masked keys at -inf, in the official order of operations."""
    scores = (q @ k.transpose(-2, -1)) * scale
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask, float("-inf"))
    return scores.softmax(dim=-1)


class Block(nn.Module):
    """Pre-norm transformer block. ``norm1``/``norm2`` exist only because official checkpoints hold them."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.masknorm1 = MaskedLayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.masknorm2 = MaskedLayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(
        self,
        x: Tensor,
        token_keep: Optional[Tensor] = None,
        key_keep: Optional[Tensor] = None,
        score_query: Optional[int] = None,
        fused: bool = False,
    ) -> tuple[Tensor, Optional[Tensor]]:
        """x (B,N,D) through attention and MLP (pre-norm, residual); also the score row (see `Attention`)."""
        attn_out, score_row = self.attn(self.masknorm1(x, token_keep), key_keep, score_query, fused)
        x = x + attn_out
        x = x + self.mlp(self.masknorm2(x, token_keep))
        return x, score_row

    def forward_rows(self, x: Tensor, rows: list[slice], key_keep: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """The block's output at the token ``rows`` only (concatenated slices), and the first row's scores.

        Used for the last block, whose other outputs nobody reads: keys and values still come from
        every token, but the attention output, projection and MLP run for a handful of rows.
        """
        normed = self.masknorm1(x)
        picked = torch.cat([x[:, r] for r in rows], dim=1)
        queries = torch.cat([normed[:, r] for r in rows], dim=1)
        attn_out, score_row = self.attn.forward_rows(normed, queries, key_keep)
        picked = picked + attn_out
        picked = picked + self.mlp(self.masknorm2(picked))
        return picked, score_row
