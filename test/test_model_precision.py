"""Reduced precision: a bfloat16 (CPU) or float16 (CUDA) layer stack gives float32's outputs to
its rounding and tracks as well."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fartrack_ros.data.synthetic import EVAL_SEED_BASE, SyntheticConfig, generate_sequence
from fartrack_ros.evaluation.metrics import iou_xywh
from fartrack_ros import params
from fartrack_ros.model import (ModelConfig, build_model, load_checkpoint, precision_for_device, with_backend,
                                with_precision)
from fartrack_ros.model import precision as precision_module
from fartrack_ros.tracker import Tracker, TrackerConfig
from fartrack_ros.tracker_loading import load_tracker
from node_helpers import weights_for_tests
from tracker_helpers import DEVICES, one_torch_thread, random_embedded_inputs  # noqa: F401 - autouse fixture

SMALL = ModelConfig(embed_dim=64, depth=2, extension_depth=1, num_heads=2, template_size=48, search_size=96, name="test")


def test_lowering_returns_a_copy_and_keeps_embeddings_and_head_in_float32():
    model = build_model(SMALL).eval()
    lowered = with_precision(model, "bfloat16")
    assert lowered is not model and model.compute_dtype == torch.float32
    assert lowered.compute_dtype == torch.bfloat16
    assert lowered.backbone.patch_embed.proj.weight.dtype == torch.float32
    assert lowered.backbone.word_embeddings.weight.dtype == torch.float32
    assert with_precision(model, "float32") is model


def test_unknown_precision_and_onnxruntime_below_float32_are_refused():
    model = build_model(SMALL).eval()
    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        with_precision(model, "int4")
    with pytest.raises(ValueError, match="runs float32 only"):
        with_backend(model, "onnxruntime", "bfloat16")


def test_float16_asked_of_the_torch_backend_on_the_cpu_runs_as_asked_with_a_warning(caplog):
    model = build_model(SMALL).eval()
    with caplog.at_level("WARNING", logger="fartrack_ros"):
        assert with_backend(model, "torch", "bfloat16").compute_dtype == torch.bfloat16
        assert caplog.records == []
        assert with_backend(model, "torch", "float16").compute_dtype == torch.float16
    (record,) = caplog.records
    assert "float16 on the CPU is emulated" in record.getMessage()


def test_bfloat16_outputs_are_float32_and_close_to_the_float32_model():
    torch.manual_seed(0)
    model = build_model(SMALL).eval()
    cfg = model.cfg
    gen = torch.Generator().manual_seed(3)
    embeds, search = random_embedded_inputs(cfg, 2, gen)
    keep = torch.ones(2, cfg.num_template_slots, cfg.template_tokens, dtype=torch.bool)
    keep[0, :2, : cfg.num_pruned] = False  # ragged batch: padded keys must stay masked in bf16 too
    with torch.inference_mode():
        exact = model.forward_embedded(embeds, keep, search)
        low = with_precision(model, "bfloat16").forward_embedded(embeds, keep, search)
    assert low.logits.dtype == torch.float32 and low.template_scores.dtype == torch.float32
    scale = exact.logits.abs().max()
    assert (low.logits - exact.logits).abs().max() < 0.03 * scale
    torch.testing.assert_close(low.template_scores, exact.template_scores, atol=5e-3, rtol=0.05)
    assert torch.equal(low.template_scores == 0, exact.template_scores == 0)  # same pruned positions


def _track(model, sequence) -> np.ndarray:
    frames = [sequence.frame(i) for i in range(len(sequence))]
    tracker = Tracker(model, TrackerConfig())
    tracker.add_target(frames[0], sequence.boxes[0], "t")
    return np.array([tracker.track(frame)[0].box_xywh for frame in frames[1:]])


def _mean_iou(boxes_a, boxes_b) -> float:
    return float(np.mean([iou_xywh(a, b) for a, b in zip(boxes_a, boxes_b)]))


@pytest.mark.parametrize("device", DEVICES)
def test_the_devices_fast_precision_tracks_held_out_sequences_as_well_as_float32(device):
    """bfloat16 on the CPU, float16 on CUDA (TF32 off for the float32 run, as the node runs it)."""
    fast = {"cpu": "bfloat16", "cuda": "float16"}[device]
    model = with_backend(load_checkpoint(None, device=device), "torch")
    lowered = with_backend(model, "torch", fast)
    ao, agreement = {"float32": [], fast: []}, []
    for k in range(6):
        sequence = generate_sequence(EVAL_SEED_BASE + k, SyntheticConfig(min_length=80, max_length=80))
        exact, low = _track(model, sequence), _track(lowered, sequence)
        ao["float32"].append(_mean_iou(exact, sequence.boxes[1:]))
        ao[fast].append(_mean_iou(low, sequence.boxes[1:]))
        agreement.append(_mean_iou(exact, low))
    mean_ao = {p: float(np.mean(v)) for p, v in ao.items()}
    assert mean_ao["float32"] > 0.6, ao  # the sequences are trackable, so the comparison means something
    assert mean_ao[fast] > mean_ao["float32"] - 0.05, ao
    assert float(np.median(agreement)) > 0.85, agreement


@pytest.mark.parametrize("native, expected", [(True, "bfloat16"), (False, "float32"), (None, "float32")])
def test_float16_on_the_cpu_runs_the_cpus_fast_precision_with_a_warning(monkeypatch, native, expected):
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: native)
    chosen, warning = precision_for_device("float16", "cpu")
    assert chosen == expected and "emulated" in warning and expected in warning


def test_precisions_the_device_runs_well_pass_unchanged(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    assert precision_for_device("float32", "cpu") == ("float32", None)
    assert precision_for_device("bfloat16", "cpu") == ("bfloat16", None)
    assert precision_for_device("float16", "cuda") == ("float16", None)
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    chosen, warning = precision_for_device("bfloat16", "cpu")
    assert chosen == "bfloat16" and "no native bfloat16" in warning
    with pytest.raises(ValueError, match="unknown precision"):
        precision_for_device("int8", "cpu")


@pytest.mark.parametrize("native", [True, False, None])
def test_bfloat16_on_a_gpu_without_native_bf16_gets_a_warning(monkeypatch, native):
    asked = []
    monkeypatch.setattr(precision_module, "cuda_has_native_bf16", lambda device: asked.append(device) or native)
    chosen, warning = precision_for_device("bfloat16", "cuda:1")
    assert asked == ["cuda:1"]  # the GPU that will run it, not the current one
    assert chosen == "bfloat16"
    assert (warning is not None and "float16 is this GPU's fast precision" in warning) == (native is False)


def test_the_evaluation_runner_runs_float16_on_the_cpu_at_the_fast_cpu_precision(monkeypatch, caplog):
    from fartrack_ros.evaluation.runners import FARTrackRunner

    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    runner = FARTrackRunner(weights=str(weights_for_tests()), device="cpu", precision="float16")
    assert runner._tracker.model.compute_dtype == torch.float32
    assert any("float32 instead" in record.getMessage() for record in caplog.records)


def test_the_node_loader_runs_float16_on_the_cpu_at_the_fast_cpu_precision_and_says_so(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    warnings = []
    log = type("Log", (), {"warning": lambda self, text: warnings.append(text)})()
    values = {spec.name: spec.default for spec in params.PARAMETERS}
    values.update(weights=str(weights_for_tests()), precision="float16", device="cpu")
    loaded = load_tracker(values, log=log)
    assert loaded.model_name.endswith("/torch") and loaded.tracker.model.compute_dtype == torch.float32
    assert any("float16" in w and "float32 instead" in w for w in warnings), warnings


@pytest.mark.parametrize("capability, native", [((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_native_cuda_bf16_is_told_by_the_named_gpus_compute_capability(monkeypatch, capability, native):
    asked = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: asked.append(device) or capability)
    assert precision_module.cuda_has_native_bf16("cuda:1") is native
    assert asked == ["cuda:1"]
