"""Procedural textures and shape masks for the synthetic tracking sequences.

Every function takes a ``numpy.random.Generator`` and draws from nothing else, so a texture is a
pure function of the generator's state. Images are float32 in [0, 1] (HxW or HxWx3) unless the
name says ``_u8``. OpenCV does the resizing and drawing (fast, deterministic).
"""

from __future__ import annotations

import cv2
import numpy as np

from fartrack_ros.image_conversion import BT601_LUMA

TEXTURE_FAMILIES = ("clouds", "stripes", "spots", "tiles", "marble")
SHAPES = ("ellipse", "rounded_rect", "polygon")
LUMA_RANGE = (0.08, 0.92)  # how dark or light a set-apart palette may get on average


def fractal_noise(rng: np.random.Generator, height: int, width: int, octaves: int = 5,
                  base_cells: float = 3.0, persistence: float = 0.55) -> np.ndarray:
    """Value noise summed over octaves (each twice as fine, ``persistence`` times as strong).

    Built coarse to fine: the running sum is upsampled to each finer grid before that octave's
    random values are added, and only the finest grid is resized to the full image.
    Returns an HxW float32 image normalised to [0, 1].
    """
    longest = max(height, width)
    total = None
    amplitude = 1.0
    for octave in range(octaves):
        cells = base_cells * 2 ** octave
        grid_h = max(2, int(round(cells * height / longest)) + 1)
        grid_w = max(2, int(round(cells * width / longest)) + 1)
        grid = amplitude * rng.random((grid_h, grid_w), dtype=np.float32)
        if total is not None:
            grid += cv2.resize(total, (grid_w, grid_h), interpolation=cv2.INTER_CUBIC)
        total = grid
        amplitude *= persistence
    return _normalise(cv2.resize(total, (width, height), interpolation=cv2.INTER_CUBIC))


def _normalise(image: np.ndarray) -> np.ndarray:
    low, high = float(image.min()), float(image.max())
    return ((image - low) / max(high - low, 1e-6)).astype(np.float32)


def random_palette(rng: np.random.Generator, stops: int = 4, hue: float | None = None,
                   hue_spread: float = 60.0, saturation: tuple[float, float] = (0.25, 0.9),
                   value: tuple[float, float] = (0.15, 0.95)) -> np.ndarray:
    """A colour ramp (stops x 3 RGB in [0, 1]) around one hue (degrees), dark to light."""
    if hue is None:
        hue = rng.uniform(0.0, 360.0)
    hues = (hue + rng.uniform(-hue_spread / 2, hue_spread / 2, stops)) % 360.0
    sats = rng.uniform(*saturation, stops)
    vals = np.sort(rng.uniform(*value, stops))
    return hsv_to_rgb(np.stack([hues, sats, vals], axis=1))


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """(..., 3) HSV with hue in degrees, s and v in [0, 1] -> RGB in [0, 1]."""
    h = (hsv[..., 0] % 360.0) / 60.0
    s, v = hsv[..., 1], hsv[..., 2]
    c = v * s
    x = c * (1 - np.abs(h % 2 - 1))
    zeros = np.zeros_like(c)
    sector = np.floor(h).astype(int) % 6
    choices = [np.stack(p, axis=-1) for p in ((c, x, zeros), (x, c, zeros), (zeros, c, x),
                                               (zeros, x, c), (x, zeros, c), (c, zeros, x))]
    rgb = np.select([sector[..., None] == k for k in range(6)], choices)
    return (rgb + (v - c)[..., None]).astype(np.float32)


def shift_palette(palette: np.ndarray, hue_shift: float, value_gain: float = 1.0) -> np.ndarray:
    """The palette with every stop's hue turned by ``hue_shift`` degrees (a look-alike)."""
    rgb = np.clip(palette, 0, 1).astype(np.float32)
    hsv = cv2.cvtColor(rgb[None], cv2.COLOR_RGB2HSV)[0]
    hsv[:, 0] = (hsv[:, 0] + hue_shift) % 360.0
    hsv[:, 2] = np.clip(hsv[:, 2] * value_gain, 0, 1)
    return hsv_to_rgb(hsv)


