"""Stage-1 training samples: five templates and a search crop from one sequence, with the target box.

Every batch is a pure function of ``(seed, step)``: the sequences in play at a step and every
random draw come from generators seeded with those numbers, so a run resumed at step ``k``
sees exactly the batches an uninterrupted run sees, and no sampler state has to be saved.

Sequences come from a `SequenceSource` (generated from seeds in the training range, or read
from a GOT-10k/LaSOT folder). A rolling pool keeps a few of them in play: sequence ``k`` joins
at step ``k * stride`` and leaves ``lifetime`` steps later. Of each sequence only a fixed random
subset of frames (always frame 0) is ever used, so each rendered frame serves many samples.

One sample, as the tracker sees it at inference:
- the search frame is a frame where the target is visible;
- slot 0 holds the first frame; the other slots hold earlier frames where the target is
  visible, picked with the tracker's own schedule (`schedule_slots`) over the frames
  available before the search frame, newest last;
- templates are cropped around slightly jittered ground-truth boxes (factor
  ``template_factor``), the search region around a box jittered in scale and centre as in
  OSTrack (factor ``search_factor``), so the target is not always centred;
- the older slots get random prune masks (``num_pruned`` tokens each) so the model sees
  sparsified templates; the newest slot is never pruned, as at inference.

The crops are the official ones (`tracker.cropping.sample_target`). A share of the sequences may
be seen in grey, as from a mono camera (`SequenceSource.with_grey`, `TrainConfig.grey_fraction`);
generated ones are then drawn with objects that differ in brightness too, as a mono camera needs
(`TrainConfig.grey_luma_contrast`); a folder's sequences are only turned grey (`fartrack-make-data
--luma-contrast` writes scenes drawn for a mono camera).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import numpy as np
import torch

from ..data.sequence import TrackingSequence
from ..model.config import ModelConfig
from ..tracker.cropping import crop_geometry, normalize_patches, sample_target
from ..tracker.template_memory import schedule_slots

if TYPE_CHECKING:
    from ..data.synthetic import SyntheticConfig

# Streams of the per-run generators: np.random.default_rng([seed, STREAM, index]).
STREAM_SEQUENCE = 2
STREAM_BATCH = 1
STREAM_ROLLOUT = 3
STREAM_GREY = 4
MAX_SEARCH_DISTANCE = 1000  # how far from the pool a step looks for a usable sequence when none in it is


@dataclass(frozen=True)
class SamplerConfig:
    """Jitter, pruning and pool sizes of stage 1 (defaults follow OSTrack's search jitter)."""

    search_scale_jitter: float = 0.25
    search_center_jitter: float = 2.0
    template_scale_jitter: float = 0.1
    template_center_jitter: float = 0.3
    prune_probability: float = 0.8  # chance that an older slot carries a prune mask
    frames_per_sequence: int = 20  # frames of a sequence that are ever rendered
    pool_stride: int = 2  # a new sequence joins the pool every this many steps
    pool_lifetime: int = 32  # ... and stays this many steps


class SequenceSource:
    """Sequence ``k`` of a run: a generated training sequence or one of a fixed list, by index;
    a ``grey_fraction`` of them seen by a grey camera (sequence ``k`` grey or not by a draw from
    (grey seed, k), so a run stays a function of its seed). With ``grey_luma_contrast`` a grey
    generated sequence is its seed's scene drawn for a mono camera (`SyntheticConfig.luma_contrast`);
    a fixed list's sequences are only turned grey."""

    def __init__(self, get: Callable[[int, bool, bool], TrackingSequence], description: str,
                 grey_fraction: float = 0.0, grey_seed: int = 0, grey_luma_contrast: bool = True) -> None:
        if not 0.0 <= grey_fraction <= 1.0:
            raise ValueError(f"grey fraction must lie in [0, 1], got {grey_fraction}")
        self._get = get  # (index, grey, grey_luma_contrast) -> sequence
        self._grey_fraction = grey_fraction
        self._grey_seed = grey_seed
        self._grey_luma_contrast = grey_luma_contrast
        self._base_description = description
        self.description = description + (f", {grey_fraction:.0%} of them grey" if grey_fraction else "")

    def __call__(self, index: int) -> TrackingSequence:
        grey = (self._grey_fraction > 0.0
                and np.random.default_rng([self._grey_seed, STREAM_GREY, index]).random() < self._grey_fraction)
        return self._get(index, grey, self._grey_luma_contrast)

    @classmethod
    def synthetic(cls, seed: int, config: SyntheticConfig | None = None) -> "SequenceSource":
        """Generated sequences; the k-th uses a seed drawn from the training range with (seed, k)."""
        from ..data.synthetic import TRAIN_SEED_RANGE, SyntheticConfig, generate_sequence

        config = config or SyntheticConfig()
        mono = replace(config, luma_contrast=True)

        def get(index: int, grey: bool, luma_contrast: bool) -> TrackingSequence:
            rng = np.random.default_rng([seed, STREAM_SEQUENCE, index])
            seq_seed = int(rng.integers(TRAIN_SEED_RANGE.start, TRAIN_SEED_RANGE.stop))
            sequence = generate_sequence(seq_seed, mono if grey and luma_contrast else config, lazy=True)
            return sequence.as_grey() if grey else sequence

        return cls(get, f"synthetic (training seeds {TRAIN_SEED_RANGE.start}..{TRAIN_SEED_RANGE.stop - 1})")

    @classmethod
    def from_list(cls, sequences: Sequence[TrackingSequence], seed: int, description: str) -> "SequenceSource":
        """A fixed list of sequences, visited in a seeded random order, epoch after epoch."""
        if not sequences:
            raise ValueError(f"no usable sequences in {description}")

        def get(index: int, grey: bool, luma_contrast: bool) -> TrackingSequence:
            epoch, pos = divmod(index, len(sequences))
            order = np.random.default_rng([seed, STREAM_SEQUENCE, epoch]).permutation(len(sequences))
            sequence = sequences[int(order[pos])]
            return sequence.as_grey() if grey else sequence

        return cls(get, description)

    def with_grey(self, fraction: float, seed: int, luma_contrast: bool = True) -> "SequenceSource":
        """This source with a ``fraction`` of its sequences seen by a grey camera (0: none)."""
        return SequenceSource(self._get, self._base_description, fraction, seed, luma_contrast)


def jitter_box(box_xywh: Sequence[float] | np.ndarray, scale_jitter: float, center_jitter: float,
               rng: np.random.Generator) -> list[float]:
    """OSTrack's box jitter: size times exp(N(0, scale_jitter)), centre moved by up to
    ``center_jitter * sqrt(w*h) / 2`` in x and y."""
    x, y, w, h = (float(v) for v in box_xywh)
    size = np.array([w, h]) * np.exp(rng.normal(size=2) * scale_jitter)
    max_offset = float(np.sqrt(size.prod())) * center_jitter
    cx, cy = np.array([x + w / 2, y + h / 2]) + max_offset * (rng.random(2) - 0.5)
    return [float(cx - size[0] / 2), float(cy - size[1] / 2), float(size[0]), float(size[1])]


def box_in_search_crop(box_xywh: Sequence[float] | np.ndarray, search_box_xywh: Sequence[float] | np.ndarray,
                       cfg: ModelConfig) -> np.ndarray:
    """Target box in crop-normalised x0,y0,x1,y1 of the search crop centred on ``search_box_xywh``.

    The origin is the unrounded crop corner (previous centre minus half the side), which is what
    the tracker maps predictions back with (`map_box_back`).
    """
    geom = crop_geometry(search_box_xywh, cfg.search_factor, cfg.search_size)
    sx, sy, sw, sh = (float(v) for v in search_box_xywh)
    origin_x = sx + 0.5 * sw - 0.5 * geom.crop_sz
    origin_y = sy + 0.5 * sh - 0.5 * geom.crop_sz
    x, y, w, h = (float(v) for v in box_xywh)
    return np.array([x - origin_x, y - origin_y, x + w - origin_x, y + h - origin_y]) / geom.crop_sz


def usable(seq: TrackingSequence, index: int) -> bool:
    """Whether the target is visible in frame ``index`` with a real box."""
    box = seq.boxes[index]
    return not bool(seq.absent[index]) and box[2] > 1 and box[3] > 1


def trainable(seq: TrackingSequence) -> bool:
    """Whether a sequence can give a sample: its target visible in frame 0 and in a later frame."""
    return len(seq) > 1 and usable(seq, 0) and any(usable(seq, k) for k in range(1, len(seq)))


class _PoolEntry:
    """One sequence in the pool, with the subset of frames it serves and a cache of those frames."""

    def __init__(self, seq: TrackingSequence, frame_ids: list[int]) -> None:
        self.seq = seq
        self.frame_ids = frame_ids
        self.search_ids = [i for i in frame_ids[1:] if usable(seq, i)]
        self._frames: dict[int, np.ndarray] = {}

    def frame(self, index: int) -> np.ndarray:
        if index not in self._frames:
            self._frames[index] = self.seq.frame(index)
        return self._frames[index]


class PairSampler:
    """Builds the stage-1 batch of a step (see the module docstring)."""

    def __init__(self, source: SequenceSource, cfg: ModelConfig, seed: int,
                 config: SamplerConfig = SamplerConfig()) -> None:
        self.source = source
        self.cfg = cfg
        self.seed = seed
        self.config = config
        self._pool: dict[int, Optional[_PoolEntry]] = {}

    def _active(self, step: int) -> list[_PoolEntry]:
        c = self.config
        last = step // c.pool_stride
        first = max(0, (step - c.pool_lifetime) // c.pool_stride + 1)
        for k in [k for k in self._pool if not first <= k <= last]:
            del self._pool[k]
        for k in range(first, last + 1):
            if k not in self._pool:
                self._pool[k] = self._entry(k)
        entries = [e for e in self._pool.values() if e is not None]
        if not entries:  # every sequence in play is unusable: the nearest usable one, back or ahead
            for distance in range(1, MAX_SEARCH_DISTANCE + 1):
                for k in (first - distance, last + distance):
                    entry = self._entry(k) if k >= 0 else None
                    if entry is not None:
                        return [entry]
            raise RuntimeError(f"no sequence with a visible target in frame 0 and a later frame among the "
                               f"{MAX_SEARCH_DISTANCE} nearest to step {step}'s in the training source")
        return entries

    def _entry(self, index: int) -> Optional[_PoolEntry]:
        seq = self.source(index)
        n = len(seq)
        if n < 2 or not usable(seq, 0):
            return None
        rng = np.random.default_rng([self.seed, STREAM_SEQUENCE, index, 1])
        count = min(n - 1, self.config.frames_per_sequence - 1)
        others = np.sort(rng.choice(np.arange(1, n), size=count, replace=False))
        entry = _PoolEntry(seq, [0, *map(int, others)])
        return entry if entry.search_ids else None

    def batch(self, step: int, batch_size: int) -> dict[str, torch.Tensor]:
        """The batch of ``step``: templates (B,S,3,t,t), template_keep (B,S,T) bool, search (B,3,s,s),
        target_xyxy (B,4) crop-normalised."""
        entries = self._active(step)
        rng = np.random.default_rng([self.seed, STREAM_BATCH, step])
        samples = [self._sample(entries[int(rng.integers(len(entries)))], rng) for _ in range(batch_size)]
        templates = np.stack([s[0] for s in samples])
        search = np.stack([s[1] for s in samples])
        return {
            "templates": normalize_patches(templates),
            "template_keep": torch.from_numpy(np.stack([s[2] for s in samples])),
            "search": normalize_patches(search),
            "target_xyxy": torch.from_numpy(np.stack([s[3] for s in samples])).float(),
        }

    def _sample(self, entry: _PoolEntry, rng: np.random.Generator):
        cfg, c = self.cfg, self.config
        seq = entry.seq
        search_id = entry.search_ids[int(rng.integers(len(entry.search_ids)))]
        before = [i for i in entry.frame_ids if i < search_id and usable(seq, i)]
        template_ids = [before[i] for i in schedule_slots(len(before), cfg.num_template_slots)]
        templates = []
        for i in template_ids:
            box = jitter_box(seq.boxes[i], c.template_scale_jitter, c.template_center_jitter, rng)
            templates.append(sample_target(entry.frame(i), box, cfg.template_factor, cfg.template_size)[0])
        gt = seq.boxes[search_id]
        search_box = jitter_box(gt, c.search_scale_jitter, c.search_center_jitter, rng)
        search = sample_target(entry.frame(search_id), search_box, cfg.search_factor, cfg.search_size)[0]
        keep = random_prune_keep(cfg, rng, c.prune_probability)
        return np.stack(templates), search, keep, box_in_search_crop(gt, search_box, cfg)


def random_prune_keep(cfg: ModelConfig, rng: np.random.Generator, probability: float) -> np.ndarray:
    """(S, T) keep masks: each older slot, with ``probability``, loses ``num_pruned`` random tokens."""
    keep = np.ones((cfg.num_template_slots, cfg.template_tokens), dtype=bool)
    for slot in range(cfg.num_template_slots - 1):
        if cfg.num_pruned and rng.random() < probability:
            keep[slot, rng.choice(cfg.template_tokens, size=cfg.num_pruned, replace=False)] = False
    return keep
