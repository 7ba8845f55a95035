"""Tracking metrics with the GOT-10k and OTB/LaSOT conventions, stated exactly.

Boxes are (N, 4) ``(x, y, w, h)`` in pixels, continuous coordinates (no "+1" pixel convention:
the centre differences, and so every figure here, come out the same with it):
a box covers [x, x + w) x [y, y + h).

GOT-10k (as the official toolkit's ``ExperimentGOT10k.report``):
- per frame, the IoU of prediction and ground truth after both are clipped to the image
  (``bound``); the first frame (the initialisation) and frames where the target is absent are
  left out;
- the IoUs of all sequences are concatenated, so every scored frame weighs the same;
- AO = mean IoU; SR_t = fraction of those frames with IoU > t (strictly), for t = 0.5 and 0.75.

OTB / LaSOT (as the LaSOT toolkit and pytracking's analysis with its default settings, which
published LaSOT figures come from):
- per sequence, over every frame, the first included (its prediction is the initial box);
  IoU without clipping to the image;
- a prediction of zero size is replaced by the previous frame's, as the OTB and LaSOT toolkits
  do (a tracker that reports nothing keeps its last box);
- frames where the target is absent (fully occluded, out of view, no ground truth) count as
  failures: no box can be right there, and the toolkits divide by every frame;
- success curve: fraction of frames with IoU > t for the 21 thresholds t = 0, 0.05, ..., 1;
  the curves of all sequences are averaged (every sequence weighs the same); success AUC is the
  mean of the averaged curve;
- precision: fraction of frames whose centre error (distance between box centres) is <= 20 px;
  normalized precision: the same with each axis of the error divided by the ground truth's width
  and height, at <= 0.2 (pytracking's "Norm Precision"); both averaged over sequences.

Not as the originals: a GOT-10k frame counts as absent when any label says so (absence.label,
cover 0, a box of no size), where the toolkit reads cover alone (they differ only where the
labels disagree); an invalid prediction scores IoU 0 in AO (the toolkit's becomes NaN). In
OTB/LaSOT figures a prediction with a non-finite value or a negative size is carried forward like
an empty one, where pytracking refuses the whole results file; a ground-truth box of no size is
absent here (a miss), where pytracking's normalized precision counts it a success.

FPS: frames tracked (update calls, the initialisation excluded) divided by the total time spent
in those calls, over all sequences (GOT-10k's toolkit averages 1 / time per frame instead, which
weighs fast frames more).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from fartrack_ros.data.sequence import TrackingSequence

SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PRECISION_THRESHOLD_PX = 20.0
NORM_PRECISION_THRESHOLD = 0.2  # centre error in units of the ground truth's width and height


def _as_boxes(boxes) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    return array.reshape(-1, 4)


def clip_to_image(boxes: ArrayLike, width: float, height: float) -> np.ndarray:
    """Boxes bounded by the image exactly as the GOT-10k toolkit's ``rect_iou(..., bound)`` does.

    x and y are clipped to [0, width] and [0, height], then w and h to what is left to the right
    and below. Like the toolkit, a box sticking out on the left or top is moved, not shortened.
    """
    b = _as_boxes(boxes).copy()
    b[:, 0] = np.clip(b[:, 0], 0, width)
    b[:, 1] = np.clip(b[:, 1], 0, height)
    b[:, 2] = np.clip(b[:, 2], 0, width - b[:, 0])
    b[:, 3] = np.clip(b[:, 3], 0, height - b[:, 1])
    return b


def iou_xywh(pred: ArrayLike, gt: ArrayLike, bound: tuple[float, float] | None = None) -> np.ndarray:
    """Per-row IoU of two (N, 4) xywh arrays in [0, 1]; 0 where the union is empty.

    ``bound=(width, height)`` clips both to the image first. Negative sizes count as empty. The
    result is clipped to [0, 1], as the GOT-10k toolkit does: rounding in (x + w) - x could
    otherwise put a box's IoU with itself above 1 and count it a success at threshold 1.
    """
    a, b = _as_boxes(pred), _as_boxes(gt)
    if a.shape != b.shape:
        raise ValueError(f"box arrays differ in shape: {a.shape} vs {b.shape}")
    if bound is not None:
        a, b = clip_to_image(a, *bound), clip_to_image(b, *bound)
    aw, ah = np.maximum(a[:, 2], 0), np.maximum(a[:, 3], 0)
    bw, bh = np.maximum(b[:, 2], 0), np.maximum(b[:, 3], 0)
    iw = np.clip(np.minimum(a[:, 0] + aw, b[:, 0] + bw) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 1] + ah, b[:, 1] + bh) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip(np.where(union > 0, inter / union, 0.0), 0.0, 1.0)


def centre_error(pred: ArrayLike, gt: ArrayLike, normalized: bool = False) -> np.ndarray:
    """Per-row distance in pixels between the centres (x + w/2, y + h/2) of two box arrays;
    ``normalized``: each axis divided by ``gt``'s width or height first."""
    a, b = _as_boxes(pred), _as_boxes(gt)
    dx = (a[:, 0] + a[:, 2] / 2) - (b[:, 0] + b[:, 2] / 2)
    dy = (a[:, 1] + a[:, 3] / 2) - (b[:, 1] + b[:, 3] / 2)
    if normalized:
        with np.errstate(divide="ignore", invalid="ignore"):
            dx, dy = dx / b[:, 2], dy / b[:, 3]
    return np.hypot(dx, dy)


