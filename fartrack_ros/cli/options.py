"""Command-line options shared by the CLIs that run the model (no torch import, so --help stays fast)."""

from __future__ import annotations

import argparse

BACKEND_CHOICES = ("torch", "onnxruntime")
PRECISION_CHOICES = ("float32", "bfloat16", "float16")


def frame_size(text: str) -> tuple[int, int]:
    """argparse type for a frame size ``WIDTHxHEIGHT`` (at least 64x64): (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 640x480, got {text!r}") from None
    if width < 64 or height < 64:
        raise argparse.ArgumentTypeError(f"frames of {text} are too small (at least 64x64)")
    return width, height


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--precision``, with the library's defaults (torch, float32)."""
    parser.add_argument("--backend", default="torch", choices=BACKEND_CHOICES,
                        help="inference backend (onnxruntime runs on the CPU; default torch)")
    parser.add_argument("--precision", default="float32", choices=PRECISION_CHOICES,
                        help="arithmetic of the layer stack (torch backend; bfloat16 is about 2x faster on "
                             "CPUs with native bf16; default float32)")
