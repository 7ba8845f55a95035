"""From a box in search-crop units back to the image, as the official tracker does it.

The arithmetic is kept in the official precision so that replays match the official tracker:
the crop-normalised box and its scaling to crop pixels are float32 tensor operations, the
mapping into the image and the clipping are Python float64 (README section 2.2).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch


def crop_px_boxes(box_cxcywh_norm: torch.Tensor, search_size: int,
                  resize_factors: Iterable[float]) -> list[list[float]]:
    """Crop-normalised ``(B, 4)`` cx,cy,w,h -> per-target cx,cy,w,h in image-scale pixels.

    Official: ``box * search_size / resize_factor`` in float32 (two float32 operations).
    """
    rows = []
    for box, factor in zip(box_cxcywh_norm.float().cpu(), resize_factors):
        rows.append(((box * search_size) / float(factor)).double().tolist())
    return rows


def map_box_back(box_cxcywh_px: Sequence[float], prev_state_xywh: Sequence[float], search_size: int,
                 resize_factor: float) -> list[float]:
    """Box in search-crop pixels (cx,cy,w,h at image scale) -> image x,y,w,h.

    The search crop was centred on the previous state, so the crop's top-left corner in the
    image is that centre minus half the crop side.
    """
    px, py, pw, ph = prev_state_xywh
    cx_prev = px + 0.5 * pw
    cy_prev = py + 0.5 * ph
    cx, cy, w, h = box_cxcywh_px
    half_side = 0.5 * search_size / resize_factor
    cx_real = cx + (cx_prev - half_side)
    cy_real = cy + (cy_prev - half_side)
    return [cx_real - 0.5 * w, cy_real - 0.5 * h, w, h]


def clip_box(box_xywh: Sequence[float], height: int, width: int, margin: float = 10) -> list[float]:
    """Official ``clip_box``: keep at least ``margin`` px of the box inside the image.

    The far corner is taken from the unclipped top-left, as in the official code, and the size
    is at least ``margin`` in each direction. In a frame narrower or lower than ``margin`` the
    margin is that side (officially the box would stick out of the image).
    """
    x1, y1, w, h = box_xywh
    x2, y2 = x1 + w, y1 + h
    margin_x, margin_y = min(margin, width), min(margin, height)
    x1 = min(max(0, x1), width - margin_x)
    x2 = min(max(margin_x, x2), width)
    y1 = min(max(0, y1), height - margin_y)
    y2 = min(max(margin_y, y2), height)
    w = max(margin_x, x2 - x1)
    h = max(margin_y, y2 - y1)
    return [float(x1), float(y1), float(w), float(h)]
