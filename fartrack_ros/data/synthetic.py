"""Deterministic synthetic tracking sequences (the project's training and held-out sets).

A sequence is a pure function of ``(seed, SyntheticConfig)``: every random draw comes from one
``numpy.random.default_rng(seed)``, in a fixed order, so the same seed gives bit-identical frames,
boxes and flags (on the same numpy/OpenCV versions).

What a sequence holds: a textured background (fractal noise, stripes, spots, tiles, marble through
colour ramps, with static clutter) seen by a slowly panning camera; one textured target (ellipse,
rounded rectangle or polygon) whose size and aspect ratio drift; look-alike distractors (the
target's texture family and shape, a different pattern and a turned hue) that cross its path;
occluders passing in front (partial and full occlusion); bursts of fast motion with motion blur
along the velocity; a target that leaves the frame and comes back; global gain/gamma drift,
light switches and moving shadows; sensor noise. A difficulty in [0, 1], drawn from the seed
unless the config fixes it, scales how much of each a sequence gets, so a set mixes easy and hard.

Seeds: training uses ``TRAIN_SEED_RANGE`` (0 .. 999,999); held-out evaluation sets use seeds from
``EVAL_SEED_BASE`` (1,000,000) up, which training never sees.

Ground truth: the box is the target's full extent clipped to the image (for a target half out of
view, the in-image part of its bounding rectangle, which can be looser than its visible pixels);
under occlusion it stays the full extent, as annotators draw it. Where less than
``ABSENT_VISIBLE_RATIO`` of the target can be seen the frame is absent: ``out_of_view`` when the
image border hides it, ``full_occlusion`` when something in front does; a fully out-of-view frame
has the box (0, 0, 0, 0).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import cv2
import numpy as np

from fartrack_ros.data.layers import box_region, composite_layer, pick_level, warp_to_region
from fartrack_ros.data.scene import plan_scene
from fartrack_ros.data.sequence import TrackingSequence

TRAIN_SEED_RANGE = range(0, 1_000_000)
EVAL_SEED_BASE = 1_000_000
ABSENT_VISIBLE_RATIO = 0.05
LUMA_STREAM = 1  # brightness draws come from default_rng([seed, LUMA_STREAM])


@dataclass(frozen=True)
class SyntheticConfig:
    """Frame size, length range and (optionally) a fixed difficulty for generated sequences."""

    width: int = 320
    height: int = 240
    min_length: int = 100
    max_length: int = 150
    difficulty: float | None = None  # None: drawn per sequence from the seed, uniform in [0, 1]
    texture_size: int = 128
    noise_sigma: float = 2.0
    # objects differ in brightness too, as they must for a mono camera; off, only hue, pattern
    # and shape set the target apart (the held-out colour set's scenes)
    luma_contrast: bool = False

    def __post_init__(self) -> None:
        if self.width < 64 or self.height < 64:
            raise ValueError(f"frame size {self.width}x{self.height} is too small (at least 64x64)")
        if not 2 <= self.min_length <= self.max_length:
            raise ValueError(f"length range {self.min_length}..{self.max_length} is invalid "
                             "(need 2 <= min_length <= max_length)")
        if self.difficulty is not None and not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(f"difficulty {self.difficulty} is outside [0, 1]")


@dataclass
class Layer:
    """One object in the scene: its appearance, its box per frame and its role."""

    role: str  # "target", "distractor", "occluder"
    pyramid: list[np.ndarray]  # RGBA uint8 textures, largest first
    boxes: np.ndarray  # (N, 4) xywh, full extent (may lie partly or wholly outside the frame)
    morph_pyramid: list[np.ndarray] | None = None  # a second appearance the first blends into
    morph: np.ndarray | None = None  # (N,) blend weight of the second appearance
    alpha_pyramid: list[np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.alpha_pyramid = [np.ascontiguousarray(level[..., 3]) for level in self.pyramid]

    def texture(self, index: int) -> np.ndarray:
        """RGBA texture for frame ``index`` at the pyramid level that fits the box."""
        _, _, w, h = self.boxes[index]
        level = pick_level(self.pyramid, w, h)
        if self.morph is None or self.morph[index] <= 0:
            return level
        other = pick_level(self.morph_pyramid, w, h)
        return cv2.addWeighted(level, 1.0 - float(self.morph[index]), other, float(self.morph[index]), 0.0)

    def alpha(self, index: int) -> np.ndarray:
        """Alpha (uint8 shape mask) for frame ``index`` at the level that fits the box, to measure occlusion;
        both appearances share one mask, so the morph does not enter."""
        _, _, w, h = self.boxes[index]
        return pick_level(self.alpha_pyramid, w, h)


@dataclass
class SyntheticPlan:
    """Everything drawn from the seed; ``render(i)`` turns it into frame ``i`` without randomness."""

    seed: int
    config: SyntheticConfig
    difficulty: float
    background: np.ndarray  # canvas larger than the frame, uint8 RGB
    camera: np.ndarray  # (N, 2) integer top-left of the view in the canvas
    layers: list[Layer]  # bottom to top
    target_index: int
    gain: np.ndarray  # (N,) global illumination gain
    gamma: np.ndarray  # (N,) global gamma
    shadow: np.ndarray | None  # canvas of per-pixel gains, uint8 (128 = 1.0), 3 channels
    shadow_offsets: np.ndarray  # (N, 2)
    noise_up: np.ndarray  # uint8 noise tiles (added, subtracted)
    noise_down: np.ndarray
    noise_offsets: np.ndarray  # (N, 2)
    blur_exposure: float  # fraction of a frame interval the shutter is open
    boxes: np.ndarray = field(init=False)
    visible_ratio: np.ndarray = field(init=False)
    in_image_ratio: np.ndarray = field(init=False)
    out_of_view: np.ndarray = field(init=False)
    full_occlusion: np.ndarray = field(init=False)
    absent: np.ndarray = field(init=False)
    attributes: dict = field(init=False)

    def __post_init__(self) -> None:
        self._measure_target()

    @property
    def length(self) -> int:
        """Frames in the sequence."""
        return len(self.camera)

    @property
    def target(self) -> Layer:
        """The tracked object's layer."""
        return self.layers[self.target_index]

    def _measure_target(self) -> None:
        width, height = self.config.width, self.config.height
        n = self.length
        self.visible_ratio = np.ones(n)
        self.in_image_ratio = np.ones(n)
        for index in range(n):
            self.in_image_ratio[index], self.visible_ratio[index] = self._visibility(index)
        full = self.target.boxes
        x0 = np.clip(full[:, 0], 0, width)
        y0 = np.clip(full[:, 1], 0, height)
        x1 = np.clip(full[:, 0] + full[:, 2], 0, width)
        y1 = np.clip(full[:, 1] + full[:, 3], 0, height)
        self.boxes = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
        self.out_of_view = self.in_image_ratio < ABSENT_VISIBLE_RATIO
        self.full_occlusion = ~self.out_of_view & (self.visible_ratio < ABSENT_VISIBLE_RATIO)
        self.absent = self.out_of_view | self.full_occlusion
        self.boxes[self.out_of_view | (self.boxes[:, 2] <= 0) | (self.boxes[:, 3] <= 0)] = 0.0
        self.attributes = self._frame_attributes()

    def _visibility(self, index: int) -> tuple[float, float]:
        """(fraction inside the image, fraction visible) of the target's shape in frame ``index``."""
        width, height = self.config.width, self.config.height
        box = self.target.boxes[index]
        region = box_region(box, 1)
        front = [layer for layer in self.layers[self.target_index + 1:]
                 if _overlaps(layer.boxes[index], region)]
        inside = _inside_part(region, width, height)
        if not front and inside == (0, region.width, 0, region.height):
            return 1.0, 1.0
        alpha = warp_to_region(self.target.alpha(index), box, region.x0, region.y0,
                               region.width, region.height).astype(np.float32)
        total = float(alpha.sum())
        if total <= 0:
            return 0.0, 0.0
        visible = np.zeros_like(alpha)
        cx0, cx1, cy0, cy1 = inside
        visible[cy0:cy1, cx0:cx1] = alpha[cy0:cy1, cx0:cx1]
        in_image = float(visible.sum()) / total
        for layer in front:
            cover = warp_to_region(layer.alpha(index), layer.boxes[index], region.x0, region.y0,
                                   region.width, region.height).astype(np.float32)
            visible *= 1.0 - cover * (1.0 / 255.0)
        return in_image, float(visible.sum()) / total

    def _frame_attributes(self) -> dict:
        """Per-frame hardness flags of the target (arrays of length N) and the difficulty.

        speed_ratio: centre displacement from the previous frame / sqrt(w*h); fast_motion: > 0.5;
        motion_blur: blur streak >= 3 px; distractor_near: a look-alike's centre within 1.5 sizes;
        partial_occlusion: 5-95% hidden by something in front; illumination_change: gain and
        gamma together moved by > 0.3 in log from frame 0; scale_change / aspect_change: size /
        aspect ratio more than 2x away from frame 0 (LaSOT's SV and ARC).
        """
        target = self.target.boxes
        size = np.sqrt(np.maximum(target[:, 2] * target[:, 3], 1e-6))
        centre = target[:, :2] + target[:, 2:] / 2
        step = np.r_[0.0, np.linalg.norm(np.diff(centre, axis=0), axis=1)]
        aspect = target[:, 2] / np.maximum(target[:, 3], 1e-6)
        near = np.zeros(self.length, bool)
        for layer in self.layers:
            if layer.role != "distractor":
                continue
            other = layer.boxes[:, :2] + layer.boxes[:, 2:] / 2
            near |= np.linalg.norm(other - centre, axis=1) < 1.5 * size
        near &= ~self.absent
        light = np.abs(np.log(self.gain / self.gain[0])) + np.abs(np.log(self.gamma / self.gamma[0]))
        return {
            "difficulty": self.difficulty,
            "speed_ratio": step / size,
            "fast_motion": step > 0.5 * size,
            "motion_blur": step * self.blur_exposure >= 3.0,
            "distractor_near": near,
            "partial_occlusion": (self.visible_ratio < 0.95) & (self.in_image_ratio > 0.99) & ~self.absent,
            "illumination_change": light > 0.3,
            "scale_change": np.abs(np.log(size / size[0])) > math.log(2.0),
            "aspect_change": np.abs(np.log(aspect / aspect[0])) > math.log(2.0),
        }

    def render(self, index: int) -> np.ndarray:
        """Frame ``index`` as HxWx3 uint8 RGB."""
        width, height = self.config.width, self.config.height
        cx, cy = self.camera[index]
        frame = self.background[cy:cy + height, cx:cx + width].copy()
        for layer in self.layers:
            box = layer.boxes[index]
            if index > 0:
                velocity = (box[:2] + box[2:] / 2) - (layer.boxes[index - 1, :2] + layer.boxes[index - 1, 2:] / 2)
            else:
                velocity = np.zeros(2)
            speed = float(np.hypot(*velocity))
            composite_layer(frame, layer.texture(index), box, speed * self.blur_exposure,
                            math.atan2(velocity[1], velocity[0]))
        if self.shadow is not None:
            sx, sy = self.shadow_offsets[index]
            frame = cv2.multiply(frame, self.shadow[sy:sy + height, sx:sx + width], scale=1.0 / 128.0)
        levels = np.arange(256, dtype=np.float64) / 255.0
        lut = np.clip(255.0 * self.gain[index] * levels ** self.gamma[index] + 0.5, 0, 255).astype(np.uint8)
        frame = cv2.LUT(frame, lut)
        nx, ny = self.noise_offsets[index]
        frame = cv2.add(frame, self.noise_up[ny:ny + height, nx:nx + width])
        frame = cv2.subtract(frame, self.noise_down[ny:ny + height, nx:nx + width])
        return frame


