"""One tracking sequence: frames (in memory or as image paths), boxes and per-frame flags.

The generator, the GOT-10k and the LaSOT readers all return this class, so the trainer and the
evaluation never care where a sequence came from.

Conventions:
- frames are HxWx3 uint8 RGB;
- boxes are (N, 4) float64 ``(x, y, w, h)`` in pixels, x/y the top-left corner; a box with
  ``w <= 0`` or ``h <= 0`` carries no position (the target is absent);
- ``absent[i]`` is True where the target cannot be seen at all (fully occluded or fully out of
  view); evaluation skips those frames;
- ``visible_ratio[i]`` in [0, 1] is the fraction of the target that can be seen (occlusion and the
  image border both count); readers derive it from GOT-10k ``cover.label`` when present;
- a ``grey`` sequence gives its frames as a grey camera's images reach the tracker (`grey_rgb`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

# GOT-10k cover.label: 0 = fully occluded / absent, 1 = (0, 15%], 2 = (15, 30%], ..., 7 = (90, 100%),
# 8 = 100% visible.
COVER_UPPER_BOUNDS = (0.0, 0.15, 0.30, 0.45, 0.60, 0.75, 0.90, 1.0)


def cover_level(visible_ratio: np.ndarray) -> np.ndarray:
    """Visible ratios in [0, 1] -> GOT-10k cover levels 0..8 (int)."""
    ratio = np.asarray(visible_ratio, dtype=np.float64)
    level = np.searchsorted(np.array(COVER_UPPER_BOUNDS[1:-1]), ratio, side="left") + 1
    level = np.where(ratio >= 0.999, 8, level)
    return np.where(ratio <= 0.0, 0, level).astype(np.int64)


def cover_to_ratio(level: np.ndarray) -> np.ndarray:
    """GOT-10k cover levels -> representative visible ratios (the top of each bin)."""
    bounds = np.array((0.0, 0.15, 0.30, 0.45, 0.60, 0.75, 0.90, 0.95, 1.0))
    return bounds[np.clip(np.asarray(level, dtype=np.int64), 0, 8)]


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB; raise FileNotFoundError with the path if unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path} (missing or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def grey_rgb(rgb: np.ndarray) -> np.ndarray:
    """An RGB frame as a grey camera would give it: BT.601 luma in all three channels, which is what
    a mono8 image becomes in the tracker (`image_conversion`)."""
    return cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


@dataclass
class TrackingSequence:
    """A sequence with boxes and flags; frames are held in memory or loaded lazily from paths."""

    name: str
    boxes: np.ndarray
    absent: np.ndarray
    frames: list[np.ndarray] | None = None
    frame_paths: list[Path] | None = None
    visible_ratio: np.ndarray | None = None
    out_of_view: np.ndarray | None = None
    full_occlusion: np.ndarray | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    grey: bool = False

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        n = len(self.boxes)
        self.absent = np.asarray(self.absent, dtype=bool).reshape(n)
        if (self.frames is None) == (self.frame_paths is None):
            raise ValueError(f"sequence {self.name!r}: give exactly one of frames or frame_paths")
        count = len(self.frames) if self.frames is not None else len(self.frame_paths)
        if count != n:
            raise ValueError(f"sequence {self.name!r}: {count} frames but {n} boxes")
        if self.visible_ratio is None:
            self.visible_ratio = np.where(self.absent, 0.0, 1.0)
        for flag in ("out_of_view", "full_occlusion"):
            value = getattr(self, flag)
            setattr(self, flag, np.zeros(n, bool) if value is None else np.asarray(value, bool).reshape(n))

    def __len__(self) -> int:
        return len(self.boxes)

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as HxWx3 uint8 RGB."""
        rgb = self.frames[index] if self.frames is not None else read_rgb(self.frame_paths[index])
        return grey_rgb(rgb) if self.grey else rgb

    def as_grey(self) -> "TrackingSequence":
        """The same sequence seen by a grey camera (frames converted as they are read)."""
        return replace(self, grey=True)

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the frames (reads the first frame when they are on disk)."""
        height, width = self.frame(0).shape[:2]
        return width, height

    @property
    def cover(self) -> np.ndarray:
        """GOT-10k cover levels 0..8 per frame (0 where absent)."""
        return np.where(self.absent, 0, np.maximum(cover_level(self.visible_ratio), 1))
