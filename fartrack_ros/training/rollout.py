"""Stage 2: sequence-level training on the model's own tracking, template memory included.

A step runs the real `Tracker` (the inference code: search crops at the previous prediction,
templates cropped at the model's own predicted boxes, the schedule, the model's own prune masks,
the confidence gate) over short clips of training sequences, records for every frame what the
forward saw (search box, slot picks, token keep vector) and then replays those frames with
gradients against the ground truth. The model thus learns to recover from its own drift and
to work with the templates and masks it produces itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..evaluation.metrics import iou_xywh
from ..model.config import ModelConfig
from ..tracker import Tracker, TrackerConfig
from ..tracker.cropping import normalize_patches, sample_target
from .sampling import STREAM_ROLLOUT, SequenceSource, box_in_search_crop, usable

if TYPE_CHECKING:
    from ..data.sequence import TrackingSequence
    from ..model.network import FARTrack


@dataclass(frozen=True)
class RolloutConfig:
    clips_per_step: int = 2
    clip_length: int = 24
    samples_per_clip: int = 8  # frames of a clip trained on (all if fewer are usable)


@dataclass
class FrameRecord:
    """What the tracker's forward on one frame used, and the ground truth there."""

    frame_index: int
    search_box_xywh: tuple
    slot_templates: list  # (frame_index, box_xywh) the template of each slot was cropped from
    template_keep: np.ndarray  # (S*T,) bool
    gt_xywh: np.ndarray
    tracked_iou: float  # IoU of the tracker's output on this frame with the ground truth


def track_clip(model: FARTrack, seq: TrackingSequence, start: int, length: int,
               tracker_config: TrackerConfig = TrackerConfig()
               ) -> tuple[list[FrameRecord], dict[int, np.ndarray]]:
    """Run the tracker from the ground truth of frame ``start``; one `FrameRecord` per later frame
    where the target is visible, and the frames used (index -> image)."""
    frames = {start: seq.frame(start)}
    tracker = Tracker(model, tracker_config)
    tracker.add_target(frames[start], seq.boxes[start], "target")
    # logical index -> crop source; the init template is cropped at the box clipped to the image
    template_sources = [(start, tuple(tracker.inspect_target("target").search_box_xywh))]
    records = []
    for f in range(start + 1, min(start + length, len(seq))):
        snapshot = tracker.inspect_target("target")
        frames[f] = seq.frame(f)
        result = tracker.track(frames[f])[0]
        if usable(seq, f):
            records.append(FrameRecord(
                frame_index=f,
                search_box_xywh=snapshot.search_box_xywh,
                slot_templates=[template_sources[i] for i in snapshot.slot_indices],
                template_keep=snapshot.template_keep.copy(),
                gt_xywh=seq.boxes[f].copy(),
                tracked_iou=float(iou_xywh([result.box_xywh], seq.boxes[f:f + 1])[0]),
            ))
        num_added = max(tracker.inspect_target("target").held_indices) + 1
        if num_added > len(template_sources):  # this frame stored a template at the new state
            template_sources.append((f, tuple(result.box_xywh)))
    return records, frames


def replay_batch(records: list[FrameRecord], frames: dict, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """The recorded forwards as a training batch (the same crops the tracker took)."""
    templates, searches, keeps, targets = [], [], [], []
    for r in records:
        templates.append(np.stack([
            sample_target(frames[i], box, cfg.template_factor, cfg.template_size)[0] for i, box in r.slot_templates
        ]))
        searches.append(sample_target(frames[r.frame_index], r.search_box_xywh, cfg.search_factor, cfg.search_size)[0])
        keeps.append(r.template_keep.reshape(cfg.num_template_slots, cfg.template_tokens))
        targets.append(box_in_search_crop(r.gt_xywh, r.search_box_xywh, cfg))
    return {
        "templates": normalize_patches(np.stack(templates)),
        "template_keep": torch.from_numpy(np.stack(keeps)),
        "search": normalize_patches(np.stack(searches)),
        "target_xyxy": torch.from_numpy(np.stack(targets)).float(),
    }


def rollout_batch(model: FARTrack, source: SequenceSource, seed: int, iteration: int,
                  config: RolloutConfig = RolloutConfig()) -> tuple[dict[str, torch.Tensor], float]:
    """The stage-2 batch of ``iteration`` (clips drawn with (seed, iteration)) and the mean IoU the
    tracker reached on the recorded frames. Leaves the model in train mode."""
    rng = np.random.default_rng([seed, STREAM_ROLLOUT, iteration])
    cfg = model.cfg
    chosen, ious, draws = [], [], 0
    all_frames = {}
    while len(chosen) < config.clips_per_step * config.samples_per_clip and draws < 50 * config.clips_per_step:
        draws += 1
        seq = source(int(rng.integers(1 << 30)))
        starts = [i for i in range(max(1, len(seq) - config.clip_length)) if usable(seq, i)]
        if not starts:
            continue
        start = starts[int(rng.integers(len(starts)))]
        records, frames = track_clip(model, seq, start, config.clip_length)
        if not records:
            continue
        pick = rng.choice(len(records), size=min(config.samples_per_clip, len(records)), replace=False)
        key = len(all_frames)
        for i in sorted(pick):
            chosen.append((key, records[int(i)]))
        ious.extend(r.tracked_iou for r in records)
        all_frames[key] = frames
    model.train()
    if not chosen:
        raise RuntimeError("stage 2 found no clip with a visible target to train on")
    batches = [replay_batch([r], all_frames[k], cfg) for k, r in chosen]
    batch = {name: torch.cat([b[name] for b in batches]) for name in batches[0]}
    return batch, float(np.mean(ious)) if ious else float("nan")

