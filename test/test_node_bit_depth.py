"""A 12-bit mono camera (data in the low 12 bits of mono16 samples) over rclpy: tracked by a node
with ``image_bit_depth: 12``. Read as 16 bits such images are nearly black (the in-process
tests in test_node_init_frames.py check the warnings); a module of its own, as the node's
parameter is read at activation and the other modules' nodes share the topics."""

import numpy as np
import pytest

from node_helpers import (box_of, ground_truth_sequence, iou, needs_bundled_model, running_node, track_sequence,
                          weights_for_tests)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

MONO_SEED = 1_000_006  # a held-out scene drawn for a mono camera
MIN_AO = 0.5


@needs_bundled_model
def test_a_12_bit_mono_camera_is_tracked_with_image_bit_depth_12():
    frames, boxes = ground_truth_sequence(12, MONO_SEED, difficulty=0.1, luma_contrast=True)

    with running_node({"device": "cpu", "weights": str(weights_for_tests()), "image_bit_depth": 12}) as (_, probe):
        results = track_sequence(probe, frames, boxes[0], 7_000_000_000_000, encoding="mono16", bit_depth=12)

    ious = [iou(box_of(r.detections[0]), boxes[i]) if r.detections else 0.0
            for i, r in enumerate(results, start=1)]
    assert np.mean(ious) >= MIN_AO, f"IoU per frame {np.round(ious, 2).tolist()}"
