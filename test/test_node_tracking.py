"""The node tracks: with default parameters, the boxes it publishes for a held-out synthetic
sequence are the boxes the library's Tracker gives for the same frames, and (with the bundled
model) they overlap the ground truth.

Frames go in lock-step (the next after the previous one's detections), so no frame is dropped
and the result does not depend on the machine's speed. The images are bgr8, so the conversion
is part of what is checked; cameras' other raw encodings (Bayer, YUV) are tracked as well.
"""


import numpy as np
import pytest

from node_helpers import (
    HELD_OUT_SEED,
    assert_tracks_as_the_library,
    box_of,
    ground_truth_sequence,
    iou,
    needs_bundled_model,
    running_node,
    track_sequence,
    weights_for_tests,
)
from robustness_helpers import wait_for_log
from tracker_helpers import DEVICES

pytestmark = [pytest.mark.ros, pytest.mark.slow]

FRAMES = 30
SEED = HELD_OUT_SEED
MIN_AO = 0.5
# a scene drawn for a mono camera where a colour-only model loses the target in grey (mean IoU
# 0.08 in the library's Tracker; the bundled model 0.78)
MONO_SEED = 1_000_006


@pytest.fixture(scope="module", params=DEVICES)
def ros(request):
    # default parameters on each device; the bundled weights once trained (the random fixture until then)
    with running_node({"device": request.param, "weights": str(weights_for_tests())}) as pair:
        yield pair


def test_the_node_publishes_what_the_library_tracker_computes(ros):
    node, probe = ros
    assert_tracks_as_the_library(probe, 3_000_000_000_000)


@needs_bundled_model
def test_published_boxes_follow_the_ground_truth(ros):
    node, probe = ros
    frames, boxes = ground_truth_sequence(FRAMES, SEED, difficulty=0.1)

    results = track_sequence(probe, frames, boxes[0], 2_000_000_000_000)

    ious = [iou(box_of(r.detections[0]), boxes[i]) if r.detections else 0.0
            for i, r in enumerate(results, start=1)]
    ao = float(np.mean(ious))
    assert ao >= MIN_AO, f"AO {ao:.3f} over {len(ious)} frames; IoU per frame {np.round(ious, 2).tolist()}"


@needs_bundled_model
@pytest.mark.parametrize("encoding", ["bayer_rggb8", "yuyv", "nv12", "bgra16"])
def test_cameras_raw_encodings_are_tracked(ros, encoding):
    node, probe = ros
    frames, boxes = ground_truth_sequence(12, SEED, difficulty=0.1)

    results = track_sequence(probe, frames, boxes[0], 4_000_000_000_000, encoding=encoding)

    ious = [iou(box_of(r.detections[0]), boxes[i]) if r.detections else 0.0
            for i, r in enumerate(results, start=1)]
    assert np.mean(ious) >= MIN_AO, f"{encoding}: IoU per frame {np.round(ious, 2).tolist()}"


@needs_bundled_model
def test_a_mono_camera_is_tracked(ros):
    node, probe = ros
    frames, boxes = ground_truth_sequence(FRAMES, MONO_SEED, difficulty=0.1, luma_contrast=True)

    results = track_sequence(probe, frames, boxes[0], 6_000_000_000_000, encoding="mono8")

    ious = [iou(box_of(r.detections[0]), boxes[i]) if r.detections else 0.0
            for i, r in enumerate(results, start=1)]
    assert np.mean(ious) >= MIN_AO, f"IoU per frame {np.round(ious, 2).tolist()}"


@needs_bundled_model
def test_a_camera_switching_resolution_is_followed_with_a_warning(ros):
    import cv2

    node, probe = ros
    frames, boxes = ground_truth_sequence(20, SEED, difficulty=0.1)
    switch_at = 8
    for k in range(switch_at, len(frames)):  # the same view at twice the resolution
        frames[k] = cv2.resize(frames[k], (640, 480), interpolation=cv2.INTER_LINEAR)
        boxes[k] = np.asarray(boxes[k], dtype=float) * 2
    since = len(node.log_text())

    results = track_sequence(probe, frames, boxes[0], 5_000_000_000_000)

    ious = [iou(box_of(r.detections[0]), boxes[i]) if r.detections else 0.0
            for i, r in enumerate(results, start=1)]
    assert np.mean(ious[switch_at - 1:]) >= MIN_AO, f"IoU per frame {np.round(ious, 2).tolist()}"
    assert wait_for_log(node, since, "image size changed from 320x240 to 640x480: the boxes of target are scaled")
