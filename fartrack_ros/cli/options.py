"""Command-line options shared by the CLIs that run the model (no torch import, so --help stays fast)."""

from __future__ import annotations

import argparse

BACKEND_CHOICES = ("torch", "onnxruntime")
PRECISION_CHOICES = ("float32", "bfloat16", "float16")


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--precision``, with the library's defaults (torch, float32)."""
    parser.add_argument("--backend", default="torch", choices=BACKEND_CHOICES,
                        help="inference backend (onnxruntime runs on the CPU; default torch)")
    parser.add_argument("--precision", default="float32", choices=PRECISION_CHOICES,
                        help="arithmetic of the layer stack (torch backend; bfloat16 is about 2x faster on "
                             "CPUs with native bf16; default float32)")