def _inside_part(region, width: int, height: int) -> tuple[int, int, int, int]:
    """The part of ``region`` inside the frame, in region coordinates (x0, x1, y0, y1)."""
    x0 = min(max(0, -region.x0), region.width)
    y0 = min(max(0, -region.y0), region.height)
    x1 = max(min(region.width, width - region.x0), x0)
    y1 = max(min(region.height, height - region.y0), y0)
    return x0, x1, y0, y1


def _overlaps(box_xywh, region) -> bool:
    x, y, w, h = box_xywh
    return x < region.x1 and x + w > region.x0 and y < region.y1 and y + h > region.y0


class LazyFrames:
    """A list-like view that renders frames of a plan on demand (no frame is stored)."""

    def __init__(self, plan: SyntheticPlan) -> None:
        self._plan = plan

    def __len__(self) -> int:
        return self._plan.length

    def __getitem__(self, index: int) -> np.ndarray:
        if not -len(self) <= index < len(self):
            raise IndexError(f"frame {index} out of range (sequence has {len(self)} frames)")
        return self._plan.render(index % len(self))


def plan_sequence(seed: int, config: SyntheticConfig = SyntheticConfig()) -> SyntheticPlan:
    """Draw everything a sequence needs from ``seed`` (cheap: renders no frame)."""
    rng = np.random.default_rng(seed)
    length = int(rng.integers(config.min_length, config.max_length + 1))
    difficulty = float(rng.uniform(0.0, 1.0))
    if config.difficulty is not None:
        difficulty = float(config.difficulty)
    luma_rng = np.random.default_rng([seed, LUMA_STREAM]) if config.luma_contrast else None
    scene = plan_scene(rng, config, length, difficulty, luma_rng)
    layers = [Layer(**spec) for spec in scene.pop("layers")]
    return SyntheticPlan(seed=seed, config=config, difficulty=difficulty, layers=layers, **scene)


