"""Planning one synthetic scene: appearances, motion, events and camera effects.

``plan_scene`` draws everything from the generator it is given, in a fixed order; it renders no
frame. ``difficulty`` (0 = easy, 1 = hard) scales how often and how strongly each hardness
feature occurs. Sizes and speeds are in pixels and pixels per frame.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fartrack_ros.data.layers import composite_layer, texture_pyramid
from fartrack_ros.data.textures import (SHAPES, TEXTURE_FAMILIES, colour_texture, fractal_noise,
                                        palette_luma, random_palette, set_apart_in_luma, shape_mask,
                                        shift_palette)
from fartrack_ros.image_conversion import BT601_LUMA

if TYPE_CHECKING:
    from fartrack_ros.data.synthetic import SyntheticConfig

CAMERA_MARGIN = 40  # background canvas is this much larger than the frame on every side
SHADOW_MARGIN = 40
NOISE_MARGIN = 16
MIN_SIZE = 10.0
INIT_CLEAR_FRAMES = 5  # nothing passes in front of the target in its first frames
MAX_BURST_SPEED = 45.0  # px per frame


def lerp(a: float, b: float, t: float) -> float:
    """The value a fraction ``t`` of the way from ``a`` to ``b``: maps difficulty 0..1 onto a range."""
    return a + (b - a) * t


def smooth_curve(rng: np.random.Generator, n: int, amplitude: float, min_period: float = 30.0,
                 max_period: float = 150.0, terms: int = 3) -> np.ndarray:
    """A smooth random curve of ``n`` samples, zero at the first, peak magnitude about ``amplitude``."""
    t = np.arange(n, dtype=np.float64)
    curve = np.zeros(n)
    for _ in range(terms):
        period = rng.uniform(min_period, max_period)
        curve += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    curve -= curve[0]
    peak = max(float(np.abs(curve).max()), 1e-6)
    return curve * (amplitude / peak) * rng.uniform(0.5, 1.0)


def step_curve(n: int, start: int, duration: int) -> np.ndarray:
    """0 before ``start``, a smoothstep rise over ``duration`` frames, 1 after."""
    x = np.clip((np.arange(n) - start) / max(duration, 1), 0.0, 1.0)
    return x * x * (3 - 2 * x)


# --------------------------------------------------------------------------- appearance

def _rgba(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rgba = np.concatenate([rgb, mask[..., None]], axis=2)
    return np.clip(rgba * 255.0 + 0.5, 0, 255).astype(np.uint8)


def object_texture(rng: np.random.Generator, family: str, palette: np.ndarray, shape: str,
                   size: int, mask: np.ndarray | None = None) -> np.ndarray:
    """An RGBA uint8 object: a family texture through a palette, cut out by a shape, outlined."""
    rgb = colour_texture(rng, family, palette, size, size, scale=rng.uniform(0.7, 1.5),
                         shade=rng.uniform(0.2, 0.7))
    if mask is None:
        mask = shape_mask(rng, shape, size)
    rim = cv2.GaussianBlur(mask, (0, 0), size / 40.0)
    darken = 1.0 - rng.uniform(0.2, 0.5) * np.clip((1.0 - rim) * 2.0, 0, 1) * mask
    return _rgba(rgb * darken[..., None], mask)


def background_canvas(rng: np.random.Generator, width: int, height: int, difficulty: float,
                      hue: float) -> np.ndarray:
    """A natural-looking uint8 RGB canvas: two textured regions, a light gradient, static clutter."""
    first = colour_texture(rng, rng.choice(["clouds", "marble", "clouds", "stripes"]),
                           random_palette(rng, hue=hue, hue_spread=50, saturation=(0.1, 0.55), value=(0.2, 0.85)),
                           height, width, scale=rng.uniform(0.8, 2.0), shade=rng.uniform(0.2, 0.6))
    second = colour_texture(rng, str(rng.choice(TEXTURE_FAMILIES)),
                            random_palette(rng, hue=hue + rng.uniform(-90, 90), saturation=(0.1, 0.55),
                                           value=(0.2, 0.85)),
                            height, width, scale=rng.uniform(1.0, 3.0), shade=0.3)
    split = fractal_noise(rng, height, width, octaves=3, base_cells=1.5)
    edge = rng.uniform(0.4, 0.6)
    weight = np.clip((split - edge) * rng.uniform(4.0, 12.0) + 0.5, 0, 1)[..., None]
    canvas = np.clip((first * (1 - weight) + second * weight) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    clutter = int(rng.integers(4, 10) + round(8 * difficulty))
    side = min(width, height)
    for _ in range(clutter):
        size = 48
        family = str(rng.choice(TEXTURE_FAMILIES))
        palette = random_palette(rng, hue=hue + rng.uniform(-120, 120), saturation=(0.15, 0.7))
        texture = object_texture(rng, family, palette, str(rng.choice(SHAPES)), size)
        w = side * rng.uniform(0.05, 0.3)
        h = w * math.exp(rng.normal(0, 0.5))
        box = (rng.uniform(-w / 2, width - w / 2), rng.uniform(-h / 2, height - h / 2), w, h)
        composite_layer(canvas, texture, box)
    return cv2.GaussianBlur(canvas, (0, 0), 0.6)


# --------------------------------------------------------------------------- target motion

def _target_sizes(rng, n, width, height, d):
    """Per-frame sqrt(area) and aspect ratio (w / h) of the target."""
    low, high = lerp(36.0, 18.0, d), lerp(90.0, 60.0, d)
    size0 = math.exp(rng.uniform(math.log(low), math.log(high)))
    log_size = math.log(size0) + smooth_curve(rng, n, lerp(0.2, 0.8, d))
    if rng.random() < 0.7 * d:  # a zoom: the size changes by up to 2.2x within a second or so
        start = int(rng.integers(5, max(6, n - 25)))
        log_size += rng.choice([-1, 1]) * rng.uniform(0.3, 0.8) * step_curve(n, start, int(rng.integers(6, 20)))
    size = np.clip(np.exp(log_size), MIN_SIZE, 0.5 * min(width, height))
    aspect0 = math.exp(np.clip(rng.normal(0, 0.45), -1.0, 1.0))
    aspect = np.exp(math.log(aspect0) + smooth_curve(rng, n, lerp(0.1, 1.0, d)))
    return size, aspect


def _events(rng, n, count, min_len, max_len, first=3, gap=4):
    """Up to ``count`` non-overlapping (start, length) windows in [first, n)."""
    taken = np.zeros(n + gap, bool)
    events = []
    for _ in range(count):
        length = int(rng.integers(min_len, max_len + 1))
        start = int(rng.integers(first, max(first + 1, n - length)))
        lo, hi = max(0, start - gap), min(n, start + length + gap)
        if taken[lo:hi].any() or start + length > n:
            continue
        taken[lo:hi] = True
        events.append((start, length))
    return sorted(events)


def _target_centres(rng, n, width, height, d, size, aspect):
    """Per-frame target centre (n, 2): wandering, bursts of fast motion, out-of-view excursions.

    An excursion leaves through the nearest border, waits outside, and comes back where it left.
    """
    half_w = size * np.sqrt(aspect) / 2
    half_h = size / np.sqrt(aspect) / 2
    base_speed = rng.uniform(0.5, lerp(2.5, 5.0, d))
    bursts = _events(rng, n, rng.poisson(lerp(0.3, 3.5, d) * n / 120), 2, 6, first=4)
    burst_frames = {t: (start, length) for start, length in bursts for t in range(start, start + length)}
    oov_starts = [int(rng.integers(15, max(16, n - 40)))] if rng.random() < lerp(0.05, 0.55, d) else []
    oov_hold = int(rng.integers(2, 4 + round(14 * d)))
    wander = rng.normal(0.0, base_speed * 0.35, (n, 2))
    burst_dirs = rng.uniform(0, 2 * np.pi, n)
    burst_speeds = rng.uniform(0.25, lerp(0.5, 1.1, d), n)
    pos = np.array([rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height])
    vel = base_speed * np.array([math.cos(a := rng.uniform(0, 2 * np.pi)), math.sin(a)])
    centres = np.zeros((n, 2))
    centres[0] = pos
    phase, hold, exit_dir, burst_vel = "free", 0, np.zeros(2), np.zeros(2)
    for t in range(1, n):
        hw, hh = half_w[t], half_h[t]
        lo = np.array([hw + 3, hh + 3])
        hi = np.array([width - hw - 3, height - hh - 3])
        if phase == "free" and t in oov_starts:
            # leave through the nearest border
            gaps = [pos[0], width - pos[0], pos[1], height - pos[1]]
            exit_dir = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]][int(np.argmin(gaps))], float)
            phase = "leaving"
        if phase == "leaving":
            vel = exit_dir * max(2.5, base_speed * 1.5, 0.12 * size[t])
            outside = (pos[0] + hw < -1 or pos[0] - hw > width + 1 or pos[1] + hh < -1
                       or pos[1] - hh > height + 1)
            if outside:
                phase, hold = "outside", oov_hold
        elif phase == "outside":
            vel = np.array([exit_dir[1], exit_dir[0]]) * wander[t, 0] * 0.5
            hold -= 1
            if hold <= 0:
                phase = "returning"
        elif phase == "returning":
            vel = -exit_dir * max(2.5, base_speed * 1.5, 0.12 * size[t])
            if np.all(pos >= np.minimum(lo, hi)) and np.all(pos <= np.maximum(lo, hi)):
                phase = "free"
        elif t in burst_frames:
            start, length = burst_frames[t]
            if t == start:
                burst_vel = _burst_velocity(pos, lo, hi, burst_dirs[t],
                                            min(burst_speeds[t] * size[t] + 2.0, MAX_BURST_SPEED), length)
            vel = burst_vel
        else:
            vel = 0.85 * vel + 0.15 * (vel / max(np.linalg.norm(vel), 1e-6) * base_speed) + wander[t]
            speed = np.linalg.norm(vel)
            if speed > 2.0 * base_speed + 1.0:
                vel *= (2.0 * base_speed + 1.0) / speed
            vel += 0.3 * (np.where(pos < lo, lo - pos, 0.0) + np.where(pos > hi, hi - pos, 0.0))
        pos = pos + vel
        centres[t] = pos
    return centres


def _burst_velocity(pos, lo, hi, angle, speed, length):
    """Velocity of a burst of fast motion that keeps the centre inside [lo, hi] over ``length`` frames.

    Of the drawn direction and its opposite, the one with more room is taken; the speed is cut
    where even that room is too short.
    """
    low, high = np.minimum(lo, hi), np.maximum(lo, hi)
    best = None
    for direction in (np.array([math.cos(angle), math.sin(angle)]),
                      -np.array([math.cos(angle), math.sin(angle)])):
        with np.errstate(divide="ignore", invalid="ignore"):
            room = np.where(direction > 1e-9, (high - pos) / direction,
                            np.where(direction < -1e-9, (low - pos) / direction, np.inf))
        travel = max(0.0, float(room.min()))
        if best is None or travel > best[1] + 1e-9:
            best = (direction, travel)
    direction, travel = best
    return direction * min(speed, travel / max(length, 1))


def boxes_from(centres: np.ndarray, size: np.ndarray, aspect: np.ndarray) -> np.ndarray:
    """(N, 4) xywh boxes from centres, sqrt(area) sizes and w/h aspect ratios."""
    w = size * np.sqrt(aspect)
    h = size / np.sqrt(aspect)
    return np.stack([centres[:, 0] - w / 2, centres[:, 1] - h / 2, w, h], axis=1)


# --------------------------------------------------------------------------- other objects

def _distractors(rng, n, d, target_boxes, family, palette, shape, texture_size, luma_rng=None):
    """Look-alikes: the target's family and shape, another pattern, a turned hue; they cross it.

    With ``luma_rng`` their brightness differs from the target's too (`set_apart_in_luma`).
    """
    layers = []
    count = int(rng.binomial(3, lerp(0.15, 0.65, d)))
    centres = target_boxes[:, :2] + target_boxes[:, 2:] / 2
    for _ in range(count):
        cross = min(n - 1, int(rng.integers(8, max(9, n - 8))))
        size = float(np.sqrt(target_boxes[cross, 2] * target_boxes[cross, 3])) * math.exp(rng.normal(0, 0.15))
        speed = rng.uniform(1.5, lerp(3.0, 6.0, d))
        angle = rng.uniform(0, 2 * np.pi)
        direction = np.array([math.cos(angle), math.sin(angle)])
        offset = np.array([-direction[1], direction[0]]) * rng.uniform(-0.6, 0.6) * size
        t = np.arange(n)[:, None] - cross
        path = centres[cross] + offset + direction * speed * t
        sizes = np.clip(size * np.exp(smooth_curve(rng, n, 0.3)), MIN_SIZE, None)
        aspect = (target_boxes[cross, 2] / target_boxes[cross, 3]) * np.exp(smooth_curve(rng, n, 0.2))
        hue_turn = rng.choice([-1, 1]) * rng.uniform(lerp(70.0, 25.0, d), lerp(120.0, 60.0, d))
        look = shift_palette(palette, hue_turn, rng.uniform(0.8, 1.2))
        if luma_rng is not None:
            look = set_apart_in_luma(luma_rng, look, palette_luma(palette),
                                     luma_rng.uniform(lerp(0.2, 0.08, d), 0.3))
        texture = object_texture(rng, family, look, shape, texture_size)
        layers.append(dict(role="distractor", pyramid=texture_pyramid(texture),
                           boxes=boxes_from(path, sizes, aspect)))
    return layers


def _occluders(rng, n, d, target_boxes, hue, texture_size):
    """Objects passing in front of the target: some cover part of it, some all of it for a while."""
    layers = []
    count = int(rng.poisson(lerp(0.3, 1.6, d)))
    centres = target_boxes[:, :2] + target_boxes[:, 2:] / 2
    for _ in range(count):
        when = min(n - 1, int(rng.integers(10, max(11, n - 10))))
        tw, th = target_boxes[when, 2:]
        full = rng.random() < lerp(0.25, 0.6, d)
        horizontal = rng.random() < 0.5
        speed = rng.uniform(lerp(3.0, 2.0, d), 6.0) * rng.choice([-1, 1])
        along, across = (tw, th) if horizontal else (th, tw)
        if full:
            size_along = along * rng.uniform(1.4, 2.2)
            size_across = across * rng.uniform(1.4, 2.5)
            shift = 0.0
        else:
            size_along = along * rng.uniform(0.5, 1.2)
            size_across = across * rng.uniform(0.8, 2.0)
            shift = rng.choice([-1, 1]) * (size_across + across) / 2 * rng.uniform(0.45, 0.85)
        velocity = np.array([speed, rng.normal(0, 0.3)]) if horizontal else np.array([rng.normal(0, 0.3), speed])
        normal = np.array([0.0, 1.0]) if horizontal else np.array([1.0, 0.0])
        t = np.arange(n)[:, None] - when
        path = centres[when] + normal * shift + velocity * t
        w, h = (size_along, size_across) if horizontal else (size_across, size_along)
        boxes = np.stack([path[:, 0] - w / 2, path[:, 1] - h / 2, np.full(n, w), np.full(n, h)], axis=1)
        family = str(rng.choice(["tiles", "stripes", "clouds", "marble"]))
        palette = random_palette(rng, hue=hue + rng.uniform(-60, 60), saturation=(0.05, 0.5))
        shape = str(rng.choice(["rounded_rect", "rounded_rect", "polygon", "ellipse"]))
        texture = object_texture(rng, family, palette, shape, texture_size)
        layers.append(dict(role="occluder", pyramid=texture_pyramid(texture), boxes=boxes))
    return layers


def _clear_at_start(boxes, target_boxes, frames=INIT_CLEAR_FRAMES, margin=4.0):
    """True when ``boxes`` stay off the target's box (plus margin) in the first ``frames`` frames."""
    a, b = boxes[:frames], target_boxes[:frames]
    apart = ((a[:, 0] > b[:, 0] + b[:, 2] + margin) | (a[:, 0] + a[:, 2] + margin < b[:, 0])
             | (a[:, 1] > b[:, 1] + b[:, 3] + margin) | (a[:, 1] + a[:, 3] + margin < b[:, 1]))
    return bool(apart.all())


