"""The compressed path: ``image_transport:=compressed`` subscribes to ``<image>/compressed``
(after remapping ``image``, as image_transport does) and tracks JPEG and PNG frames."""

import numpy as np
import pytest

from node_helpers import (
    FRAME_ID,
    box_of,
    compressed_msg,
    iou,
    running_node,
    stamp_ns_of,
    start_targets,
    track_lockstep,
    weights_for_tests,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CAMERA = "/camera/image_raw"


@pytest.fixture(scope="module")
def ros():
    with running_node({"weights": str(weights_for_tests()), "device": "cpu", "lost_threshold": 0.0,
                       "image_transport": "compressed"}, remaps={"image": CAMERA}, image_topic=CAMERA,
                      connect="compressed") as pair:
        yield pair


def _frame(shift=0):
    """A square off the image's centre lines (a flipped or mirrored decode would move it)."""
    frame = np.full((240, 320, 3), 90, np.uint8)
    frame[60:100, 120 + shift:160 + shift] = (230, 200, 30)
    return frame


@pytest.mark.parametrize("image_format", ["jpeg", "png"])
def test_compressed_frames_are_tracked_with_their_header(ros, image_format):
    node, probe = ros
    probe.reset()
    base = {"jpeg": 7_000_000_000, "png": 8_000_000_000}[image_format]

    def publish(rgb, stamp):
        probe.compressed_pub.publish(compressed_msg(rgb, stamp, image_format))

    first = start_targets(probe, _frame(0), base, [("box", (120.0, 60.0, 40.0, 40.0))], _frame(2),
                          base + 33_000_000, publish_image=publish)
    later = track_lockstep(probe, [_frame(4)], [base + 66_000_000], publish_image=publish)

    assert first is not None, node.log_text()
    assert later[0] is not None
    assert stamp_ns_of(later[0].header) == base + 66_000_000 and later[0].header.frame_id == FRAME_ID
    assert [d.id for d in later[0].detections] == ["box"]
    assert iou(box_of(later[0].detections[0]), (124.0, 60.0, 40.0, 40.0)) > 0.7


def test_the_raw_topic_is_not_subscribed_in_compressed_mode(ros):
    _, probe = ros
    assert probe.image_pub.get_subscription_count() == 0
