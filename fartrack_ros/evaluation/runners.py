"""Trackers behind one small interface, and running one over a sequence.

A tracker runner has a ``name`` and two methods: ``init(frame_rgb, box_xywh)`` on the first frame
and ``update(frame_rgb) -> box_xywh`` on each later one. Frames are HxWx3 uint8 RGB; boxes are
(x, y, w, h) in pixels. Runners exist for OpenCV's CSRT and KCF and for our FARTrack tracker.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

import cv2
import numpy as np

from fartrack_ros.data.sequence import TrackingSequence
from fartrack_ros.evaluation.metrics import SequenceResult

if TYPE_CHECKING:
    from fartrack_ros.model import FARTrack
    from fartrack_ros.tracker import TrackerConfig

_LOG = logging.getLogger(__name__)


class TrackerRunner(Protocol):
    name: str

    def init(self, frame_rgb: np.ndarray, box_xywh: Sequence[float] | np.ndarray) -> None:
        """Start on the first frame with the target at ``box_xywh``, forgetting any earlier target."""

    def update(self, frame_rgb: np.ndarray) -> np.ndarray:
        """The target's (x, y, w, h) in the next frame, as a float64 array of 4."""


class OpenCVRunner:
    """An OpenCV tracker (CSRT or KCF). Where OpenCV reports a failure the last box is kept."""

    _FACTORIES: dict[str, str] = {"csrt": "TrackerCSRT_create", "kcf": "TrackerKCF_create"}

    def __init__(self, kind: str) -> None:
        kind = kind.lower()
        if kind not in self._FACTORIES:
            raise ValueError(f"unknown OpenCV tracker {kind!r} (choose one of {sorted(self._FACTORIES)})")
        factory = getattr(cv2, self._FACTORIES[kind], None) or getattr(
            getattr(cv2, "legacy", None), self._FACTORIES[kind], None)
        if factory is None:
            raise RuntimeError(f"this OpenCV ({cv2.__version__}) has no {self._FACTORIES[kind]}; "
                               "install opencv-contrib-python(-headless)")
        self.name = kind
        self._factory: Callable = factory
        self._tracker = None
        self._box = np.zeros(4)

    def init(self, frame_rgb: np.ndarray, box_xywh: Sequence[float] | np.ndarray) -> None:
        """Create a fresh OpenCV tracker on the first frame; it takes the box as integer pixels inside the image."""
        self._tracker = self._factory()
        height, width = frame_rgb.shape[:2]
        rect = clipped_rect(box_xywh, height, width)
        self._tracker.init(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR), rect)
        self._box = np.array(box_xywh, dtype=np.float64)

    def update(self, frame_rgb: np.ndarray) -> np.ndarray:
        """The box OpenCV reports for the next frame, or the last one where it reports a failure."""
        ok, rect = self._tracker.update(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))
        if ok and rect[2] > 0 and rect[3] > 0:
            self._box = np.array(rect, dtype=np.float64)
        return self._box.copy()


def clipped_rect(box_xywh: Sequence[float] | np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """The part of a box inside the image as OpenCV's integer (x, y, w, h), at least 1x1 px."""
    x, y, w, h = (float(v) for v in box_xywh)
    x0, y0 = min(max(0, round(x)), width - 1), min(max(0, round(y)), height - 1)
    x1, y1 = min(round(x + w), width), min(round(y + h), height)
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


class FARTrackRunner:
    """Our tracker (``fartrack_ros.tracker.Tracker``) with one target, as a runner.

    Give a loaded network (``model``) or let it load ``weights`` (None: the bundled model) with
    ``variant`` on ``device``, run by ``backend`` (torch or onnxruntime) at ``precision``. The tracker package is
    imported only here, on demand.
    """

    name = "fartrack"

    def __init__(self, weights: str | None = None, variant: str | None = None, device: str = "cpu",
                 model: FARTrack | None = None, tracker_config: TrackerConfig | None = None, backend: str = "torch",
                 precision: str = "float32") -> None:
        from fartrack_ros.model import device_for_backend, load_checkpoint, with_backend_for_device
        from fartrack_ros.tracker import Tracker

        # what runs, for reports: fine-tunes of one size share a model name, so the file is named too
        source = "a network given in process" if model is not None else (weights or "the bundled model")
        if model is None:
            model = load_checkpoint(weights, variant=variant, device=device_for_backend(device, backend))
        cfg = model.cfg
        model, precision, warning = with_backend_for_device(model, backend, precision)
        if warning:
            _LOG.warning(warning)
        self.description = f"{source} ({cfg.name}, {cfg.num_layers} layers, {backend} {precision})"  # as it runs
        self._tracker = Tracker(model, tracker_config)
        self._tracker.warm_up()  # lazy set-up is not tracking speed: kept out of the timed updates

    def init(self, frame_rgb: np.ndarray, box_xywh: Sequence[float] | np.ndarray) -> None:
        """Reset the tracker and add the one target at ``box_xywh`` of the first frame."""
        self._tracker.reset()
        self._tracker.add_target(frame_rgb, [float(v) for v in box_xywh], "eval")

    def update(self, frame_rgb: np.ndarray) -> np.ndarray:
        """The target's box in the next frame (while LOST, the last confident box)."""
        (result,) = self._tracker.track(frame_rgb)
        return np.asarray(result.box_xywh, dtype=np.float64)


RUNNER_NAMES = ("fartrack", "csrt", "kcf")


def make_runner(name: str, weights: str | None = None, variant: str | None = None,
                device: str = "cpu", backend: str = "torch", precision: str = "float32") -> TrackerRunner:
    """A runner by name: ``fartrack``, ``csrt`` or ``kcf``."""
    key = name.strip().lower()
    if key not in RUNNER_NAMES:
        raise ValueError(f"unknown tracker {name!r} (choose from {', '.join(RUNNER_NAMES)})")
    if key == "fartrack":
        return FARTrackRunner(weights=weights, variant=variant, device=device, backend=backend,
                              precision=precision)
    return OpenCVRunner(key)


def run_sequence(runner: TrackerRunner, sequence: TrackingSequence,
                 max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Track ``sequence`` from its first box; returns (predicted boxes (N, 4), FPS of the updates).

    Row 0 is the initial box. FPS counts update calls only (no frame loading, no init).
    """
    result = track_sequence(runner, sequence, max_frames)
    frames = len(result.pred) - 1
    fps = frames / result.track_time_s if result.track_time_s > 0 else float("nan")
    return result.pred, fps


def track_sequence(runner: TrackerRunner, sequence: TrackingSequence,
                   max_frames: int | None = None) -> SequenceResult:
    """Like ``run_sequence`` but returns a `SequenceResult` ready for scoring."""
    count = SequenceResult.frame_count(sequence, max_frames)
    first = sequence.frame(0)
    pred = np.zeros((count, 4))
    pred[0] = sequence.boxes[0]
    runner.init(first, sequence.boxes[0])
    spent = 0.0
    for index in range(1, count):
        frame = sequence.frame(index)
        start = time.perf_counter()
        pred[index] = runner.update(frame)
        spent += time.perf_counter() - start
    height, width = first.shape[:2]
    return SequenceResult.of(sequence, pred, (width, height), spent)
