"""The synthetic generator: determinism, geometry of the ground truth, and that every hardness
feature actually occurs in a set (checked on plans, which render no frame, so it is fast)."""

import numpy as np
import pytest

from fartrack_ros.data.synthetic import (ABSENT_VISIBLE_RATIO, EVAL_SEED_BASE, TRAIN_SEED_RANGE, SyntheticConfig,
                                         generate_sequence, plan_sequence)

SHORT = SyntheticConfig(min_length=24, max_length=24)
SET_SEEDS = range(EVAL_SEED_BASE, EVAL_SEED_BASE + 24)


@pytest.fixture(scope="module")
def plans():
    return [plan_sequence(seed) for seed in SET_SEEDS]


def test_same_seed_gives_bit_identical_frames_boxes_and_flags():
    first, second = generate_sequence(7, SHORT), generate_sequence(7, SHORT)
    assert all(np.array_equal(a, b) for a, b in zip(first.frames, second.frames))
    assert np.array_equal(first.boxes, second.boxes)
    assert np.array_equal(first.absent, second.absent)
    assert np.array_equal(first.visible_ratio, second.visible_ratio)


def test_different_seeds_give_different_sequences():
    assert not np.array_equal(generate_sequence(7, SHORT).frame(0), generate_sequence(8, SHORT).frame(0))


def test_lazy_frames_equal_rendered_frames():
    eager, lazy = generate_sequence(11, SHORT), generate_sequence(11, SHORT, lazy=True)
    for index in (0, 13, len(eager) - 1):
        assert np.array_equal(eager.frame(index), lazy.frame(index))


def test_frames_are_rgb_uint8_of_the_configured_size_and_length():
    config = SyntheticConfig(width=200, height=150, min_length=10, max_length=12)
    sequence = generate_sequence(3, config)
    assert 10 <= len(sequence) <= 12
    assert sequence.frame(0).shape == (150, 200, 3) and sequence.frame(0).dtype == np.uint8


def test_target_is_fully_visible_in_the_first_frames(plans):
    for plan in plans:
        assert plan.visible_ratio[:5].min() > 0.99, plan.seed
        assert not plan.absent[:5].any()


def test_present_boxes_lie_inside_the_image_and_absent_out_of_view_boxes_are_empty(plans):
    for plan in plans:
        boxes, present = plan.boxes, ~plan.absent
        assert (boxes[present, :2] >= 0).all()
        assert (boxes[present, 0] + boxes[present, 2] <= plan.config.width + 1e-6).all()
        assert (boxes[present, 1] + boxes[present, 3] <= plan.config.height + 1e-6).all()
        assert (boxes[plan.out_of_view] == 0).all()


def test_absent_means_less_than_the_threshold_visible(plans):
    for plan in plans:
        assert np.array_equal(plan.absent, plan.visible_ratio < ABSENT_VISIBLE_RATIO)
        assert not (plan.out_of_view & plan.full_occlusion).any()


@pytest.mark.parametrize("feature", ["fast_motion", "motion_blur", "distractor_near", "partial_occlusion",
                                     "illumination_change", "scale_change", "aspect_change"])
def test_every_hardness_feature_occurs_in_a_set(plans, feature):
    assert sum(bool(plan.attributes[feature].any()) for plan in plans) >= 2


def test_full_occlusion_and_out_of_view_occur_but_stay_a_minority_of_frames(plans):
    assert sum(plan.full_occlusion.any() for plan in plans) >= 2
    assert sum(plan.out_of_view.any() for plan in plans) >= 2
    absent = np.concatenate([plan.absent for plan in plans])
    assert 0.0 < absent.mean() < 0.15


def test_a_set_mixes_easy_and_hard_sequences(plans):
    difficulty = [plan.difficulty for plan in plans]
    assert min(difficulty) < 0.3 and max(difficulty) > 0.7


def test_distractors_look_alike_but_differ_from_the_target(plans):
    plan = next(p for p in plans if any(layer.role == "distractor" for layer in p.layers))
    target = plan.target.pyramid[0]
    distractor = next(layer for layer in plan.layers if layer.role == "distractor").pyramid[0]
    assert target.shape == distractor.shape
    assert np.abs(target.astype(int) - distractor.astype(int)).mean() > 5