def sequence_name(seed: int) -> str:
    """The folder name of a generated sequence: ``synthetic_<seed, 8 digits>``."""
    return f"synthetic_{seed:08d}"


def seed_of(name: str) -> int | None:
    """The seed in a generated sequence's `sequence_name`, or in the ``synthetic-<seed>`` name
    fartrack-make-data gives it in the LaSOT layout (its default class); None for any other name."""
    match = re.fullmatch(r"synthetic[_-](\d+)", name)
    return int(match.group(1)) if match else None


def generate_sequence(seed: int, config: SyntheticConfig = SyntheticConfig(),
                      lazy: bool = False) -> TrackingSequence:
    """The sequence of ``seed``: frames rendered now (``lazy=False``) or on each ``frame(i)``.

    ``attributes`` holds the seed, the difficulty and the per-frame hardness flags
    (see `SyntheticPlan._frame_attributes`).
    """
    plan = plan_sequence(seed, config)
    frames = LazyFrames(plan) if lazy else [plan.render(i) for i in range(plan.length)]
    attributes = dict(plan.attributes, seed=seed)
    return TrackingSequence(name=sequence_name(seed), boxes=plan.boxes.copy(), absent=plan.absent.copy(),
                            frames=frames, visible_ratio=plan.visible_ratio.copy(),
                            out_of_view=plan.out_of_view.copy(),
                            full_occlusion=plan.full_occlusion.copy(), attributes=attributes)
