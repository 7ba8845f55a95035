"""The ONNX Runtime backend gives the torch model's outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fartrack_ros.model import ModelConfig, build_model, decode_boxes, load_checkpoint, save_checkpoint
from fartrack_ros.model.onnx_backend import with_backend
from fartrack_ros.tracker import Tracker, TrackerConfig

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


def test_onnx_backend_takes_a_checkpoint_whose_unused_parameters_have_other_sizes(tmp_path):
    """As an official checkpoint trained at 224 px: pos_embed is unused, so the loader accepts any size."""
    torch.manual_seed(0)
    model = build_model(SMALL).eval()
    model.backbone.pos_embed = torch.nn.Parameter(torch.zeros(1, 197, SMALL.embed_dim))
    save_checkpoint(model, tmp_path / "224px.pth")
    loaded = load_checkpoint(tmp_path / "224px.pth")

    onnx_model = with_backend(loaded, "onnxruntime")

    search = torch.randn(1, 3, SMALL.search_size, SMALL.search_size, generator=torch.Generator().manual_seed(1))
    embeds = torch.randn(1, SMALL.num_template_slots, SMALL.template_tokens, SMALL.embed_dim,
                         generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ref = loaded.forward_embedded(embeds, None, search)
        got = onnx_model.forward_embedded(embeds, None, search)
    torch.testing.assert_close(got.logits, ref.logits, atol=1e-4, rtol=0)


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        with_backend(build_model(SMALL), "tensorrt")


FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "official"


@pytest.mark.skipif(not (FIXTURES / "tracker_trace.npz").is_file(), reason="official fixtures not beside the repo")
def test_tracker_boxes_are_the_same_with_onnxruntime():
    """The exported graph, inside the real tracker, gives the torch boxes on the official trace."""
    torch.set_num_threads(1)
    trace = np.load(FIXTURES / "tracker_trace.npz")
    model = load_checkpoint(FIXTURES / "fartrack_random_ckpt.pth", variant="pico")
    boxes = {}
    for backend in ("torch", "onnxruntime"):
        tracker = Tracker(with_backend(model, backend), TrackerConfig(lost_threshold=0.0))
        tracker.add_target(trace["frames"][0], trace["init_box"].tolist(), "t")
        boxes[backend] = np.array([tracker.track(frame)[0].box_xywh for frame in trace["frames"][1:12]])
    np.testing.assert_allclose(boxes["onnxruntime"], boxes["torch"], atol=1e-3, rtol=0)


def test_official_memory_mode_runs_on_the_onnx_backend_too():
    runner = with_backend(build_model(SMALL).eval(), "onnxruntime")
    calls = []
    encode_logits = runner.encode_logits
    runner.encode_logits = lambda *args: calls.append(1) or encode_logits(*args)
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    tracker = Tracker(runner, TrackerConfig(memory="official"))
    tracker.add_target(frame, (60, 40, 30, 30))
    for _ in range(3):
        tracker.track(frame)

    assert len(calls) == 3


@pytest.mark.skipif(not (FIXTURES / "model_io.npz").is_file(), reason="official fixtures not beside the repo")
def test_a_freshly_loaded_checkpoint_exports_the_renormed_command_rows():
    """Quirk Q1: the graph's head must see the command rows renormed, though no torch forward ran."""
    io = np.load(FIXTURES / "model_io.npz")
    path = FIXTURES / "fartrack_random_ckpt.pth"
    onnx_model = with_backend(load_checkpoint(path, variant="pico"), "onnxruntime")  # export first
    model = load_checkpoint(path, variant="pico")
    templates = torch.from_numpy(io["template"])[0]
    keep = torch.from_numpy(io["A_token_keep"][:245]).reshape(1, 5, 49)
    with torch.inference_mode():
        embeds = model.embed_template(templates)[None]
        ref = model.forward_embedded(embeds, keep, torch.from_numpy(io["search"])).logits
        got = onnx_model.forward_embedded(embeds, keep, torch.from_numpy(io["search"])).logits
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=0)


def test_device_auto_means_the_cpu_for_onnxruntime(monkeypatch):
    """With a GPU present, device auto would load the model on CUDA, where ONNX Runtime refuses it."""
    from fartrack_ros import params
    from fartrack_ros.model import device_for_backend
    from fartrack_ros.tracker_loading import load_tracker

    assert device_for_backend("auto", "onnxruntime") == "cpu"
    assert device_for_backend(" AUTO", "onnxruntime") == "cpu"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # as on a computer with one GPU at most
    assert device_for_backend("cuda:1", "onnxruntime") == "cuda:1"  # absent: the CPU fallback warns
    assert device_for_backend("auto", "torch") == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a computer with a GPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match="backend 'onnxruntime' runs on the CPU here, not on device 'cuda:1'"):
        device_for_backend("cuda:1", "onnxruntime")  # before a load would start a CUDA context
    values = {spec.name: spec.default for spec in params.PARAMETERS}
    values.update(backend="onnxruntime", device="auto")
    loaded = load_tracker(values)
    assert loaded.device == "cpu" and loaded.model_name.endswith("/onnxruntime")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_onnxruntime_with_cuda_asked_on_a_machine_without_it_falls_back_to_the_cpu_with_a_warning():
    from fartrack_ros import params
    from fartrack_ros.tracker_loading import load_tracker

    warnings = []
    log = type("Log", (), {"warning": lambda self, text: warnings.append(text)})()
    values = {spec.name: spec.default for spec in params.PARAMETERS}
    values.update(backend="onnxruntime", device="cuda")

    loaded = load_tracker(values, log=log)

    assert loaded.device == "cpu" and loaded.model_name.endswith("/onnxruntime")
    assert any("device 'cuda' requested but no CUDA device is available: running on CPU" in w for w in warnings)
