"""Tracking many targets with one FARTrack network: per-target state, one batched forward.

Per frame and target the tracker crops a search region around the target's current state,
runs the network on it together with the target's template slots, decodes the coordinate
logits into a box, maps it back into the image and clips it (all as the official tracker;
README section 2.2), then crops a new template around the new box and stores it in the
target's `TemplateMemory` with the prune mask the forward produced.

Two memory modes:

``official``
    the official behaviour: a template every frame, no confidence gate, nothing thinned.
    The score and the TRACKING/LOST state are still reported, but change nothing.
``bounded`` (default)
    the memory is capped at ``template_memory_cap`` templates per target and a confidence gate
    decides what gets stored and where the next search happens (see `TrackerConfig`).
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Iterable

import numpy as np
import torch

from ..evaluation.metrics import iou_xywh
from ..model import FARTrack, box_confidence, decode_boxes, xyxy_to_cxcywh
from .box_mapping import clip_box, crop_px_boxes, map_box_back
from .cropping import normalize_patches, sample_target
from .template_memory import TemplateMemory

MEMORY_MODES = ("bounded", "official")
CLIP_MARGIN_PX = 10
RECOVERY_OVERLAP = 0.5  # a LOST target waking up on a box this much over a tracked one's stays LOST


class TrackState(str, Enum):
    """TRACKING: the box follows the target. LOST: ``lost_frames`` unconfident frames in a row
    (see `TrackerConfig`); the box reported is the last confident one."""

    TRACKING = "TRACKING"
    LOST = "LOST"


class TargetLimitError(RuntimeError):
    """Raised when adding a target would exceed ``max_targets``."""


@dataclass(frozen=True)
class TrackerConfig:
    """How the tracker uses the network; the network's own sizes come from ``model.cfg``.

    Confidence gate (``bounded`` mode). A frame is confident when its score (the mean peak
    probability of the four coordinate distributions) is at least ``lost_threshold``.

    - Only confident frames add a template, so the newest template (the most influential slot)
      always shows the target as last seen well. In particular no template is added while LOST.
    - After ``lost_frames`` consecutive frames below the threshold the target is LOST. While
      LOST the search region stays on the last confident box instead of following the
      unconfident predictions, which wander off; a target that left the view and comes back
      near where it was last seen is found again there. The reported box is that last
      confident box.
    - The first confident frame makes the target TRACKING again and moves it to the new box,
      unless that box overlaps (IoU >= RECOVERY_OVERLAP) the box of a target tracked confidently
      in the same frame: a LOST target that wakes up on another target's object (the same object
      given two ids, or a look-alike's tracker) would report one object twice; it stays LOST,
      its search following that box meanwhile (two objects moving together would otherwise leave
      it behind), and is found again once the boxes part.

    ``template_memory_cap`` (``bounded``) is at least the model's template slots (5 for the
    official models), which the `Tracker` checks. ``official`` memory keeps a template every frame
    and never thins them: it grows without bound, as the official tracker's does (the bundled
    model: about 8 MB a target per 1000 frames); use it to reproduce the official boxes, not on a
    robot.

    ``drop_pruned`` False runs the official arithmetic instead of the fast path: every template
    token present, pruned ones masked, eager attention, in torch whatever the backend. The boxes
    are the same to float rounding; it is slower, and is the benchmark's baseline.
    """

    memory: str = "bounded"
    template_memory_cap: int = 64
    lost_threshold: float = 0.15
    lost_frames: int = 5
    max_targets: int = 16
    drop_pruned: bool = True

    def __post_init__(self) -> None:
        if self.memory not in MEMORY_MODES:
            raise ValueError(f"memory must be one of {MEMORY_MODES}, got {self.memory!r}")
        for name in ("template_memory_cap", "lost_frames", "max_targets"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))  # numpy's integers too, stored as int
        if not isinstance(self.lost_threshold, numbers.Real) or isinstance(self.lost_threshold, (bool, np.bool_)):
            raise ValueError(f"lost_threshold must be a number, got {self.lost_threshold!r}")
        object.__setattr__(self, "lost_threshold", float(self.lost_threshold))
        if not isinstance(self.drop_pruned, (bool, np.bool_)):
            raise ValueError(f"drop_pruned must be True or False, got {self.drop_pruned!r}")
        object.__setattr__(self, "drop_pruned", bool(self.drop_pruned))
        if self.template_memory_cap < 2:
            raise ValueError(f"template_memory_cap must be >= 2 (the first and the newest template), "
                             f"got {self.template_memory_cap}")
        if self.lost_frames < 1:
            raise ValueError(f"lost_frames must be >= 1, got {self.lost_frames}")
        if not 0.0 <= self.lost_threshold <= 1.0:
            raise ValueError(f"lost_threshold must be in [0, 1], got {self.lost_threshold}")
        if self.max_targets < 1:
            raise ValueError(f"max_targets must be >= 1, got {self.max_targets}")


@dataclass(frozen=True)
class TrackResult:
    """One target in one frame: its box in the frame's pixels (while LOST, the last confident
    box), the score the confidence gate compares with ``lost_threshold`` (the mean peak
    probability of the four coordinate distributions, 0..1), its state and how many templates it
    holds."""

    target_id: str
    box_xywh: tuple[float, float, float, float]
    score: float
    state: TrackState
    templates_held: int


@dataclass(frozen=True)
class TargetSnapshot:
    """What the next `Tracker.track` will use for one target (for tests, status and debugging)."""

    target_id: str
    state: TrackState
    search_box_xywh: tuple[float, float, float, float]  # the next search crop is centred here
    slot_indices: tuple[int, ...]  # logical template index in each slot
    template_keep: np.ndarray  # (S*T,) bool, the template part of the per-token keep vector
    held_indices: tuple[int, ...]  # logical indices of all templates held


@dataclass
class _Target:
    target_id: str
    state_xywh: list[float]  # where the next search crop is centred (the official `state`)
    memory: TemplateMemory
    last_confident_xywh: list[float]
    frame_hw: tuple[int, int]  # size of the frames the boxes above are in
    frames_below: int = 0
    frames_at_size: int = 0  # frames tracked since the size last changed
    status: TrackState = TrackState.TRACKING


def _one_at_a_time(method):
    """Run a `Tracker` method under the tracker's lock: calls from several threads take turns."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class Tracker:
    """Tracks any number of targets in a stream of frames with one FARTrack network.

    Frames are ``HxWx3`` uint8 RGB arrays; boxes are ``(x, y, w, h)`` floats in pixels. Its
    methods may be called from several threads: they take turns (one lock per tracker, held
    during ``on_results`` too: a callback must not wait for another thread using this tracker);
    ``last_timings_ms`` and ``last_rescaled`` tell of the latest `track` call, whichever thread made
    it. Trackers sharing one model run side by side. The model is put in eval mode.
    """

    def __init__(self, model: FARTrack, config: TrackerConfig | None = None) -> None:
        if not (hasattr(model, "forward_embedded") and hasattr(model, "cfg")):
            raise TypeError(f"Tracker needs a loaded model, e.g. Tracker(load_checkpoint(path)), got "
                            f"{type(model).__name__} {model!r:.60}")
        self._lock = threading.RLock()
        self.model = model.eval()
        self.cfg = model.cfg
        self.config = config or TrackerConfig()
        self.device = next(model.parameters()).device
        self._targets: dict[str, _Target] = {}
        self._auto_ids = itertools.count(1)
        self.last_timings_ms = {"crop": 0.0, "model": 0.0, "decode": 0.0}
        # targets whose boxes the last `track` scaled to a new frame size -> their old (h, w)
        self.last_rescaled: dict[str, tuple[int, int]] = {}
        self._all_keep = torch.ones(self.cfg.template_tokens, dtype=torch.bool, device=self.device)

    @property
    def config(self) -> TrackerConfig:
        """The settings every target is tracked with (see `TrackerConfig`)."""
        return self._config

    @config.setter
    @_one_at_a_time
    def config(self, config: TrackerConfig) -> None:
        """Replace the settings; they apply to every target from the next frame on."""
        if config.template_memory_cap < self.cfg.num_template_slots:
            raise ValueError(f"template_memory_cap must be >= the model's "
                             f"{self.cfg.num_template_slots} template slots, got "
                             f"{config.template_memory_cap}")
        self._config = config

    # -- targets ------------------------------------------------------------------------------
    @property
    @_one_at_a_time
    def target_ids(self) -> list[str]:
        """Ids of the tracked targets in the order they were added (a re-initialised one keeps its place)."""
        return list(self._targets)

    @property
    @_one_at_a_time
    def lost_target_ids(self) -> list[str]:
        """Ids of the targets that are LOST (see `TrackerConfig`)."""
        return [t.target_id for t in self._targets.values() if t.status == TrackState.LOST]

    @_one_at_a_time
    def add_target(self, frame: np.ndarray, box_xywh: Iterable[float], target_id: str | None = None) -> str:
        """Start tracking the object in ``box_xywh`` of ``frame``; returns the target id.

        A box partly outside the image is clipped to it. An existing ``target_id`` is
        re-initialised. Raises ValueError for a bad frame or box and TargetLimitError when
        ``max_targets`` targets are already tracked.
        """
        _check_frame(frame)
        box = checked_init_box(box_xywh, frame.shape[0], frame.shape[1])
        new = target_id is None or str(target_id) not in self._targets
        if new and len(self._targets) >= self.config.max_targets:  # before an automatic id is drawn
            named = "a new target" if target_id is None else f"target {str(target_id)!r}"
            raise TargetLimitError(
                f"cannot add {named}: {len(self._targets)} targets are tracked, "
                f"max_targets is {self.config.max_targets} (remove one or raise max_targets)")
        if target_id is None:
            target_id = next(i for i in map(str, self._auto_ids) if i not in self._targets)
        target_id = str(target_id)
        memory = TemplateMemory(self.cfg.num_template_slots, self._memory_cap())
        with torch.inference_mode():
            memory.add(self._embed_templates(frame, [box])[0][0])
        self._targets[target_id] = _Target(target_id, box, memory, list(box), frame.shape[:2])
        return target_id

    @_one_at_a_time
    def remove_target(self, target_id: str) -> None:
        """Stop tracking ``target_id``; KeyError naming the known ids if there is no such target."""
        if str(target_id) not in self._targets:
            raise KeyError(f"no target {target_id!r} (tracked: {sorted(self._targets)})")
        del self._targets[str(target_id)]

    @_one_at_a_time
    def reset(self) -> None:
        """Drop all targets (automatic ids go on counting: a new target is not taken for an old one)."""
        self._targets.clear()

    @_one_at_a_time
    def warm_up(self, frame_hw: tuple[int, int] = (240, 320)) -> None:
        """Throwaway targets added and tracked on a blank frame, one then two at once, so that the
        first real frame, and the first with two targets, are not slowed by lazy set-up (kernel
        selection per batch size, allocations; on CUDA the kernels load at first use); other
        targets are untouched (at max_targets there is no room: the model has run by then)."""
        room = self.config.max_targets - len(self._targets)
        height, width = frame_hw
        frame = np.full((height, width, 3), 127, np.uint8)
        added: list[str] = []
        try:
            for count in range(1, min(room, 2) + 1):
                target_id = "__warmup__"
                while target_id in self._targets:
                    target_id += "_"
                self.add_target(frame, (width / 2 - 20 * count, height / 2 - 20, 40, 40), target_id)
                added.append(target_id)
                self.track(frame, target_ids=added)
        finally:
            for target_id in added:
                self.remove_target(target_id)

    @_one_at_a_time
    def inspect_target(self, target_id: str) -> TargetSnapshot:
        """The state, slot picks and token keep vector the next forward will use for a target."""
        if str(target_id) not in self._targets:
            raise KeyError(f"no target {target_id!r} (tracked: {sorted(self._targets)})")
        target = self._targets[str(target_id)]
        picked = target.memory.select()
        keep = torch.cat([self._all_keep if t.keep is None else t.keep for t in picked])
        return TargetSnapshot(
            target_id=target.target_id,
            state=target.status,
            search_box_xywh=tuple(target.state_xywh),
            slot_indices=tuple(t.index for t in picked),
            template_keep=keep.cpu().numpy(),
            held_indices=tuple(target.memory.held_indices),
        )

    # -- tracking ------------------------------------------------------------------------------
    @_one_at_a_time
    def track(self, frame: np.ndarray,
              on_results: Callable[[list[TrackResult]], None] | None = None,
              target_ids: Iterable[str] | None = None) -> list[TrackResult]:
        """Track every target in ``frame`` with one batched forward; one result per target.

        ``target_ids`` limits this to those targets (unknown ids are ignored; a string is one id): a
        caller whose targets started on different frames tracks each only in frames after its own
        init frame.

        ``on_results`` gets the results as soon as the boxes are known, before this frame's new
        templates are cropped and embedded for the next frame (0.5-2 ms), so a caller can send
        them on sooner. Its time is not in `last_timings_ms`; an exception it raises propagates
        once the templates are stored.

        A frame of another size than a target was last seen in (a camera that switched its
        resolution) scales that target's boxes to it: the same field of view is assumed (after a
        single unconfident frame of another size, the search returns to the last confident box).
        The templates need nothing, being crops resized to the model's template size.
        """
        _check_frame(frame)
        if on_results is not None and not callable(on_results):
            raise TypeError(f"on_results must be callable (it gets the list of results), got {on_results!r}")
        targets = list(self._targets.values())
        if target_ids is not None:
            wanted = {target_ids} if isinstance(target_ids, str) else set(map(str, target_ids))
            targets = [target for target in targets if target.target_id in wanted]
        self.last_rescaled = {}
        for target in targets:
            if target.frame_hw != frame.shape[:2]:
                self.last_rescaled[target.target_id] = target.frame_hw
                _rescale(target, frame.shape[:2])
        if not targets:
            self.last_timings_ms = {"crop": 0.0, "model": 0.0, "decode": 0.0}
            if on_results is not None:
                on_results([])
            return []
        cfg = self.cfg
        with torch.inference_mode():
            t0 = time.perf_counter()
            patches, factors = [], []
            for target in targets:
                patch, geom = sample_target(frame, target.state_xywh, cfg.search_factor,
                                            cfg.search_size)
                patches.append(patch)
                factors.append(geom.resize_factor)
            search = normalize_patches(np.stack(patches), self.device)
            embeds, keeps = self._slot_inputs(targets)
            t1 = time.perf_counter()
            out = self.model.forward_embedded(embeds, keeps, search, drop_pruned=self.config.drop_pruned)
            self._sync()
            t2 = time.perf_counter()
            boxes = xyxy_to_cxcywh(decode_boxes(out.logits, cfg))
            scores = box_confidence(out.logits, cfg).tolist()
            boxes_px = crop_px_boxes(boxes, cfg.search_size, factors)
            height, width = frame.shape[:2]
            new_templates = []
            predictions = [clip_box(map_box_back(box_px, target.state_xywh, cfg.search_size, factor),
                                    height, width, margin=CLIP_MARGIN_PX)
                           for target, box_px, factor in zip(targets, boxes_px, factors)]
            taken = self._boxes_taken(targets, predictions, scores)
            for target, predicted, score, keep, is_taken in zip(targets, predictions, scores, out.prune_keep, taken):
                target.memory.record_newest_keep(keep.clone())
                if self._update_state(target, predicted, score, is_taken):
                    new_templates.append(target)
            # The memory's bookkeeping first, so the results count the new templates; their
            # embeddings (what only the next frame reads) are filled in after on_results.
            entries = [target.memory.add(None) for target in new_templates]
            results = [self._result(t, s) for t, s in zip(targets, scores)]
            t3 = time.perf_counter()
            crop_s, model_s, decode_s = t1 - t0, t2 - t1, t3 - t2
            try:
                if on_results is not None:
                    on_results(results)
            finally:
                # template crops count as cropping, their patch embedding as model time
                template_crop_s, template_model_s = self._fill_templates(frame, new_templates, entries)
                self.last_timings_ms = {"crop": 1e3 * (crop_s + template_crop_s),
                                        "model": 1e3 * (model_s + template_model_s),
                                        "decode": 1e3 * decode_s}
        return results

    def _boxes_taken(self, targets: list[_Target], predictions: list, scores: list[float]) -> list[bool]:
        """Per target: a LOST target whose box this frame lies on a box that a TRACKING target
        confidently holds (IoU >= RECOVERY_OVERLAP): the look-alike or the very object another id
        follows, not its own object coming back (see `TrackerConfig`)."""
        threshold = self.config.lost_threshold
        held = [box for target, box, score in zip(targets, predictions, scores)
                if target.status == TrackState.TRACKING and score >= threshold]
        taken = []
        for target, box, score in zip(targets, predictions, scores):
            recovering = target.status == TrackState.LOST and score >= threshold and held
            taken.append(bool(recovering) and float(iou_xywh([box] * len(held), held).max()) >= RECOVERY_OVERLAP)
        return taken

    def _update_state(self, target: _Target, predicted: list[float], score: float, taken: bool = False) -> bool:
        """Apply the confidence rules of `TrackerConfig`; True when this frame adds a template.
        ``taken``: the box is another target's (`_boxes_taken`), so the frame is not confident."""
        confident = score >= self.config.lost_threshold and not taken
        target.frames_below = 0 if confident else target.frames_below + 1
        target.frames_at_size += 1
        lost = target.frames_below >= self.config.lost_frames
        target.status = TrackState.LOST if lost else TrackState.TRACKING
        if confident:
            target.last_confident_xywh = predicted
        if self.config.memory == "official":  # follow every prediction, a template every frame
            target.state_xywh = predicted
            return True
        # LOST: search around the last confident box, except while the box is another target's:
        # then follow it, lest the two move away together and leave the search behind
        target.state_xywh = list(target.last_confident_xywh) if lost and not taken else predicted
        return confident

    def _result(self, target: _Target, score: float) -> TrackResult:
        lost = target.status == TrackState.LOST and self.config.memory != "official"
        return TrackResult(
            target_id=target.target_id,
            box_xywh=tuple(target.last_confident_xywh if lost else target.state_xywh),  # LOST: as last seen well
            score=float(score),
            state=target.status,
            templates_held=len(target.memory),
        )

    # -- helpers -------------------------------------------------------------------------------
    def _slot_inputs(self, targets: list[_Target]) -> tuple[torch.Tensor, torch.Tensor]:
        """Template embeddings (B,S,T,D) and keep masks (B,S,T) of each target's slots."""
        embeds, keeps = [], []
        cap = self._memory_cap()
        for target in targets:
            if target.memory.cap != cap:  # the config was changed
                target.memory.set_cap(cap)
            picked = target.memory.select()
            embeds.append(torch.stack([t.embedding for t in picked]))
            keeps.append(torch.stack([self._all_keep if t.keep is None else t.keep for t in picked]))
        return torch.stack(embeds), torch.stack(keeps)

    def _memory_cap(self) -> int | None:
        return self.config.template_memory_cap if self.config.memory == "bounded" else None

    def _fill_templates(self, frame: np.ndarray, targets: list[_Target], entries: list) -> tuple[float, float]:
        """Embed the templates just added for ``targets`` (crop and embedding seconds); if that
        fails, the adds are undone, so no target is left with a template it cannot use."""
        if not entries:
            return 0.0, 0.0
        started = time.perf_counter()
        try:
            embeddings, crop_s = self._embed_templates(frame, [t.state_xywh for t in targets])
        except BaseException:
            for target in targets:
                target.memory.discard_newest()
            raise
        for target, entry, embedding in zip(targets, entries, embeddings):
            entry.embedding = embedding
            target.memory.confirm_newest()
        self._sync()  # else a GPU's embedding time would land in the next frame's crop
        return crop_s, time.perf_counter() - started - crop_s

    def _embed_templates(self, frame: np.ndarray, boxes: list[list[float]]):
        """Crop a template around each box; one (T,D) patch embedding per box, and the crop time."""
        t0 = time.perf_counter()
        patches = [sample_target(frame, box, self.cfg.template_factor, self.cfg.template_size)[0]
                   for box in boxes]
        z = normalize_patches(np.stack(patches), self.device)
        crop_s = time.perf_counter() - t0
        # one clone per row: a stored template must not keep its batch-mates' storage alive
        return [row.clone() for row in self.model.embed_template(z)], crop_s

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def _rescale(target: _Target, frame_hw: tuple[int, int]) -> None:
    """Scale ``target``'s boxes from the frame size it was seen in to ``frame_hw``.

    When that size lasted one frame and its box was unconfident (a glitched frame: 2x2, 2x3000),
    the search goes back to the last confident box instead: that box, scaled back up, would take
    the search region anywhere. A camera that switched its resolution keeps the followed box."""
    scale_y, scale_x = (new / old for new, old in zip(frame_hw, target.frame_hw))

    def scaled(box: list[float]) -> list[float]:  # a new list: the two boxes may be one object
        return [box[0] * scale_x, box[1] * scale_y, box[2] * scale_x, box[3] * scale_y]

    glitch = target.frames_at_size == 1 and target.frames_below > 0
    target.last_confident_xywh = scaled(target.last_confident_xywh)
    target.state_xywh = list(target.last_confident_xywh) if glitch else scaled(target.state_xywh)
    target.frame_hw = frame_hw
    target.frames_at_size = 0


