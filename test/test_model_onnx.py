"""The ONNX Runtime backend gives the torch model's outputs."""

from __future__ import annotations

import pytest
import torch

from fartrack_ros.model import ModelConfig, build_model, decode_boxes
from fartrack_ros.model.onnx_backend import with_backend

pytest.importorskip("onnxruntime")
SMALL = ModelConfig(embed_dim=64, depth=2, extension_depth=1, num_heads=2, template_size=48, search_size=96, name="test")


def test_onnx_backend_matches_torch_on_uniform_and_ragged_batches():
    torch.manual_seed(0)
    model = build_model(SMALL).eval()
    onnx_model = with_backend(model, "onnxruntime")
    cfg = model.cfg
    gen = torch.Generator().manual_seed(5)
    embeds = torch.randn(2, cfg.num_template_slots, cfg.template_tokens, cfg.embed_dim, generator=gen)
    search = torch.randn(2, 3, cfg.search_size, cfg.search_size, generator=gen)
    uniform = torch.ones(2, cfg.num_template_slots, cfg.template_tokens, dtype=torch.bool)
    uniform[:, :4, : cfg.num_pruned] = False
    ragged = uniform.clone()
    ragged[1] = True
    with torch.inference_mode():
        for keep in (uniform, ragged):
            ref = model.forward_embedded(embeds, keep, search)
            got = onnx_model.forward_embedded(embeds, keep, search)
            torch.testing.assert_close(got.logits, ref.logits, atol=1e-4, rtol=0)
            torch.testing.assert_close(got.prune_scores, ref.prune_scores, atol=1e-5, rtol=0)
            torch.testing.assert_close(decode_boxes(got.logits, cfg), decode_boxes(ref.logits, cfg), atol=1e-5, rtol=0)


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        with_backend(build_model(SMALL), "tensorrt")
