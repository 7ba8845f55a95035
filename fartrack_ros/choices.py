"""The names a user picks a device, backend and precision by, written once: the model, the CLIs
and the node's parameters all check against these. Importing this needs neither torch nor ROS,
so the CLIs' --help and the parameter table stay light."""

from __future__ import annotations

import re

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")  # matched against the lower-cased, stripped name
BACKENDS = ("torch", "onnxruntime")
PRECISIONS = ("float32", "bfloat16", "float16")


def is_device_name(device: str) -> bool:
    """Whether ``device`` names a device the package can run on: auto, cpu, cuda or cuda:N (any case)."""
    return DEVICE_PATTERN.match(str(device).strip().lower()) is not None