def _check_frame(frame) -> None:
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be an HxWx3 uint8 RGB numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be an HxWx3 uint8 RGB array, got shape {frame.shape} "
                         f"dtype {frame.dtype}{_frame_hint(frame)}")
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        raise ValueError(f"frame is too small to track in: {frame.shape[1]}x{frame.shape[0]} px")


def _frame_hint(frame: np.ndarray) -> str:
    """How to make such a frame an HxWx3 uint8 RGB one (cv2 names), when the fix is plain."""
    hints = []
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        hints.append("grey: cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)")
    elif frame.ndim == 3 and frame.shape[2] == 4:
        hints.append("RGBA: frame[..., :3] (BGRA: cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB))")
    if frame.dtype.kind == "f":
        hints.append("floats in 0..1: (frame * 255).round().astype(np.uint8)")
    elif frame.dtype == np.uint16:
        hints.append("16-bit: (frame >> 8).astype(np.uint8)")
    return f" ({'; '.join(hints)})" if hints else ""


def checked_init_box(box_xywh: Iterable[float], height: int, width: int) -> list[float]:
    """The init box as floats, clipped to the image; ValueError if it is unusable."""
    try:
        values = [float(v) for v in box_xywh]
    except (TypeError, ValueError):
        raise ValueError(f"box must be 4 numbers (x, y, w, h) in pixels, got {box_xywh!r}") from None
    if len(values) != 4:
        raise ValueError(f"box must be 4 numbers (x, y, w, h) in pixels, got {box_xywh!r}")
    x, y, w, h = values
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"box has a non-finite value: {tuple(values)}")
    if w <= 0 or h <= 0:
        raise ValueError(f"box width and height must be > 0, got w={w}, h={h}")
    if w < 1.0 or h < 1.0:  # a template cropped from under a pixel is noise
        raise ValueError(f"box size {w:g}x{h:g} is under a pixel: boxes are in pixels (normalized coordinates?)")
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + w, float(width)), min(y + h, float(height))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {tuple(values)} lies outside the {width}x{height} image")
    if x1 - x0 < 1.0 or y1 - y0 < 1.0:
        raise ValueError(f"box {tuple(values)} has under a pixel inside the {width}x{height} image")
    return [x0, y0, x1 - x0, y1 - y0]
