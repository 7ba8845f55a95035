"""Speed measurements: model forwards, the tracker per frame, many targets, OpenCV baselines.

Every figure is a median over repeated runs after warm-up, in milliseconds, measured in one
process so that ratios between rows are fair. The command-line front end is ``fartrack-bench``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Hashable, Optional

import numpy as np
import torch

from .model import FARTrack, build_model, load_checkpoint, with_backend
from .tracker import Tracker, TrackerConfig


WARMUP_FRAMES = 5  # the first frames a tracker (or the node) gets are left out of every figure


@dataclass(frozen=True)
class Runtime:
    """How a model row runs: backend, fused fast path or the official eager arithmetic, precision."""

    label: str
    backend: str = "torch"
    fused: bool = True
    precision: str = "float32"


def reduced_precision(device: str) -> str:
    """The reduced precision the rows measure on a device: float16 on CUDA, bfloat16 on the CPU."""
    return "float16" if device.startswith("cuda") else "bfloat16"


def model_runtimes(device: str) -> tuple[Runtime, ...]:
    """The model-table columns for a device: eager, fused and reduced precision; ORT on the CPU."""
    eager, fused = Runtime("torch-eager", fused=False), Runtime("torch-fused")
    reduced = reduced_precision(device)
    lowered = Runtime("torch-fp16" if reduced == "float16" else "torch-bf16", precision=reduced)
    if device.startswith("cuda"):
        return eager, fused, lowered
    return eager, fused, lowered, Runtime("onnxruntime", "onnxruntime")


def tracker_runtimes(device: str) -> tuple[Runtime, ...]:
    """The fast tracker rows for a device (the baseline row is the masked eager float32 tracker)."""
    return tuple(Runtime(f"fast {r.label.replace('torch-fused', 'torch')}", r.backend, True, r.precision)
                 for r in model_runtimes(device) if r.fused)


@dataclass
class Row:
    """One line of the benchmark table."""

    section: str
    name: str
    ms: float
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        """Frames (or calls) per second that ``ms`` amounts to; infinite for a zero time."""
        return 1000.0 / self.ms if self.ms > 0 else float("inf")


def device_sync(device: torch.device) -> Callable[[], None]:
    """What waits for ``device``'s queued work before a clock is read (nothing on the CPU)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def load_variant(name: str, device: str = "cpu") -> FARTrack:
    """Official-size variants get random weights (speed does not depend on them); 'bundled' loads ours,
    'bundled-NL' its first N layers."""
    if name == "bundled":
        return load_checkpoint(None, device=device)
    if name.startswith("bundled-") and name.endswith("L"):
        return load_checkpoint(None, variant=name[len("bundled-"):-1], device=device)
    torch.manual_seed(0)
    return build_model(name).eval().to(device)


def model_rows(model: FARTrack, label: str, repeats: int, rounds: int = 1) -> list[Row]:
    """Forward time at batch 1 for each runtime x (masked, dropped) with steady-state pruning.

    The rows take turns over ``rounds`` rounds, each timing ``repeats`` calls of a row after one
    warm-up call (the model's caches are its own again), so the machine's drift falls on every
    row of a ratio alike; per row the median over all its calls."""
    cfg = model.cfg
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(0)
    templates = torch.randn(1, cfg.num_template_slots, 3, cfg.template_size, cfg.template_size, generator=gen)
    search = torch.randn(1, 3, cfg.search_size, cfg.search_size, generator=gen)
    templates, search = templates.to(device), search.to(device)
    keep = torch.ones(1, cfg.num_template_slots, cfg.template_tokens, dtype=torch.bool, device=device)
    keep[:, :-1, : cfg.num_pruned] = False  # every stored slot carries its prune mask, the newest none
    calls: dict[str, Callable[[], object]] = {}
    with torch.inference_mode():
        for runtime in model_runtimes(device.type):
            runner = with_backend(model, runtime.backend, runtime.precision)
            for mode, drop in (("masked", False), ("dropped", True)):
                if mode == "masked" and not runtime.fused:
                    # the official computation: all templates re-embedded, masked attention, every frame
                    fn = lambda r=runner: r(templates, search, keep.flatten(1))  # noqa: E731
                else:
                    embeds = runner.embed_template(templates[0]).unsqueeze(0)
                    fn = lambda r=runner, e=embeds, d=drop, f=runtime.fused: r.forward_embedded(  # noqa: E731
                        e, keep, search, drop_pruned=d, fused=f)
                calls[f"{label} {runtime.label} {mode}"] = fn
        sync = device_sync(device)
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for round_index in range(max(rounds, 1)):
            for name, fn in calls.items():
                times = _timed_ms(fn, repeats, warmup=2 if round_index == 0 else 1, sync=sync)
                samples[name] += times
    return [Row("model", name, statistics.median(times)) for name, times in samples.items()]