# --------------------------------------------------------------------------- camera effects

def _illumination(rng, n, d):
    """Per-frame global gain and gamma: slow drift plus, on hard sequences, a light switch."""
    log_gain = rng.normal(0, 0.08) + smooth_curve(rng, n, lerp(0.08, 0.45, d), 20, 120)
    if rng.random() < 0.6 * d:
        start = int(rng.integers(5, max(6, n - 5)))
        log_gain += rng.choice([-1, 1]) * rng.uniform(0.3, 0.7) * step_curve(n, start, int(rng.integers(1, 4)))
    gamma = np.exp(rng.normal(0, 0.05) + smooth_curve(rng, n, lerp(0.05, 0.35, d), 20, 120))
    return np.exp(log_gain), gamma


def _shadow(rng, n, width, height, d):
    """A moving soft shadow (gain canvas, uint8 with 128 = 1.0) on some sequences, else None."""
    if rng.random() >= lerp(0.1, 0.6, d):
        return None, np.zeros((n, 2), np.int64)
    canvas_w, canvas_h = width + 2 * SHADOW_MARGIN, height + 2 * SHADOW_MARGIN
    field = fractal_noise(rng, canvas_h, canvas_w, octaves=2, base_cells=1.5)
    strength = rng.uniform(0.3, 0.6)
    darkness = np.clip((field - rng.uniform(0.35, 0.6)) * 4.0 + 0.5, 0, 1)
    gain = 1.0 - strength * darkness
    shadow = np.repeat(np.clip(gain * 128.0 + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    offsets = np.stack([SHADOW_MARGIN + smooth_curve(rng, n, SHADOW_MARGIN * 0.95, 40, 160),
                        SHADOW_MARGIN + smooth_curve(rng, n, SHADOW_MARGIN * 0.95, 40, 160)], axis=1)
    return shadow, np.clip(np.round(offsets), 0, 2 * SHADOW_MARGIN).astype(np.int64)


def _noise(rng, n, width, height, sigma):
    noise = sigma * rng.standard_normal((height + NOISE_MARGIN, width + NOISE_MARGIN, 3), dtype=np.float32)
    up = np.clip(noise + 0.5, 0, 255).astype(np.uint8)
    down = np.clip(-noise + 0.5, 0, 255).astype(np.uint8)
    offsets = rng.integers(0, NOISE_MARGIN + 1, (n, 2))
    return up, down, offsets


def plan_scene(rng: np.random.Generator, config: SyntheticConfig, n: int, d: float,
               luma_rng: np.random.Generator | None = None) -> dict:
    """Draw a whole scene; returns the fields of ``SyntheticPlan`` (layers as dicts).

    With ``luma_rng`` the target also differs from the background, and its look-alikes from it,
    in brightness (drawn from that generator, so ``rng``'s draws and the rest of the scene stay).
    """
    width, height, tex = config.width, config.height, config.texture_size
    scene_hue = rng.uniform(0, 360)
    background = background_canvas(rng, width + 2 * CAMERA_MARGIN, height + 2 * CAMERA_MARGIN, d, scene_hue)
    pan = lerp(0.3, 0.95, d) * CAMERA_MARGIN
    camera = np.stack([CAMERA_MARGIN + smooth_curve(rng, n, pan), CAMERA_MARGIN + smooth_curve(rng, n, pan)], axis=1)
    camera = np.clip(np.round(camera), 0, 2 * CAMERA_MARGIN).astype(np.int64)

    size, aspect = _target_sizes(rng, n, width, height, d)
    centres = _target_centres(rng, n, width, height, d, size, aspect)
    target_boxes = boxes_from(centres, size, aspect)
    family = str(rng.choice(TEXTURE_FAMILIES))
    shape = str(rng.choice(SHAPES))
    contrast = rng.choice([-1, 1]) * rng.uniform(lerp(100.0, 35.0, d), 180.0)
    palette = random_palette(rng, hue=scene_hue + contrast, hue_spread=40, saturation=(0.35, 0.9))
    if luma_rng is not None:
        background_luma = float((background.reshape(-1, 3) @ BT601_LUMA).mean()) / 255.0
        palette = set_apart_in_luma(luma_rng, palette, background_luma,
                                    luma_rng.uniform(lerp(0.3, 0.15, d), 0.45))
    mask = shape_mask(rng, shape, tex)
    look = object_texture(rng, family, palette, shape, tex, mask)
    second_look = object_texture(rng, family, palette, shape, tex, mask)
    morph = rng.uniform(0.0, lerp(0.2, 0.6, d)) * step_curve(n, int(rng.integers(0, n)), int(rng.integers(20, 80)))
    target = dict(role="target", pyramid=texture_pyramid(look), boxes=target_boxes,
                  morph_pyramid=texture_pyramid(second_look), morph=morph)

    distractors = _distractors(rng, n, d, target_boxes, family, palette, shape, tex, luma_rng)
    is_behind = rng.random(len(distractors)) < 0.75
    behind = [layer for layer, back in zip(distractors, is_behind) if back]
    in_front = [layer for layer, back in zip(distractors, is_behind) if not back]
    occluders = _occluders(rng, n, d, target_boxes, scene_hue, tex)
    in_front = [layer for layer in in_front + occluders if _clear_at_start(layer["boxes"], target_boxes)]
    layers = behind + [target] + in_front

    gain, gamma = _illumination(rng, n, d)
    shadow, shadow_offsets = _shadow(rng, n, width, height, d)
    noise_up, noise_down, noise_offsets = _noise(rng, n, width, height, config.noise_sigma * rng.uniform(0.5, 1.5))
    blur_exposure = rng.uniform(0.3, 1.0) * lerp(0.5, 1.0, d)
    return dict(background=background, camera=camera, layers=layers, target_index=len(behind),
                gain=gain, gamma=gamma, shadow=shadow, shadow_offsets=shadow_offsets,
                noise_up=noise_up, noise_down=noise_down, noise_offsets=noise_offsets,
                blur_exposure=blur_exposure)
