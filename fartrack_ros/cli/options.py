"""Command-line options shared by the CLIs that run the model (no torch import, so --help stays fast)."""

from __future__ import annotations

import argparse
import math
from typing import Callable

from ..choices import BACKENDS, PRECISIONS


def _number(kind: type, what: str, accept: Callable[[float], bool]) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value) or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


def int_at_least(low: int) -> Callable[[str], int]:
    """argparse type for an integer >= ``low``."""
    return _number(int, f"an integer >= {low}", lambda v: v >= low)


# argparse types for counts, rates and durations
positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
positive_float = _number(float, "a number > 0", lambda v: v > 0)
non_negative_float = _number(float, "a number >= 0", lambda v: v >= 0)
fraction = _number(float, "a number in [0, 1]", lambda v: 0 <= v <= 1)


def box_xywh(text: str) -> tuple[float, float, float, float]:
    """argparse type for a box 'x,y,w,h' in pixels: four finite numbers with w, h > 0."""
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected x,y,w,h as four numbers, got {text!r}")
    if values[2] <= 0 or values[3] <= 0:
        raise argparse.ArgumentTypeError(f"width and height must be > 0, got {text!r}")
    return values


def comma_choices(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    """argparse type for a non-empty comma list whose items are among ``choices``."""
    def parse(text: str) -> list[str]:
        items = [item for item in text.replace(" ", "").split(",") if item]
        if not items or any(item not in choices for item in items):
            raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(choices)}, got {text!r}")
        return items

    parse.__name__ = "comma list"
    return parse


def comma_positive_ints(text: str) -> list[int]:
    """argparse type for a non-empty comma list of integers >= 1 (repeats dropped, order kept)."""
    try:
        items = [int(item) for item in text.replace(" ", "").split(",") if item]
    except ValueError:
        items = []
    if not items or min(items) < 1:
        raise argparse.ArgumentTypeError(f"expected a comma list of integers >= 1, got {text!r}")
    return list(dict.fromkeys(items))


comma_positive_ints.__name__ = "comma list"


def comma_non_negative_floats(text: str) -> list[float]:
    """argparse type for a non-empty comma list of finite numbers >= 0 (repeats dropped, order kept)."""
    try:
        items = [float(item) for item in text.replace(" ", "").split(",") if item]
    except ValueError:
        items = []
    if not items or not all(math.isfinite(item) and item >= 0 for item in items):
        raise argparse.ArgumentTypeError(f"expected a comma list of numbers >= 0, got {text!r}")
    return list(dict.fromkeys(items))


comma_non_negative_floats.__name__ = "comma list"


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
    """``--backend``, ``--precision`` and ``--threads``, with the library's defaults (torch,
    float32, torch's thread count); `apply_threads` puts ``--threads`` into effect."""
    parser.add_argument("--backend", default="torch", choices=BACKENDS,
                        help="inference backend (onnxruntime runs on the CPU; default torch)")
    parser.add_argument("--precision", default="float32", choices=PRECISIONS,
                        help="arithmetic of the layer stack (torch backend; bfloat16 is 2.1-2.4x faster than "
                             "float32 for the official sizes on CPUs with native bf16; default float32)")
    parser.add_argument("--threads", type=non_negative_int, default=0,
                        help="CPU threads of the model (default 0: torch's default, one per physical core; on "
                             "a machine busy with other work fewer are faster: the threads wait for each other)")


def apply_threads(threads: int) -> None:
    """``--threads``: torch's CPU threads (0 keeps torch's choice)."""
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def node_parameter(name: str) -> Callable[[str], str]:
    """argparse type for an option that is the node's string parameter ``name``, by the node's rule."""

    def parse(text: str) -> str:
        from ..params import validate

        problem = validate(name, text)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return text

    parse.__name__ = name
    return parse


# --variant: '', tiny, nano, pico or a number of layers
variant_name = node_parameter("variant")
