"""Tracker runners: one interface for OpenCV CSRT/KCF and our FARTrack tracker."""

import numpy as np
import pytest
import torch

from fartrack_ros.data.synthetic import SyntheticConfig, generate_sequence
from fartrack_ros.evaluation.runners import FARTrackRunner, OpenCVRunner, clipped_rect, make_runner, run_sequence
from fartrack_ros.model import FARTrack, ModelConfig

torch.set_num_threads(1)

TINY_TEST_NET = ModelConfig(embed_dim=32, depth=1, extension_depth=0, num_heads=2, patch_size=8,
                            template_size=32, search_size=64, name="eval-test")


@pytest.fixture(scope="module")
def sequence():
    return generate_sequence(1_000_003, SyntheticConfig(min_length=6, max_length=6))


@pytest.mark.parametrize("name", ["csrt", "kcf"])
def test_opencv_runner_returns_one_box_per_frame_starting_with_the_init_box(sequence, name):
    boxes, fps = run_sequence(make_runner(name), sequence)
    assert boxes.shape == (len(sequence), 4)
    np.testing.assert_array_equal(boxes[0], sequence.boxes[0])
    assert np.isfinite(boxes).all() and (boxes[1:, 2:] > 0).all()
    assert fps > 0


def test_run_sequence_stops_at_max_frames(sequence):
    boxes, _ = run_sequence(make_runner("kcf"), sequence, max_frames=3)
    assert boxes.shape == (3, 4)


def test_fartrack_runner_adapts_the_tracker_to_init_and_update(sequence):
    runner = FARTrackRunner(model=FARTrack(TINY_TEST_NET).eval())
    boxes, _ = run_sequence(runner, sequence, max_frames=3)
    assert boxes.shape == (3, 4) and np.isfinite(boxes).all()
    runner.init(sequence.frame(0), sequence.boxes[0])  # a second sequence restarts from scratch
    assert runner.update(sequence.frame(1)).shape == (4,)


def test_fartrack_runner_reports_a_missing_weights_file():
    with pytest.raises(ValueError, match="weights file not found"):
        make_runner("fartrack", weights="/nonexistent/model.pth")


def test_unknown_names_are_rejected_with_the_choices():
    with pytest.raises(ValueError, match="choose from fartrack, csrt, kcf"):
        make_runner("mosse")
    with pytest.raises(ValueError, match="unknown OpenCV tracker 'boosting'"):
        OpenCVRunner("boosting")


@pytest.mark.parametrize("box,rect", [
    ((10.4, 20.6, 30.0, 40.0), (10, 21, 30, 40)),      # inside: rounded
    ((-50.0, -10.0, 100.0, 30.0), (0, 0, 50, 20)),     # left and top: the visible part only
    ((300.0, 230.0, 50.0, 50.0), (300, 230, 20, 10)),  # right and bottom
    ((400.0, 300.0, 10.0, 10.0), (319, 239, 1, 1)),    # wholly outside: a pixel at the corner
])
def test_opencv_trackers_start_from_the_part_of_the_box_inside_the_image(box, rect):
    assert clipped_rect(box, 240, 320) == rect


def test_the_description_names_the_precision_that_runs_not_the_one_asked_for():
    from fartrack_ros.model.precision import precision_for_device

    runs, _ = precision_for_device("float16", "cpu")  # bfloat16 or float32, as this CPU does it
    runner = FARTrackRunner(device="cpu", precision="float16")

    assert runner.description.endswith(f"torch {runs})") and runs != "float16"
