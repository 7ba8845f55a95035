"""From logits to image boxes with the official arithmetic, and the 10 px clipping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fartrack_ros.model import ModelConfig, decode_boxes, xyxy_to_cxcywh
from fartrack_ros.tracker.box_mapping import clip_box, crop_px_boxes, map_box_back
from tracker_helpers import TRACE_PATH

needs_trace = pytest.mark.skipif(not TRACE_PATH.is_file(), reason="official fixtures are not beside the repo")


@needs_trace
def test_logits_decode_to_the_official_boxes_in_every_frame():
    trace = np.load(TRACE_PATH)
    boxes = xyxy_to_cxcywh(decode_boxes(torch.from_numpy(trace["logits"]), ModelConfig()))
    np.testing.assert_allclose(boxes.numpy(), trace["box_cxcywh_norm"], atol=1e-5, rtol=0)
    # from the official normalised boxes on, every step is exact
    crop_px = crop_px_boxes(torch.from_numpy(trace["box_cxcywh_norm"]), 224, trace["search_resize_factor"])
    np.testing.assert_array_equal(np.array(crop_px), trace["pred_crop_px"])
    for i in range(39):
        mapped = map_box_back(crop_px[i], trace["prev_state"][i], 224, trace["search_resize_factor"][i])
        np.testing.assert_array_equal(mapped, trace["mapped_unclipped"][i])
        np.testing.assert_array_equal(clip_box(mapped, 240, 320, margin=10), trace["pred_boxes"][i + 1])


def test_box_centred_in_the_search_crop_maps_to_the_previous_centre():
    prev = [100.0, 50.0, 40.0, 20.0]  # centre (120, 60)
    factor = 224 / 120  # crop side 120 px
    mapped = map_box_back([112 / factor, 112 / factor, 40.0, 20.0], prev, 224, factor)
    np.testing.assert_allclose(mapped, prev)


def test_clip_keeps_ten_pixels_of_a_box_leaving_right_and_bottom():
    assert clip_box([315.0, 235.0, 30.0, 30.0], 240, 320) == [310.0, 230.0, 10.0, 10.0]


def test_clip_box_left_of_image_keeps_margin_width():
    assert clip_box([-50.0, 20.0, 30.0, 40.0], 240, 320) == [0.0, 20.0, 10.0, 40.0]


def test_clip_box_larger_than_image_becomes_the_image():
    assert clip_box([-10.0, -10.0, 400.0, 300.0], 240, 320) == [0.0, 0.0, 320.0, 240.0]


def test_clip_negative_size_box_gets_the_minimum_size():
    assert clip_box([50.0, 60.0, -5.0, -3.0], 240, 320) == [50.0, 60.0, 10.0, 10.0]


@pytest.mark.parametrize("height,width", [(8, 8), (40, 5), (5, 40)])
def test_clip_box_stays_inside_a_frame_smaller_than_the_margin(height, width):
    for box in ([-3.0, -3.0, 4.0, 4.0], [30.0, 30.0, 20.0, 20.0], [1.0, 1.0, 2.0, 2.0]):
        x, y, w, h = clip_box(box, height, width, margin=10)
        assert 0 <= x and 0 <= y and x + w <= width and y + h <= height
        assert w >= min(10, width) and h >= min(10, height)