def palette_luma(palette: np.ndarray) -> float:
    """Mean BT.601 luma of a palette's stops, in [0, 1]."""
    return float((np.clip(palette, 0, 1).reshape(-1, 3) @ BT601_LUMA).mean())


def with_luma(palette: np.ndarray, luma: float) -> np.ndarray:
    """The palette darkened towards black or lightened towards white until its mean luma is
    ``luma``; hues stay, so the colour scene keeps its look."""
    if not 0.0 <= luma <= 1.0:  # also refuses NaN
        raise ValueError(f"luma must lie in [0, 1], got {luma}")
    palette = np.clip(palette, 0, 1).astype(np.float32)
    current = palette_luma(palette)
    if luma <= current:
        return palette * np.float32(luma / max(current, 1e-6))
    return 1.0 - (1.0 - palette) * np.float32((1.0 - luma) / max(1.0 - current, 1e-6))


def set_apart_in_luma(rng: np.random.Generator, palette: np.ndarray, other_luma: float,
                      separation: float) -> np.ndarray:
    """The palette made ``separation`` brighter or darker (on average) than ``other_luma``: the
    side is drawn among those with room in `LUMA_RANGE`, else the one with more room is taken."""
    if not (0.0 <= other_luma <= 1.0 and separation >= 0.0):  # also refuses NaN
        raise ValueError(f"need a luma in [0, 1] and a separation >= 0, got {other_luma} and {separation}")
    low, high = LUMA_RANGE
    sides = [luma for luma in (other_luma - separation, other_luma + separation) if low <= luma <= high]
    if sides:
        luma = sides[int(rng.integers(len(sides)))]
    else:
        luma = low if other_luma - low > high - other_luma else high
    return with_luma(palette, luma)


