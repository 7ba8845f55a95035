"""Dropping pruned tokens and caching template embeddings gives the masked computation's outputs."""

from __future__ import annotations

import pytest
import torch

from fartrack_ros.model import ModelConfig, build_model, layers
from tracker_helpers import random_embedded_inputs

SMALL = ModelConfig(embed_dim=64, depth=2, extension_depth=1, num_heads=2, template_size=48, search_size=96, name="test")


def _random_keep(generator: torch.Generator, batch: int, cfg: ModelConfig, pruned_slots: list[int]) -> torch.Tensor:
    keep = torch.ones(batch, cfg.num_template_slots, cfg.template_tokens, dtype=torch.bool)
    for b in range(batch):
        for slot in range(pruned_slots[b]):
            drop = torch.randperm(cfg.template_tokens, generator=generator)[: cfg.num_pruned]
            keep[b, slot, drop] = False
    return keep


def _masked_and_fast(pruned_slots: list[int], seed: int, drop_pruned: bool, fused: bool):
    """The official masked forward and the fast path's, on random inputs with some slots pruned."""
    torch.manual_seed(0)
    model = build_model(SMALL).eval()
    cfg = model.cfg
    gen = torch.Generator().manual_seed(seed)
    batch = len(pruned_slots)
    templates = torch.randn(batch, cfg.num_template_slots, 3, cfg.template_size, cfg.template_size, generator=gen)
    search = torch.randn(batch, 3, cfg.search_size, cfg.search_size, generator=gen)
    keep = _random_keep(gen, batch, cfg, pruned_slots)
    with torch.inference_mode():
        masked = model(templates, search, keep.flatten(1))
        embeds = model.embed_template(templates.flatten(0, 1)).unflatten(0, (batch, cfg.num_template_slots))
        fast = model.forward_embedded(embeds, keep, search, drop_pruned=drop_pruned, fused=fused)
    return masked, fast


def _assert_same_outputs(fast, masked) -> None:
    torch.testing.assert_close(fast.logits, masked.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.template_scores, masked.template_scores, atol=1e-5, rtol=0)
    assert torch.equal(fast.prune_keep, masked.prune_keep)


@pytest.mark.parametrize("drop_pruned,fused", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("pruned_slots", [[4, 4], [0, 4], [4, 0, 2]], ids=["uniform", "ragged", "three"])
def test_dropped_tokens_equal_masked_computation(pruned_slots, drop_pruned, fused):
    masked, fast = _masked_and_fast(pruned_slots, 1, drop_pruned, fused)
    _assert_same_outputs(fast, masked)


@pytest.mark.parametrize("gemm", [True, False], ids=["batched-gemm", "fused-kernel"])
@pytest.mark.parametrize("pruned_slots", [[4, 4], [0, 4, 2]], ids=["uniform", "ragged"])
def test_both_fast_attention_kernels_equal_masked_computation(monkeypatch, gemm, pruned_slots):
    """The fast path picks batched GEMMs or PyTorch's fused kernel by shape; both give the official outputs."""
    monkeypatch.setattr(layers, "_batched_gemm_is_faster", lambda q: gemm)
    masked, fast = _masked_and_fast(pruned_slots, 3, drop_pruned=True, fused=True)
    _assert_same_outputs(fast, masked)


def test_batched_forward_equals_each_sample_alone():
    torch.manual_seed(0)
    model = build_model(SMALL).eval()
    cfg = model.cfg
    gen = torch.Generator().manual_seed(2)
    embeds, search = random_embedded_inputs(cfg, 3, gen)
    keep = _random_keep(gen, 3, cfg, [4, 0, 3])
    with torch.inference_mode():
        together = model.forward_embedded(embeds, keep, search)
        for b in range(3):
            alone = model.forward_embedded(embeds[b : b + 1], keep[b : b + 1], search[b : b + 1])
            torch.testing.assert_close(together.logits[b : b + 1], alone.logits, atol=1e-5, rtol=0)
            torch.testing.assert_close(together.prune_scores[b : b + 1], alone.prune_scores, atol=1e-6, rtol=0)


def test_fast_path_trains_with_gradients():
    model = build_model(SMALL).train()
    cfg = model.cfg
    embeds = model.embed_template(torch.randn(cfg.num_template_slots, 3, cfg.template_size, cfg.template_size))
    out = model.forward_embedded(embeds.unsqueeze(0), None, torch.randn(1, 3, cfg.search_size, cfg.search_size))
    out.logits.logsumexp(-1).sum().backward()
    assert model.backbone.patch_embed.proj.weight.grad is not None
    assert model.backbone.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
