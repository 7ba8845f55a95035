"""Square crops around a box, as the official FARTrack tracker takes them (`sample_target`).

The geometry follows the official code exactly (see fixtures/official/README.md, section 2.2):

- side ``crop_sz = ceil(sqrt(w*h) * factor)`` computed in float64;
- top-left ``x1 = round(x + w/2 - crop_sz/2)`` with Python's round-half-to-even, likewise ``y1``;
- zero padding, with the official "+1" quirk: whenever the crop reaches the right (bottom)
  border, the last image column (row) is dropped and padded with zero instead;
- ``cv2.resize`` to the output side with the default bilinear mode;
  ``resize_factor = out_sz / crop_sz``.

The official code slices and pads with ``cv2.copyMakeBorder``; that breaks (wrong patch size,
Python negative indexing) when the crop lies entirely outside the image. Here the patch is built
on a zero canvas from the overlap with the image minus its last row and column, which is the
same thing wherever the official code works and all zeros where it does not.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CropGeometry:
    """Where a square crop lies in the image, in integer pixels, and how it is scaled."""

    crop_sz: int
    x1: int
    y1: int
    resize_factor: float  # output side / crop side


def crop_geometry(box_xywh: Sequence[float] | np.ndarray, factor: float, out_sz: int) -> CropGeometry:
    """Side and top-left corner of the square crop around ``box_xywh`` (official arithmetic)."""
    x, y, w, h = (float(v) for v in box_xywh)
    crop_sz = math.ceil(math.sqrt(w * h) * factor)
    if crop_sz < 1:
        raise ValueError(f"box too small to crop: {tuple(box_xywh)} (w*h must be > 0)")
    x1 = round(x + 0.5 * w - crop_sz * 0.5)
    y1 = round(y + 0.5 * h - crop_sz * 0.5)
    return CropGeometry(crop_sz=crop_sz, x1=x1, y1=y1, resize_factor=out_sz / crop_sz)


def sample_target(frame: np.ndarray, box_xywh: Sequence[float] | np.ndarray, factor: float,
                  out_sz: int) -> tuple[np.ndarray, CropGeometry]:
    """Crop the square region around ``box_xywh``, pad with zero, resize to ``out_sz``.

    Returns ``(patch, geometry)``: an ``out_sz x out_sz x 3`` uint8 patch and its `CropGeometry`.
    """
    geom = crop_geometry(box_xywh, factor, out_sz)
    height, width = frame.shape[:2]
    sz = geom.crop_sz
    # The official +1 quirk: only columns < W-1 and rows < H-1 ever reach a patch.
    src_x0, src_x1 = max(geom.x1, 0), min(geom.x1 + sz, width - 1)
    src_y0, src_y1 = max(geom.y1, 0), min(geom.y1 + sz, height - 1)
    if (src_x0, src_y0, src_x1, src_y1) == (geom.x1, geom.y1, geom.x1 + sz, geom.y1 + sz):
        padded = frame[geom.y1:geom.y1 + sz, geom.x1:geom.x1 + sz]
    else:
        # np.zeros maps untouched pages lazily, so a huge padded crop costs little memory.
        padded = np.zeros((sz, sz, frame.shape[2]), dtype=frame.dtype)
        if src_x0 < src_x1 and src_y0 < src_y1:
            padded[src_y0 - geom.y1:src_y1 - geom.y1, src_x0 - geom.x1:src_x1 - geom.x1] = \
                frame[src_y0:src_y1, src_x0:src_x1]
    patch = cv2.resize(np.ascontiguousarray(padded), (out_sz, out_sz))
    return patch, geom


def normalize_patches(patches: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 ``(..., H, W, 3)`` RGB patches -> float32 ``(..., 3, H, W)`` network input.

    Same arithmetic as the official preprocessor: ``(x / 255 - mean) / std`` in float32. The
    uint8 data is moved to ``device`` first, so the arithmetic runs there.
    """
    t = torch.from_numpy(np.ascontiguousarray(patches)).to(device)
    mean, std = _mean_std(t.device)
    return (t.float().movedim(-1, -3) / 255.0 - mean) / std


@functools.lru_cache(maxsize=8)
def _mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=device).view(3, 1, 1)
    return mean, std
