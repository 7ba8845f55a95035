"""Speed measurements: model forwards, the tracker per frame, many targets, OpenCV baselines.

Every figure is a median over repeated runs after warm-up, in milliseconds, measured in one
process so that ratios between rows are fair. The command-line front end is ``fartrack-bench``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from .model import FARTrack, build_model, load_checkpoint, with_backend
from .tracker import Tracker, TrackerConfig

# Backend rows of the model table: (label, backend, fused attention).
MODEL_BACKENDS = (("torch-eager", "torch", False), ("torch-fused", "torch", True), ("onnxruntime", "onnxruntime", True))


@dataclass
class Row:
    """One line of the benchmark table."""

    section: str
    name: str
    ms: float
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return 1000.0 / self.ms if self.ms > 0 else float("inf")


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median wall time of fn() in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def load_variant(name: str) -> FARTrack:
    """Official-size variants get random weights (speed does not depend on them); 'bundled' loads ours."""
    if name == "bundled":
        return load_checkpoint(None)
    torch.manual_seed(0)
    return build_model(name).eval()


def model_rows(model: FARTrack, label: str, repeats: int) -> list[Row]:
    """Forward time at batch 1 for each backend x (masked, dropped) with steady-state pruning."""
    cfg = model.cfg
    gen = torch.Generator().manual_seed(0)
    templates = torch.randn(1, cfg.num_template_slots, 3, cfg.template_size, cfg.template_size, generator=gen)
    search = torch.randn(1, 3, cfg.search_size, cfg.search_size, generator=gen)
    keep = torch.ones(1, cfg.num_template_slots, cfg.template_tokens, dtype=torch.bool)
    keep[:, :-1, : cfg.num_pruned] = False  # every stored slot carries its prune mask, the newest none
    rows = []
    with torch.inference_mode():
        for backend_label, backend, fused in MODEL_BACKENDS:
            runner = with_backend(model, backend)
            for mode, drop in (("masked", False), ("dropped", True)):
                if mode == "masked" and not fused:
                    # the official computation: all templates re-embedded, masked attention, every frame
                    fn = lambda: runner(templates, search, keep.flatten(1))  # noqa: E731
                else:
                    embeds = runner.embed_template(templates[0]).unsqueeze(0)
                    fn = lambda e=embeds, d=drop: runner.forward_embedded(e, keep, search, drop_pruned=d, fused=fused)  # noqa: E731
                rows.append(Row("model", f"{label} {backend_label} {mode}", median_ms(fn, repeats)))
    return rows


def synthetic_frames(count: int, seed: int = 1_000_000) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames and ground-truth boxes of one held-out generated sequence."""
    from .data.synthetic import SyntheticConfig, generate_sequence

    sequence = generate_sequence(seed, SyntheticConfig(min_length=count, max_length=count))
    return [sequence.frame(i) for i in range(len(sequence))], sequence.boxes


def tracker_ms(model: FARTrack, frames: list[np.ndarray], boxes: np.ndarray, memory: str, targets: int = 1,
               backend: str = "torch") -> tuple[float, dict[str, float]]:
    """Median per-frame time of Tracker.track over the frames, with its stage split (crop/model/decode)."""
    tracker = Tracker(with_backend(model, backend), TrackerConfig(memory=memory, max_targets=max(targets, 1)))
    for k in range(targets):
        tracker.add_target(frames[0], _spread_box(boxes[0], k, frames[0].shape), target_id=f"t{k}")
    totals, stages = [], {"crop": [], "model": [], "decode": []}
    for index, frame in enumerate(frames[1:]):
        start = time.perf_counter()
        tracker.track(frame)
        elapsed = 1000.0 * (time.perf_counter() - start)
        if index >= 2:  # warm-up frames
            totals.append(elapsed)
            for stage, value in tracker.last_timings_ms.items():
                stages[stage].append(value)
    return statistics.median(totals), {k: statistics.median(v) for k, v in stages.items()}


def _spread_box(box: np.ndarray, k: int, shape: tuple[int, ...]) -> list[float]:
    """The k-th target: the ground-truth box shifted so several targets are spread over the frame."""
    height, width = shape[:2]
    x, y, w, h = (float(v) for v in box)
    dx = (k % 4) * width / 4.0
    dy = (k // 4) * height / 2.0
    return [min(max(0.0, (x + dx) % (width - w)), width - w), min(max(0.0, (y + dy) % (height - h)), height - h), w, h]


def opencv_ms(kind: str, frames: list[np.ndarray], box: np.ndarray) -> Optional[float]:
    """Median per-frame update time of an OpenCV tracker; None when OpenCV lacks it."""
    from .evaluation.runners import OpenCVRunner

    try:
        runner = OpenCVRunner(kind)
    except RuntimeError:
        return None
    runner.init(frames[0], box)
    times = []
    for frame in frames[1:]:
        start = time.perf_counter()
        runner.update(frame)
        times.append(1000.0 * (time.perf_counter() - start))
    return statistics.median(times[2:])
