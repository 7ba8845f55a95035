"""Warnings about how an init image looks to the model: too dark or saturated because of how its
16-bit samples were read (``image_bit_depth``), or a dark scene. Pure functions, no ROS."""

from __future__ import annotations

import numpy as np

from .image_conversion import FULL_BIT_DEPTH

NEARLY_BLACK_PEAK = 15  # an init image no brighter than this (of 255): 12-bit data read as 16, or dark
SATURATED_SHARE = 0.5  # a 16-bit init image with more of its pixels white: bit depth set too low


def exposure_warning(rgb: np.ndarray, source_format: str, bit_depth: int) -> str | None:
    """Why the converted frame ``rgb`` of an image in ``source_format`` (encoding or compressed
    format) read with ``bit_depth`` is hard for the model to see; None when it looks normal."""
    sixteen_bit = "16" in source_format
    peak = int(rgb.max())
    if peak <= NEARLY_BLACK_PEAK:
        if sixteen_bit and bit_depth == FULL_BIT_DEPTH:
            cause = ("16-bit images are read by their high byte, as cv_bridge does, so 10- or 12-bit data in "
                     "the low bits of a 16-bit word comes out this dark; set the node's image_bit_depth to the "
                     "camera's bits (10, 12 or 14), or have the camera driver put the data in the high bits")
        else:
            cause = "the target can hardly be seen; check the camera's exposure (or a lens cap)"
        return f"init on a nearly black image (brightest value {peak} of 255): {cause}"
    if sixteen_bit and bit_depth < FULL_BIT_DEPTH:
        white = float(np.mean(np.all(rgb == 255, axis=-1)))
        if white > SATURATED_SHARE:
            return (f"init on a mostly saturated image ({white:.0%} of the pixels white) read with "
                    f"image_bit_depth {bit_depth}: if the camera sends more bits than that, raise it "
                    f"({FULL_BIT_DEPTH} for data in the high bits of each 16-bit sample)")
    return None
