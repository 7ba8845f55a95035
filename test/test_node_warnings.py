"""The node's warnings are rate limited: a repeat of a warning at most every few seconds, and a
few warnings differing only in the target ids they name, so each user action is logged while a
client sending many bad requests cannot flood the log."""

from __future__ import annotations

import pytest


class _RecordingLogger:
    def __init__(self):
        self.lines: list[str] = []

    def warning(self, message, **_):
        self.lines.append(message)


def test_warnings_naming_different_ids_are_logged_a_few_per_period(rclpy_context):
    from fartrack_ros.diagnostics import WarningThrottle
    from fartrack_ros.node import FarTrackNode

    node = FarTrackNode(context=rclpy_context, managed=True)
    try:
        log = _RecordingLogger()
        node.get_logger = lambda: log
        for k in range(200):
            node._warn(f"remove ignored: no target 'uuid-{k:04x}' (tracked: ['a', 'b'])")
        node._warn("init ignored: the node is not configured")
        burst = WarningThrottle.FAMILY_BURST
        assert log.lines == [f"remove ignored: no target 'uuid-{k:04x}' (tracked: ['a', 'b'])"
                             for k in range(burst)] + ["init ignored: the node is not configured"]
    finally:
        node.destroy_node()


@pytest.fixture
def logged_node(active_node):
    """An activated node in this process whose log lines are kept: (node, log)."""
    log = _RecordingLogger()
    active_node.get_logger = lambda: log
    return active_node, log


def _camera(node_name: str = "camera"):
    """A best-effort image publisher as the graph describes it."""
    from types import SimpleNamespace

    from rclpy.qos import QoSReliabilityPolicy

    return SimpleNamespace(node_name=node_name,
                           qos_profile=SimpleNamespace(reliability=QoSReliabilityPolicy.BEST_EFFORT))


def test_the_silent_camera_hint_counts_from_when_a_publisher_appeared(logged_node):
    import time

    from rclpy.qos import QoSReliabilityPolicy

    from fartrack_ros.subscriptions import SILENT_PUBLISHERS_S

    node, log = logged_node
    images = node._images
    images.last_image_s -= 10.0  # subscribed long ago, nothing published since
    camera = _camera()
    images.publishers = lambda: [camera]
    images.reliability = QoSReliabilityPolicy.BEST_EFFORT

    node._check_publishers()  # the camera has just appeared: no hint yet
    assert log.lines == []
    images.publishers_since_s -= SILENT_PUBLISHERS_S  # and has sent nothing since
    node._check_publishers()
    assert len(log.lines) == 1 and "but no image received for 3 s" in log.lines[0]

    images.note_image(time.monotonic() - SILENT_PUBLISHERS_S)  # a stray frame through the lossy link, then silence
    node._check_publishers()
    assert len(log.lines) == 1, log.lines  # told once while that camera lasts

    images.publishers = lambda: []  # the camera restarts, and is silent again
    node._check_publishers()
    images.publishers = lambda: [camera]
    node._check_publishers()
    images.publishers_since_s -= SILENT_PUBLISHERS_S
    node._check_publishers()
    assert len(log.lines) == 2 and "but no image received for 3 s" in log.lines[1], log.lines


def test_no_publisher_on_the_image_topic_is_told_once_naming_where_images_are_published(logged_node, rclpy_context):
    import time

    import rclpy
    from sensor_msgs.msg import Image

    node, log = logged_node
    camera = rclpy.create_node("camera", context=rclpy_context)
    try:
        camera.create_publisher(Image, "/camera/image_raw", 1)  # a remap forgotten: the node listens on /image
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and node.count_publishers("/camera/image_raw") == 0:
            time.sleep(0.05)
        node._images.last_image_s -= 5.0  # a camera driver may take a few seconds to start: no hint yet
        node._check_publishers()
        assert log.lines == []
        node._images.last_image_s -= 5.0  # 10 s and still no publisher: where are the images?

        node._check_publishers()
        node._check_publishers()
    finally:
        camera.destroy_node()

    assert len(log.lines) == 1, log.lines
    assert log.lines[0].startswith("no image on /image: no publisher there for 10 s; images are "
                                   "published on /camera/image_raw (Image): remap image:= "), log.lines