def test_held_out_seeds_are_outside_the_training_range():
    assert EVAL_SEED_BASE not in TRAIN_SEED_RANGE and EVAL_SEED_BASE >= TRAIN_SEED_RANGE.stop


def test_config_rejects_bad_values_with_the_value_in_the_message():
    with pytest.raises(ValueError, match="1.5"):
        SyntheticConfig(difficulty=1.5)
    with pytest.raises(ValueError, match="10..5"):
        SyntheticConfig(min_length=10, max_length=5)


def test_a_grey_view_shows_each_frame_as_the_node_decodes_a_mono8_image_of_it():
    from fartrack_ros.image_conversion import raw_to_rgb, rgb_to_raw

    colour = generate_sequence(11, SHORT, lazy=True)
    grey = colour.as_grey()
    frame = colour.frame(5)
    data, step = rgb_to_raw(frame, "mono8")
    from_camera = raw_to_rgb(data, frame.shape[0], frame.shape[1], step, "mono8")
    seen = grey.frame(5)
    assert seen.shape == frame.shape and seen.dtype == np.uint8
    assert np.abs(seen.astype(int) - from_camera).max() <= 1  # OpenCV's integer luma vs the float one
    assert np.array_equal(grey.boxes, colour.boxes) and not colour.grey  # the colour sequence is untouched
    assert np.array_equal(colour.frame(5), frame)


def _texture_luma(layer) -> float:
    """Mean BT.601 luma of a layer's largest texture over its own shape, in [0, 1]."""
    texture = layer.pyramid[0].astype(np.float64)
    alpha = texture[..., 3] / 255.0
    return float(((texture[..., :3] @ [0.299, 0.587, 0.114]) / 255.0 * alpha).sum() / alpha.sum())


def test_scenes_for_a_mono_camera_set_the_target_apart_in_brightness_and_keep_everything_else():
    """In grey only brightness, pattern and shape are left: with ``luma_contrast`` the target's
    brightness differs from the background's and its look-alikes' from its own; the motion, the
    objects and the rest of the scene are the same seed's."""
    mono = SyntheticConfig(luma_contrast=True)
    target_gaps, distractor_gaps, default_gaps = [], [], []
    for seed in SET_SEEDS:
        colour, grey = plan_sequence(seed), plan_sequence(seed, mono)
        assert np.array_equal(colour.boxes, grey.boxes) and np.array_equal(colour.background, grey.background)
        assert [layer.role for layer in colour.layers] == [layer.role for layer in grey.layers]
        background = float((grey.background.reshape(-1, 3) @ [0.299, 0.587, 0.114]).mean()) / 255.0
        target = _texture_luma(grey.target)
        target_gaps.append(abs(target - background))
        default_gaps.append(abs(_texture_luma(colour.target) - background))
        distractor_gaps += [abs(_texture_luma(layer) - target) for layer in grey.layers if layer.role == "distractor"]
    assert min(target_gaps) > 0.12 and np.median(target_gaps) > 2 * np.median(default_gaps)
    assert distractor_gaps and min(distractor_gaps) > 0.06


@pytest.mark.parametrize("luma", [0.0, 0.1, 0.5, 0.93, 1.0])
def test_a_palette_brought_to_a_luma_has_that_mean_luma_and_keeps_its_order(luma):
    from fartrack_ros.data.textures import palette_luma, random_palette, with_luma

    palette = random_palette(np.random.default_rng(5))
    moved = with_luma(palette, luma)
    assert palette_luma(moved) == pytest.approx(luma, abs=1e-5)
    assert moved.min() >= 0.0 and moved.max() <= 1.0
    assert np.all(np.diff(moved.mean(axis=1)) >= -1e-6)  # still dark to light


def test_brightness_outside_the_range_or_nan_is_refused():
    from fartrack_ros.data.textures import random_palette, set_apart_in_luma, with_luma

    palette = random_palette(np.random.default_rng(5))
    for luma in (1.5, -0.2, float("nan")):
        with pytest.raises(ValueError, match="luma"):
            with_luma(palette, luma)
    with pytest.raises(ValueError, match="luma"):
        set_apart_in_luma(np.random.default_rng(0), palette, float("nan"), 0.2)
