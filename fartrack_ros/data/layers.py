"""Textured object layers: warping one onto a frame region, motion blur, alpha compositing.

A layer's appearance is a square RGBA texture (uint8, alpha = shape mask); its box in a frame is
the region that the texture's interior (all but ``INSET`` pixels at each side) maps to, so the
shape touches its box on every side and the box is the object's exact extent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

INSET_FRACTION = 2.0 / 128.0  # of the texture side, kept transparent so edges anti-alias cleanly


def texture_pyramid(rgba: np.ndarray, levels: int = 3) -> list[np.ndarray]:
    """The texture at full, half, quarter... size (area-averaged): picked by rendered size."""
    pyramid = [rgba]
    for _ in range(levels - 1):
        side = pyramid[-1].shape[0] // 2
        pyramid.append(cv2.resize(pyramid[-1], (side, side), interpolation=cv2.INTER_AREA))
    return pyramid


def pick_level(pyramid: list[np.ndarray], box_w: float, box_h: float) -> np.ndarray:
    """The smallest pyramid level that is still at least as large as the rendered box."""
    need = max(box_w, box_h)
    for level in reversed(pyramid):
        if level.shape[0] * (1 - 2 * INSET_FRACTION) >= need:
            return level
    return pyramid[0]


def warp_to_region(texture: np.ndarray, box_xywh: Sequence[float] | np.ndarray, region_x0: int, region_y0: int,
                   region_w: int, region_h: int) -> np.ndarray:
    """Resample ``texture`` (SxSxC) so that its interior covers ``box_xywh``, into the region.

    Returns region_h x region_w x C of the texture's dtype; outside the texture is 0 (transparent).
    Sub-pixel box positions and sizes are honoured (bilinear sampling).
    """
    side = texture.shape[0]
    inset = side * INSET_FRACTION
    x, y, w, h = box_xywh
    sx = (side - 2 * inset) / max(w, 1e-3)
    sy = (side - 2 * inset) / max(h, 1e-3)
    # region pixel (X, Y) has its centre at frame coordinate region_x0 + X + 0.5
    inverse = np.array([[sx, 0.0, (region_x0 + 0.5 - x) * sx + inset - 0.5],
                        [0.0, sy, (region_y0 + 0.5 - y) * sy + inset - 0.5]], np.float64)
    return cv2.warpAffine(texture, inverse, (region_w, region_h),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def motion_blur_kernel(length: float, angle: float) -> np.ndarray:
    """A normalised line kernel of ``length`` pixels along ``angle`` (radians)."""
    size = int(math.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    half = (size - 1) / 2.0
    dx, dy = math.cos(angle) * (length - 1) / 2.0, math.sin(angle) * (length - 1) / 2.0
    shift = 4
    p0 = (int(round((half - dx) * 16)), int(round((half - dy) * 16)))
    p1 = (int(round((half + dx) * 16)), int(round((half + dy) * 16)))
    cv2.line(kernel, p0, p1, 1.0, 1, cv2.LINE_AA, shift)
    total = float(kernel.sum())
    if total <= 0:
        kernel[int(half), int(half)] = 1.0
        total = 1.0
    return kernel / total


@dataclass(frozen=True)
class Region:
    """An integer frame region [x0, x1) x [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def empty(self) -> bool:
        """True when the region holds no pixel (e.g. a box wholly outside the frame)."""
        return self.x1 <= self.x0 or self.y1 <= self.y0

    @property
    def width(self) -> int:
        """Columns of the region (x1 - x0)."""
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        """Rows of the region (y1 - y0)."""
        return self.y1 - self.y0


def box_region(box_xywh: Sequence[float] | np.ndarray, margin: int, width: int | None = None,
               height: int | None = None) -> Region:
    """Integer region around a box plus ``margin``, clipped to the frame when its size is given."""
    x, y, w, h = box_xywh
    x0, y0 = math.floor(x) - margin, math.floor(y) - margin
    x1, y1 = math.ceil(x + w) + margin, math.ceil(y + h) + margin
    if width is not None:
        x0, x1 = max(0, x0), min(width, x1)
    if height is not None:
        y0, y1 = max(0, y0), min(height, y1)
    return Region(x0, y0, x1, y1)


def composite_layer(frame: np.ndarray, texture: np.ndarray, box_xywh: Sequence[float] | np.ndarray,
                    blur_length: float = 0.0, blur_angle: float = 0.0) -> None:
    """Draw an RGBA texture at ``box_xywh`` over ``frame`` (HxWx3 uint8, in place).

    With ``blur_length`` >= 1.5 px the layer (colour premultiplied by alpha, and alpha) is blurred
    along ``blur_angle`` first: a moving object smeared over the exposure, background unblurred.
    """
    height, width = frame.shape[:2]
    blur = blur_length >= 1.5
    margin = int(math.ceil(blur_length / 2)) + 2 if blur else 1
    region = box_region(box_xywh, margin, width, height)
    if region.empty:
        return
    rgba = warp_to_region(texture, box_xywh, region.x0, region.y0, region.width, region.height)
    layer = rgba.astype(np.float32) * (1.0 / 255.0)
    alpha = layer[..., 3:4]
    layer[..., :3] *= alpha  # premultiplied colour
    if blur:
        layer = cv2.filter2D(layer, -1, motion_blur_kernel(blur_length, blur_angle),
                             borderType=cv2.BORDER_CONSTANT)
        alpha = layer[..., 3:4]
    target = frame[region.y0:region.y1, region.x0:region.x1]
    mixed = target.astype(np.float32) * (1.0 - alpha) + layer[..., :3] * 255.0
    target[...] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