def test_a_camera_that_appears_after_the_no_publisher_hint_still_gets_the_silent_camera_hint(logged_node):
    from rclpy.qos import QoSReliabilityPolicy

    from fartrack_ros.subscriptions import SILENT_PUBLISHERS_S

    node, log = logged_node
    images = node._images
    images.last_image_s -= 10.0
    images.publishers = lambda: []
    node._check_publishers()  # the node started before the camera
    assert len(log.lines) == 1 and "no publisher there" in log.lines[0], log.lines

    images.publishers = lambda: [_camera()]  # a best-effort camera appears and nothing arrives
    images.reliability = QoSReliabilityPolicy.BEST_EFFORT
    node._check_publishers()
    images.publishers_since_s -= SILENT_PUBLISHERS_S
    node._check_publishers()

    assert len(log.lines) == 2 and "but no image received for 3 s" in log.lines[1], log.lines


def test_a_best_effort_init_publisher_is_told_once_that_it_cannot_reach_the_node(logged_node, rclpy_context):
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from vision_msgs.msg import Detection2DArray

    node, log = logged_node
    detector = rclpy.create_node("detector", context=rclpy_context)
    try:
        node._check_publishers()
        assert log.lines == []
        detector.create_publisher(Detection2DArray, "/fartrack/init", qos_profile_sensor_data)

        node._check_publishers()
        node._check_publishers()

        assert len(log.lines) == 1, log.lines
        assert "best-effort publisher(s) on /fartrack/init (node detector)" in log.lines[0]
    finally:
        detector.destroy_node()


def test_the_best_effort_publisher_warning_waits_a_check_for_the_node_s_name():
    from types import SimpleNamespace

    from rclpy.qos import QoSReliabilityPolicy

    from fartrack_ros.subscriptions import UNKNOWN_NODE, ControlPublisherWatch

    log = _RecordingLogger()
    publisher = SimpleNamespace(node_name=UNKNOWN_NODE,
                                qos_profile=SimpleNamespace(reliability=QoSReliabilityPolicy.BEST_EFFORT))
    node = SimpleNamespace(get_logger=lambda: log, get_publishers_info_by_topic=lambda topic: [publisher])
    watch = ControlPublisherWatch(node)
    watch.subscriptions = [SimpleNamespace(topic_name="/fartrack/init")]

    watch.check()  # discovery has not named the publisher's node yet
    assert log.lines == []
    publisher.node_name = "detector"
    watch.check()
    watch.check()

    assert len(log.lines) == 1 and "on /fartrack/init (node detector)" in log.lines[0], log.lines


def test_several_publishers_on_the_image_topic_are_told_once_while_they_last(logged_node):
    from rclpy.qos import QoSReliabilityPolicy

    node, log = logged_node
    cameras = [_camera("left_camera"), _camera("right_camera")]
    current = list(cameras)
    node._images.publishers = lambda: current
    node._images.reliability = QoSReliabilityPolicy.BEST_EFFORT

    node._check_publishers()
    node._check_publishers()
    current[:] = cameras[:1]
    node._check_publishers()
    current[:] = cameras
    node._check_publishers()

    several = [line for line in log.lines if "publishers on /image" in line]
    assert len(several) == 2, log.lines
    assert "2 publishers on /image (nodes left_camera, right_camera)" in several[0]


def test_a_camera_not_named_yet_is_waited_for_before_several_publishers_are_told(logged_node):
    from rclpy.qos import QoSReliabilityPolicy

    from fartrack_ros.subscriptions import UNKNOWN_NODE

    node, log = logged_node
    current = [_camera("left_camera"), _camera(UNKNOWN_NODE)]
    node._images.publishers = lambda: current
    node._images.reliability = QoSReliabilityPolicy.BEST_EFFORT

    node._check_publishers()
    assert not [line for line in log.lines if "publishers on /image" in line]
    current[1] = _camera("right_camera")  # discovery has named it by the next check
    node._check_publishers()

    several = [line for line in log.lines if "publishers on /image" in line]
    assert len(several) == 1 and "(nodes left_camera, right_camera)" in several[0], log.lines
