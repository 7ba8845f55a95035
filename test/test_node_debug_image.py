"""The debug image's labels: each readable when targets are close (a plate never covers another)."""

from __future__ import annotations

import numpy as np
import pytest

from fartrack_ros.node_messages import debug_image_msg, label_plate
from fartrack_ros.tracker.tracker import TrackResult, TrackState

pytestmark = pytest.mark.ros  # node_messages builds ROS messages


def _overlap(a, b) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def test_a_label_that_would_cover_another_moves_below_it():
    first = label_plate([], 50, 40, 60, 10, 4, (240, 320))
    second = label_plate([first], 55, 42, 60, 10, 4, (240, 320))
    assert not _overlap(first, second) and second[1] > first[1]
    apart = label_plate([first], 150, 40, 60, 10, 4, (240, 320))
    assert apart == label_plate([], 150, 40, 60, 10, 4, (240, 320))  # nothing in the way: where it belongs


@pytest.mark.parametrize("x", [285, 319, -30])
def test_a_label_stays_inside_the_image_for_a_box_at_its_edge(x):
    x0, _, x1, _ = label_plate([], x, 40, 60, 10, 4, (240, 320))
    assert 0 <= x0 and x1 <= 319 and x1 - x0 == 62


def _plate_rows(names) -> int:
    """Rows of the debug image holding a label plate (black) near the targets' boxes, all on one spot."""
    from std_msgs.msg import Header

    frame = np.full((240, 320, 3), 128, np.uint8)
    results = [TrackResult(name, (100.0, 100.0, 40.0, 40.0), 0.5, TrackState.TRACKING, 1) for name in names]
    drawn = np.frombuffer(bytes(debug_image_msg(Header(), frame, results).data), np.uint8).reshape(240, 320, 3)
    return int((drawn[:, 95:160] == 0).all(axis=-1).any(axis=1).sum())


def test_labels_of_targets_on_one_spot_are_both_drawn():
    assert _plate_rows(["a", "b"]) == 2 * _plate_rows(["a"])  # two plates, one below the other


def test_boxes_are_drawn_in_the_message_and_never_on_the_source_frame():
    from std_msgs.msg import Header

    frame = np.full((240, 320, 3), 128, np.uint8)
    result = TrackResult("t", (100.0, 100.0, 40.0, 40.0), 0.5, TrackState.TRACKING, 1)
    msg = debug_image_msg(Header(frame_id="cam"), frame, [result])

    drawn = np.frombuffer(bytes(msg.data), np.uint8).reshape(240, 320, 3)
    assert (frame == 128).all()  # the tracker's frame (an init may convert it again) is untouched
    assert (drawn[100, 100:141] != 128).any(axis=-1).all()  # the box's top edge
    assert (msg.encoding, msg.step, msg.header.frame_id) == ("rgb8", 960, "cam")