def apply_palette(values: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Map HxW values in [0, 1] through a colour ramp -> HxWx3 float32."""
    ramp_pos = np.linspace(0.0, 1.0, len(palette))
    lut = np.stack([np.interp(np.linspace(0, 1, 256), ramp_pos, palette[:, c]) for c in range(3)],
                   axis=1).astype(np.float32)
    return lut[np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8)]


def _coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return yy / max(height, width), xx / max(height, width)


def texture_values(rng: np.random.Generator, family: str, height: int, width: int,
                   scale: float = 1.0) -> np.ndarray:
    """Scalar HxW pattern in [0, 1] of one texture family; ``scale`` > 1 makes it finer."""
    if family == "clouds":
        return fractal_noise(rng, height, width, base_cells=2.0 * scale,
                             persistence=rng.uniform(0.45, 0.65))
    yy, xx = _coords(height, width)
    if family in ("stripes", "marble"):
        angle = rng.uniform(0, np.pi)
        freq = rng.uniform(4.0, 10.0) * scale
        turbulence = rng.uniform(0.5, 1.5) if family == "stripes" else rng.uniform(3.0, 7.0)
        warp = fractal_noise(rng, height, width, octaves=4, base_cells=2.0 * scale)
        phase = 2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + turbulence * 2 * np.pi * warp
        wave = 0.5 + 0.5 * np.sin(phase)
        if family == "stripes":
            wave = np.clip((wave - 0.5) * rng.uniform(1.5, 4.0) + 0.5, 0, 1)
        return _normalise(0.8 * wave + 0.2 * fractal_noise(rng, height, width, octaves=3, base_cells=6 * scale))
    if family == "spots":
        base = 0.35 * fractal_noise(rng, height, width, octaves=3, base_cells=3 * scale)
        spots = np.zeros((height, width), np.float32)
        count = int(rng.integers(6, 18) * scale ** 2)
        side = max(height, width)
        for _ in range(count):
            centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
            axes = (max(1, int(side * rng.uniform(0.03, 0.12) / scale)),
                    max(1, int(side * rng.uniform(0.03, 0.12) / scale)))
            cv2.ellipse(spots, centre, axes, rng.uniform(0, 180), 0, 360,
                        float(rng.uniform(0.5, 1.0)), -1, cv2.LINE_AA)
        spots = cv2.GaussianBlur(spots, (0, 0), max(0.6, side / 200.0))
        return _normalise(base + np.clip(spots, 0, 1))
    if family == "tiles":
        cells = rng.uniform(3.0, 7.0) * scale
        angle = rng.uniform(-0.4, 0.4)
        u = (xx * np.cos(angle) - yy * np.sin(angle)) * cells
        v = (xx * np.sin(angle) + yy * np.cos(angle)) * cells
        checker = ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
        grout = ((np.abs(u - np.round(u)) < 0.06) | (np.abs(v - np.round(v)) < 0.06)).astype(np.float32)
        noise = fractal_noise(rng, height, width, octaves=4, base_cells=4 * scale)
        return _normalise(0.55 * checker + 0.35 * noise - 0.4 * grout)
    raise ValueError(f"unknown texture family {family!r} (choose one of {TEXTURE_FAMILIES})")


def shading(rng: np.random.Generator, height: int, width: int, strength: float) -> np.ndarray:
    """A soft linear light gradient (HxW, mean about 1) that makes flat textures look lit."""
    yy, xx = _coords(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (xx * np.cos(angle) + yy * np.sin(angle))
    ramp = (ramp - ramp.mean()) / max(float(np.ptp(ramp)), 1e-6)
    return (1.0 + strength * ramp).astype(np.float32)


def colour_texture(rng: np.random.Generator, family: str, palette: np.ndarray, height: int,
                   width: int, scale: float = 1.0, shade: float = 0.4) -> np.ndarray:
    """HxWx3 float32 texture: a pattern through a palette, lit by a soft gradient."""
    rgb = apply_palette(texture_values(rng, family, height, width, scale), palette)
    return np.clip(rgb * shading(rng, height, width, shade)[..., None], 0, 1)


def shape_mask(rng: np.random.Generator, shape: str, size: int) -> np.ndarray:
    """A size x size float32 alpha mask in [0, 1] with anti-aliased edges, 2 px inset."""
    mask = np.zeros((size, size), np.float32)
    inset = 2
    centre = (size - 1) / 2.0
    radius = size / 2.0 - inset
    if shape == "ellipse":
        shift = 4
        c = int(round(centre * (1 << shift)))
        r = int(round(radius * (1 << shift)))
        cv2.ellipse(mask, (c, c), (r, r), 0, 0, 360, 1.0, -1, cv2.LINE_AA, shift)
    elif shape == "rounded_rect":
        corner = rng.uniform(0.15, 0.5)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        half = radius
        r = corner * half
        dx = np.maximum(np.abs(xx - centre) - (half - r), 0)
        dy = np.maximum(np.abs(yy - centre) - (half - r), 0)
        inside = r - np.sqrt(dx * dx + dy * dy)
        edge = np.minimum(half - np.abs(xx - centre), half - np.abs(yy - centre))
        mask = np.clip(np.minimum(inside, edge) + 0.5, 0, 1).astype(np.float32)
    elif shape == "polygon":
        vertices = int(rng.integers(5, 10))
        angles = np.sort(rng.uniform(0, 2 * np.pi, vertices))
        radii = rng.uniform(0.7, 1.0, vertices)
        points = np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
        # stretch so the polygon touches every side of its box: the box is the object's extent
        low, high = points.min(axis=0), points.max(axis=0)
        points = (points - low) / (high - low) * (2 * radius) + (centre - radius)
        shift = 4
        cv2.fillPoly(mask, [np.round(points * (1 << shift)).astype(np.int32)], 1.0, cv2.LINE_AA, shift)
    else:
        raise ValueError(f"unknown shape {shape!r} (choose one of {SHAPES})")
    return mask