def _timed_ms(fn: Callable[[], object], repeats: int, warmup: int, sync: Callable[[], None]) -> list[float]:
    """Milliseconds of ``repeats`` calls of fn() after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(1000.0 * (time.perf_counter() - start))
    return times


def synthetic_frames(count: int, seed: int = 1_000_000, size: tuple[int, int] = (320, 240)
                     ) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames (``size`` = width, height) and ground-truth boxes of one held-out generated sequence."""
    from .data.synthetic import SyntheticConfig, generate_sequence

    sequence = generate_sequence(seed, SyntheticConfig(width=size[0], height=size[1], min_length=count,
                                                       max_length=count))
    return [sequence.frame(i) for i in range(len(sequence))], sequence.boxes


def tracker_ms(runner: FARTrack, frames: list[np.ndarray], boxes: np.ndarray, memory: str, targets: int = 1,
               period_s: float = 0.0, to_results: bool = False, drop_pruned: bool = True
               ) -> tuple[float, dict[str, float]]:
    """Median per-frame time of Tracker.track over the frames, with its stage split (crop/model/decode).

    ``runner``: the model as `with_backend` prepares it. Every frame adds a template
    (``lost_threshold`` 0), as a confidently tracked target does: a gated target that is lost
    (random weights, or a box on background) would skip the template step and look cheaper.
    ``period_s`` > 0 paces the frames like a camera: a frame starts no sooner than ``period_s``
    after the previous one started, so the CPU idles between frames as it does in the node (on
    this kind of machine an idle gap makes the next frame measurably slower than back to back).
    ``to_results``: time each frame from the track call until its results are handed out, where
    the node publishes them (before the frame's template step): the part of a frame a closed-loop
    client waits for, since the node embeds the templates while the detections travel and the
    next image comes back. ``drop_pruned`` False: the official masked arithmetic (see
    `TrackerConfig`).
    """
    tracker = Tracker(runner, TrackerConfig(memory=memory, max_targets=max(targets, 1), lost_threshold=0.0,
                                            drop_pruned=drop_pruned))
    for k in range(targets):
        tracker.add_target(frames[0], _spread_box(boxes[0], k, frames[0].shape), target_id=f"t{k}")
    sync = device_sync(next(runner.parameters()).device)
    totals, stages = [], {"crop": [], "model": [], "decode": []}
    results_at = [0.0]

    def mark_results(results) -> None:
        sync()
        results_at[0] = time.perf_counter()

    start = time.perf_counter()
    for index, frame in enumerate(frames[1:]):
        if period_s > 0:
            time.sleep(max(0.0, start + period_s - time.perf_counter()))
        start = time.perf_counter()
        tracker.track(frame, on_results=mark_results)
        sync()
        elapsed = 1000.0 * ((results_at[0] if to_results else time.perf_counter()) - start)
        if index >= WARMUP_FRAMES:
            totals.append(elapsed)
            for stage, value in tracker.last_timings_ms.items():
                stages[stage].append(value)
    return statistics.median(totals), {k: statistics.median(v) for k, v in stages.items()}


def interleaved(measures: dict[Hashable, Callable[[], tuple[float, dict[str, float]]]],
                rounds: int) -> dict[Hashable, tuple[float, dict[str, float]]]:
    """Each ``measures`` entry run ``rounds`` times round-robin, so that the machine's drift over
    the run (10-20 % on a shared VM) falls on every entry alike; per entry the median round."""
    results: dict[Hashable, list[tuple[float, dict[str, float]]]] = {name: [] for name in measures}
    for _ in range(max(rounds, 1)):
        for name, measure in measures.items():
            results[name].append(measure())
    return {name: sorted(runs, key=lambda run: run[0])[len(runs) // 2] for name, runs in results.items()}


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
