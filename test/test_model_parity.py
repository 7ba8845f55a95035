"""The network reproduces the official FARTrack outputs stored in the shared fixtures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from fartrack_ros.model import PRUNE_LEVELS, decode_boxes, decode_terms, prune_keep_mask, xyxy_to_cxcywh
from tracker_helpers import DEVICES, official_model_on

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "official"
pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason="../shared/fixtures/official is not beside the repo")


@pytest.fixture(scope="module")
def io_case() -> dict:
    return dict(np.load(FIXTURES / "model_io.npz"))


@pytest.fixture(scope="module", params=DEVICES)
def official_model(request):
    torch.set_num_threads(2)
    return official_model_on(request.param)


def _masked_forward(model, io_case: dict, case: str):
    """The official masked forward; every output back on the CPU."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model(
            torch.from_numpy(io_case["template"]).to(device),
            torch.from_numpy(io_case["search"]).to(device),
            torch.from_numpy(io_case[f"{case}_token_keep"])[None].to(device),
        )
    return dataclasses.replace(out, **{field.name: getattr(out, field.name).cpu() for field in dataclasses.fields(out)})


@pytest.mark.parametrize("case", ["A", "B"])
def test_masked_forward_matches_official_logits_and_prune(official_model, io_case, case):
    out = _masked_forward(official_model, io_case, case)
    np.testing.assert_allclose(out.logits.numpy(), io_case[f"{case}_logits"], atol=1e-4, rtol=0)
    np.testing.assert_array_equal(out.logits.argmax(-1).numpy(), io_case[f"{case}_seqs"])
    np.testing.assert_allclose(out.template_scores.numpy(), io_case[f"{case}_prune_scores"], atol=1e-6, rtol=0)
    for level, ratio in enumerate(PRUNE_LEVELS):
        keep = prune_keep_mask(out.prune_scores, ratio).numpy()
        np.testing.assert_array_equal(keep, io_case[f"{case}_prune_keep"][:, level])
    np.testing.assert_array_equal(out.prune_keep.numpy(), io_case[f"{case}_prune_keep"][:, 0])


@pytest.mark.parametrize("case", ["A", "B"])
def test_decode_matches_official_terms_and_boxes(official_model, io_case, case):
    logits = _masked_forward(official_model, io_case, case).logits
    argmax_term, expect_term = decode_terms(logits, official_model.cfg)
    np.testing.assert_allclose(argmax_term.numpy(), io_case[f"{case}_dec_argmax"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(expect_term.numpy(), io_case[f"{case}_dec_expect"], atol=1e-5, rtol=0)
    box = decode_boxes(logits, official_model.cfg)[0]
    np.testing.assert_allclose(box.numpy(), io_case[f"{case}_box_xyxy"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(xyxy_to_cxcywh(box).numpy(), io_case[f"{case}_box_cxcywh"], atol=1e-5, rtol=0)


def test_command_rows_are_renormed_like_the_official_embedding(official_model, io_case):
    """Quirk Q1: the forward renorms word-embedding rows 600..603 in place; row 604 stays."""
    _masked_forward(official_model, io_case, "A")
    rows = official_model.backbone.word_embeddings.weight[600:605].detach().cpu().numpy()
    np.testing.assert_allclose(rows, io_case["word_emb_rows600_604_after_forward"], atol=1e-6, rtol=0)


def test_search_center_row_scores_only_the_template_attention(official_model, io_case):
    """Pruned tokens receive exactly zero attention, as the official score row shows."""
    out = _masked_forward(official_model, io_case, "B")
    keep = io_case["B_token_keep"][:245]
    assert np.all(out.template_scores.numpy()[0][~keep] == 0.0)
    assert np.all(out.template_scores.numpy()[0][keep] > 0.0)
