"""Search and template crops reproduce the official `sample_target`, also at the image borders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fartrack_ros.tracker.cropping import crop_geometry, normalize_patches, sample_target
from tracker_helpers import TRACE_PATH

needs_trace = pytest.mark.skipif(not TRACE_PATH.is_file(), reason="official fixtures are not beside the repo")


@pytest.fixture(scope="module")
def trace() -> dict:
    return dict(np.load(TRACE_PATH))


@needs_trace
def test_search_crops_match_official_geometry_and_pixels(trace):
    for i in range(39):
        patch, geom = sample_target(trace["frames"][i + 1], trace["search_crop_box"][i], 4.0, 224)
        assert geom.crop_sz == trace["search_crop_sz"][i]
        assert (geom.x1, geom.y1) == tuple(trace["search_crop_x1y1"][i])
        assert geom.resize_factor == trace["search_resize_factor"][i]
        assert int(patch.astype(np.int64).sum()) == trace["search_patch_sum"][i]
        if i < 3:
            np.testing.assert_array_equal(patch, trace["search_patches_f1_3"][i])


@needs_trace
def test_template_crops_match_official_geometry_and_pixels(trace):
    for k in range(40):
        patch, geom = sample_target(trace["frames"][k], trace["template_crop_box"][k], 2.0, 112)
        assert geom.crop_sz == trace["template_crop_sz"][k]
        assert (geom.x1, geom.y1) == tuple(trace["template_crop_x1y1"][k])
        assert geom.resize_factor == trace["template_resize_factor"][k]
        assert int(patch.astype(np.int64).sum()) == trace["template_patch_sum"][k]
        if k < 4:
            np.testing.assert_array_equal(patch, trace["template_patches_0_3"][k])


@needs_trace
def test_normalized_inputs_equal_official_tensors_bit_for_bit(trace):
    search, _ = sample_target(trace["frames"][1], trace["search_crop_box"][0], 4.0, 224)
    template, _ = sample_target(trace["frames"][0], trace["init_box"], 2.0, 112)
    assert torch.equal(normalize_patches(search[None]), torch.from_numpy(trace["search_tensor_f1"]))
    assert torch.equal(normalize_patches(template[None]), torch.from_numpy(trace["template_tensor_init"]))


def test_crop_corner_rounds_half_to_even():
    # README: template 2 of the trace, y1 = 235 - 29/2 = 220.5 must give 220, not 221
    geom = crop_geometry([300.0, 230.0, 20.37112331, 10.0], 2.0, 112)
    assert geom.crop_sz == 29
    assert geom.y1 == 220


def test_crop_reaching_right_and_bottom_border_drops_last_column_and_row():
    frame = np.full((20, 30, 3), 200, np.uint8)
    # crop side 10, top-left (20, 10): it reaches the last column (29) and row (19)
    patch, geom = sample_target(frame, [22.5, 12.5, 5.0, 5.0], 2.0, 10)
    assert (geom.x1, geom.y1, geom.crop_sz) == (20, 10, 10)
    assert (patch[:, -1] == 0).all() and (patch[-1, :] == 0).all()
    assert (patch[:-1, :-1] == 200).all()


def test_crop_at_top_left_border_is_zero_padded():
    frame = np.full((40, 40, 3), 90, np.uint8)
    patch, geom = sample_target(frame, [0.0, 0.0, 4.0, 4.0], 4.0, 16)
    assert (geom.x1, geom.y1, geom.crop_sz) == (-6, -6, 16)
    assert (patch[:6] == 0).all() and (patch[:, :6] == 0).all()
    assert (patch[6:, 6:] == 90).all()


def test_box_larger_than_image_gives_padded_crop_of_the_whole_image():
    frame = np.full((30, 40, 3), 120, np.uint8)
    patch, geom = sample_target(frame, [-10.0, -10.0, 60.0, 50.0], 2.0, 64)
    assert geom.crop_sz == int(np.ceil(np.sqrt(60 * 50) * 2))
    assert patch.shape == (64, 64, 3)
    assert patch.max() == 120 and patch.min() == 0  # image inside, zero padding around


def test_tiny_box_gives_full_size_patch():
    frame = np.arange(50 * 50 * 3, dtype=np.uint8).reshape(50, 50, 3)
    patch, geom = sample_target(frame, [25.0, 25.0, 0.3, 0.2], 2.0, 112)
    assert geom.crop_sz == 1
    assert patch.shape == (112, 112, 3)


def test_crop_entirely_outside_the_image_is_all_zero():
    frame = np.full((30, 40, 3), 255, np.uint8)
    patch, _ = sample_target(frame, [500.0, 500.0, 10.0, 10.0], 2.0, 32)
    assert patch.shape == (32, 32, 3) and not patch.any()


def test_empty_box_is_rejected_with_its_value():
    with pytest.raises(ValueError, match="too small"):
        crop_geometry([5.0, 5.0, 0.0, 10.0], 2.0, 112)