def carry_forward_invalid(pred: ArrayLike) -> np.ndarray:
    """``pred`` with every box holding a non-finite value or a size <= 0 replaced by the box before
    it (row 0, the initial box, is kept): the toolkits do so for a box of zero size and refuse the
    other invalid ones; here a tracker's bad frame costs that frame, not its whole results file."""
    boxes = _as_boxes(pred).copy()
    invalid = ~np.isfinite(boxes).all(axis=1) | (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0)
    for index in np.flatnonzero(invalid):
        if index > 0:
            boxes[index] = boxes[index - 1]
    return boxes


def present_frames(gt: ArrayLike, absent: ArrayLike | None = None) -> np.ndarray:
    """Frames where the target is present: not flagged absent and a box of positive size."""
    b = _as_boxes(gt)
    present = (b[:, 2] > 0) & (b[:, 3] > 0)
    if absent is not None:
        present &= ~np.asarray(absent, dtype=bool)
    return present


def success_curve(ious: ArrayLike, thresholds: ArrayLike = SUCCESS_THRESHOLDS) -> np.ndarray:
    """Fraction of IoUs strictly above each threshold (zeros for no frames)."""
    ious = np.asarray(ious, dtype=np.float64)
    if ious.size == 0:
        return np.zeros(len(thresholds))
    return (ious[:, None] > np.asarray(thresholds)[None, :]).mean(axis=0)


@dataclass(frozen=True)
class SequenceResult:
    """One tracker's predictions on one sequence, with what scoring needs from the sequence."""

    name: str
    pred: np.ndarray  # (N, 4) xywh, row 0 = the initial box
    gt: np.ndarray  # (N, 4)
    absent: np.ndarray  # (N,) bool
    image_size: tuple[int, int]  # (width, height)
    track_time_s: float = 0.0  # time spent in update calls (frames 1..N-1)

    @staticmethod
    def frame_count(sequence: TrackingSequence, max_frames: int | None) -> int:
        """How many frames of ``sequence`` are tracked and scored: its first ``max_frames`` (all when None)."""
        return len(sequence) if max_frames is None else min(len(sequence), max_frames)

    @classmethod
    def of(cls, sequence: TrackingSequence, pred: np.ndarray, image_size: tuple[int, int],
           track_time_s: float) -> SequenceResult:
        """``pred`` for the first ``len(pred)`` frames of ``sequence``, with their ground truth."""
        count = len(pred)
        return cls(name=sequence.name, pred=pred, gt=sequence.boxes[:count].copy(),
                   absent=sequence.absent[:count].copy(), image_size=image_size, track_time_s=track_time_s)

    def got10k_ious(self) -> np.ndarray:
        """IoUs GOT-10k scores: frames after the first, target present, boxes clipped to the image."""
        keep = present_frames(self.gt, self.absent)
        keep[0] = False
        return iou_xywh(self.pred[keep], self.gt[keep], bound=self.image_size)

    def otb_ious(self) -> np.ndarray:
        """IoU per frame by OTB / LaSOT rules: every frame, 0 where the target is absent."""
        present = present_frames(self.gt, self.absent)
        return np.where(present, iou_xywh(self._otb_pred(), self.gt), 0.0)

    def otb_centre_errors(self, normalized: bool = False) -> np.ndarray:
        """Centre error per frame by OTB / LaSOT rules: every frame, infinite where the target is absent."""
        present = present_frames(self.gt, self.absent)
        return np.where(present, centre_error(self._otb_pred(), self.gt, normalized), np.inf)

    def _otb_pred(self) -> np.ndarray:
        return carry_forward_invalid(self.pred)


@dataclass(frozen=True)
class TrackerScores:
    """The numbers one table row shows, plus the success curve for the plot."""

    ao: float
    sr50: float
    sr75: float
    success_auc: float
    precision: float
    norm_precision: float
    fps: float
    success_curve: np.ndarray  # (21,) averaged OTB/LaSOT curve over SUCCESS_THRESHOLDS
    frames: int  # frames scored by GOT-10k rules


def score_results(results: list[SequenceResult]) -> TrackerScores:
    """Score one tracker over a set of sequences (see the module docstring for the rules)."""
    if not results:
        raise ValueError("no sequence results to score")
    got_ious = np.concatenate([r.got10k_ious() for r in results])
    curves = np.stack([success_curve(r.otb_ious()) for r in results])
    precisions = [float(np.mean(r.otb_centre_errors() <= PRECISION_THRESHOLD_PX)) for r in results]
    norm_precisions = [float(np.mean(r.otb_centre_errors(normalized=True) <= NORM_PRECISION_THRESHOLD))
                       for r in results]
    tracked = sum(len(r.pred) - 1 for r in results)
    seconds = sum(r.track_time_s for r in results)
    curve = curves.mean(axis=0)
    return TrackerScores(
        ao=float(got_ious.mean()) if got_ious.size else 0.0,
        sr50=float(np.mean(got_ious > 0.5)) if got_ious.size else 0.0,
        sr75=float(np.mean(got_ious > 0.75)) if got_ious.size else 0.0,
        success_auc=float(curve.mean()),
        precision=float(np.mean(precisions)),
        norm_precision=float(np.mean(norm_precisions)),
        fps=tracked / seconds if seconds > 0 else float("nan"),
        success_curve=curve,
        frames=int(got_ious.size),
    )


def sequence_ao(result: SequenceResult) -> float:
    """GOT-10k AO of one sequence (nan when no frame is scored)."""
    ious = result.got10k_ious()
    return float(ious.mean()) if ious.size else float("nan")
