"""The node tracks: with the bundled model and default parameters, the boxes it publishes for a
held-out synthetic sequence overlap the ground truth.

Frames go in lock-step (the next after the previous one's detections), so no frame is dropped
and the result does not depend on the machine's speed. The images are bgr8, so the conversion
is part of what is checked.
"""

import numpy as np
import pytest

from node_helpers import (
    DEFAULT_WEIGHTS,
    FRAME_ID,
    NodeProcess,
    Probe,
    box_of,
    ground_truth_sequence,
    image_msg,
    iou,
    pick_domain_id,
    stamp_ns_of,
    start_targets,
    track_lockstep,
)

pytestmark = [
    pytest.mark.ros,
    pytest.mark.slow,
    pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(),
                       reason=f"the bundled model {DEFAULT_WEIGHTS.name} is not trained yet"),
]

FRAMES = 30
SEED = 1_000_003  # held-out range (EVAL_SEED_BASE and up)
MIN_AO = 0.5


@pytest.fixture(scope="module")
def ros():
    domain_id = pick_domain_id()
    node = NodeProcess(domain_id, parameters={"device": "cpu"})  # bundled weights, default parameters
    probe = None
    try:
        probe = Probe(domain_id)
        probe.wait_until_connected(node)
        yield node, probe
    finally:
        if probe is not None:
            probe.close()
        code = node.stop()
        assert code == 0, f"fartrack_node exit code {code}:\n{node.log_text()}"


def test_published_boxes_follow_the_ground_truth(ros):
    node, probe = ros
    frames, boxes = ground_truth_sequence(FRAMES, SEED, difficulty=0.1)
    stamps = [2_000_000_000_000 + i * 50_000_000 for i in range(FRAMES)]

    def publish(rgb, stamp):
        probe.image_pub.publish(image_msg(rgb, stamp, encoding="bgr8"))

    first = start_targets(probe, frames[0], stamps[0], [("target", tuple(boxes[0]))], frames[1], stamps[1],
                          publish_image=publish)
    rest = track_lockstep(probe, frames[2:], stamps[2:], publish_image=publish)
    results = [first, *rest]

    assert all(r is not None for r in results), node.log_text()
    ious = []
    for index, detections in enumerate(results, start=1):
        assert stamp_ns_of(detections.header) == stamps[index] and detections.header.frame_id == FRAME_ID
        ids = [d.id for d in detections.detections]
        assert ids in (["target"], []), ids  # [] only while LOST
        ious.append(iou(box_of(detections.detections[0]), boxes[index]) if ids else 0.0)
    ao = float(np.mean(ious))
    assert ao >= MIN_AO, f"AO {ao:.3f} over {len(ious)} frames; IoU per frame {np.round(ious, 2).tolist()}"
