"""FARTrack in PyTorch, faithful to the official release (no ROS imports)."""

from .checkpoint import DEFAULT_WEIGHTS_PATH, CheckpointError, config_from_state_dict, load_checkpoint, read_checkpoint, save_checkpoint
from .config import VARIANT_LAYERS, ModelConfig, truncate_config, variant_config
from .decode import box_confidence, decode_boxes, decode_terms, xyxy_to_cxcywh
from .device import resolve_device
from .onnx_backend import BACKENDS, device_for_backend, with_backend, with_backend_for_device
from .precision import PRECISIONS, precision_for_device, with_precision
from .network import PRUNE_LEVELS, FARTrack, ModelOutput, build_model, init_weights, prune_keep_mask

__all__ = [
    "BACKENDS", "DEFAULT_WEIGHTS_PATH", "PRECISIONS", "CheckpointError", "FARTrack", "ModelConfig", "ModelOutput", "PRUNE_LEVELS",
    "VARIANT_LAYERS", "box_confidence", "build_model", "config_from_state_dict", "decode_boxes", "decode_terms",
    "device_for_backend",
    "init_weights", "load_checkpoint", "precision_for_device", "prune_keep_mask", "read_checkpoint", "resolve_device", "save_checkpoint",
    "truncate_config", "variant_config", "with_backend", "with_backend_for_device", "with_precision", "xyxy_to_cxcywh",
]
