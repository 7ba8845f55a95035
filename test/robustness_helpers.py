"""Helpers shared by the robustness tests: a test scene, stamps, and waiting for the node's log."""

from __future__ import annotations

import time

import numpy as np

WIDTH, HEIGHT = 320, 240
ANCHOR_BOX = (60.0, 80.0, 40.0, 40.0)


def scene(shift: int = 0) -> np.ndarray:
    """A textured background with a red and a blue object; the red one moves right by ``shift``."""
    frame = np.random.default_rng(0).integers(60, 120, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    frame[80:120, 60 + shift:100 + shift] = (220, 40, 40)
    frame[140:190, 200:240] = (40, 40, 220)
    return frame


class Stamps:
    """Unique increasing stamps for the module."""

    def __init__(self):
        self.next_ns = 5_000 * 1_000_000_000

    def __call__(self) -> int:
        self.next_ns += 33_000_000
        return self.next_ns


def wait_for_log(node, since: int, text: str, timeout: float = 5.0) -> bool:
    """True once ``text`` appears in the node's output after character ``since``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in node.log_text()[since:]:
            return True
        time.sleep(0.05)
    return text in node.log_text()[since:]


def wait_for_line(node, since: int, *parts: str, timeout: float = 5.0) -> bool:
    """True once one line of the node's output after ``since`` contains every one of ``parts``."""
    deadline = time.monotonic() + timeout
    while True:
        if any(all(part in line for part in parts) for line in node.log_text()[since:].splitlines()):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
