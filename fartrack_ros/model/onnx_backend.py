"""ONNX Runtime backend: the layer stack and head of the fast path run in an ORT session.

Token assembly, template embeddings and token dropping stay in torch (cheap, data-dependent);
the exported graph takes the gathered sequence and a key mask, with dynamic batch and length, so
one graph serves every number of targets and kept tokens.
"""

from __future__ import annotations

import io
import logging
import warnings
from typing import Optional

import torch
from torch import Tensor, nn

from ..choices import BACKENDS
from .checkpoint import adopt_unused_shapes
from .network import FARTrack
from .device import cuda_unavailable_reason
from .precision import precision_for_device, with_precision

_LOG = logging.getLogger(__name__)

class _EncoderHead(nn.Module):
    """What gets exported: gathered tokens + key mask -> (logits, centre-token score row)."""

    def __init__(self, model: FARTrack) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, key_keep: Tensor) -> tuple[Tensor, Tensor]:
        hidden_cmd, row = self.model.encode(tokens, key_keep, fused=True)
        return self.model.backbone.head(hidden_cmd), row


def export_onnx(model: FARTrack) -> bytes:
    """The fast path's layer stack and head of ``model`` as an ONNX graph, in memory (nothing is
    left on disk, also when the process is stopped mid-load).

    The head's word embeddings become a constant of the graph, so the command rows are renormed
    first, as torch's first forward does in place (quirk Q1); a checkpoint stores them unrenormed.
    """
    cfg = model.cfg
    with torch.no_grad():
        model.backbone.command_tokens(1)
    length = cfg.num_template_slots * cfg.template_tokens + cfg.search_tokens + 4
    tokens = torch.zeros(1, length, cfg.embed_dim)
    key_keep = torch.ones(1, length, dtype=torch.bool)
    module = _EncoderHead(model).eval().cpu()
    graph = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (tokens, key_keep),
            graph,
            input_names=["tokens", "key_keep"],
            output_names=["logits", "score_row"],
            dynamic_axes={
                "tokens": {0: "batch", 1: "length"},
                "key_keep": {0: "batch", 1: "length"},
                "logits": {0: "batch"},
                "score_row": {0: "batch", 1: "length"},
            },
            opset_version=17,
            dynamo=False,
        )
    return graph.getvalue()


class OnnxFARTrack(FARTrack):
    """A FARTrack whose fast path runs in ONNX Runtime on the CPU; everything else is torch."""

    def __init__(self, model: FARTrack, num_threads: int = 0) -> None:
        super().__init__(model.cfg)
        import onnxruntime as ort

        weights = model.state_dict()
        adopt_unused_shapes(self, weights)  # as the checkpoint loader does: their size is the training's
        self.load_state_dict(weights)
        self.eval()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = num_threads or torch.get_num_threads()
        # ORT's pool spinning after a run competes with torch's OpenMP pool, which spins too
        # (token assembly and decoding stay in torch): with both, the forward time doubled at times.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(export_onnx(self), options, providers=["CPUExecutionProvider"])

    def encode_logits(self, hidden: Tensor, key_keep: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """`FARTrack.encode_logits` run by the ONNX Runtime session (float32 on the CPU).
        Inference only: it carries no gradient."""
        if torch.is_grad_enabled() and hidden.requires_grad:
            raise RuntimeError("the ONNX Runtime backend is for inference; train with the torch backend")
        if key_keep is None:
            key_keep = torch.ones(hidden.shape[:2], dtype=torch.bool)
        logits, row = self.session.run(
            None, {"tokens": hidden.detach().cpu().float().numpy(), "key_keep": key_keep.cpu().numpy()}
        )
        return torch.from_numpy(logits), torch.from_numpy(row)


def device_for_backend(device: str, backend: str) -> str:
    """The device to load the model on for ``backend``: ONNX Runtime runs on the CPU here, so
    'auto' (CUDA when present) means the CPU for it, and an explicit CUDA device that is present is
    refused now, before a load would start a CUDA context for nothing (ValueError); an absent one
    stays, for the usual CPU fallback with a warning (or device_strict's error)."""
    if backend != "onnxruntime":
        return device
    name = str(device).strip().lower()
    if name == "auto":
        return "cpu"
    if name.startswith("cuda") and cuda_unavailable_reason(device) is None:  # absent: the CPU fallback applies
        raise ValueError(f"backend 'onnxruntime' runs on the CPU here, not on device {device!r}; use device "
                         "'cpu' (or 'auto') or backend 'torch'")
    return device


def with_backend(model: FARTrack, backend: str, precision: str = "float32") -> FARTrack:
    """The model to run for a backend and precision: the torch model (lowered by `with_precision`
    when asked), or its ONNX Runtime twin (CPU, float32)."""
    if backend == "torch":
        if next(model.parameters()).device.type == "cuda":
            # the float32 parts (the patch embedding, the head; every layer at float32) are float32
            # on a GPU too, in every precision and whatever ran before in the process: PyTorch lets
            # cuDNN convolve in TF32 by default, and a library may have allowed TF32 matmuls
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        elif precision == "float16":
            _LOG.warning("precision float16 on the CPU is emulated, about 8x slower than float32 "
                         "(with_backend_for_device runs bfloat16 or float32 there instead)")
        return with_precision(model, precision)
    if backend == "onnxruntime":
        if next(model.parameters()).device.type != "cpu":
            raise ValueError("backend 'onnxruntime' runs on the CPU here; use device 'cpu' or backend 'torch'")
        if precision != "float32":
            raise ValueError(f"backend 'onnxruntime' runs float32 only; use precision 'float32' or backend 'torch' "
                             f"for {precision!r}")
        try:
            return OnnxFARTrack(model)
        except ImportError as exc:
            raise RuntimeError("backend 'onnxruntime' needs the onnxruntime and onnx packages installed") from exc
    raise ValueError(f"unknown backend {backend!r}: choose one of {list(BACKENDS)}")


def with_backend_for_device(model: FARTrack, backend: str, precision: str) -> tuple[FARTrack, str, Optional[str]]:
    """`with_backend` at the precision the model's device runs well (`precision_for_device`): the
    runner, the precision it runs at, and a warning for the user when that differs or is slow."""
    warning = None
    if backend == "torch":
        precision, warning = precision_for_device(precision, next(model.parameters()).device)
    return with_backend(model, backend, precision), precision, warning
