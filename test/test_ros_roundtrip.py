"""Messages cross a process boundary over real rclpy (Fast DDS): the vendored
vision_msgs/Detection2DArray and the package's own fartrack_ros/TrackerStatus, published by a
separate process and received here with every field, the header stamp and the frame_id intact."""

from __future__ import annotations

import os
import uuid

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]

STAMP_SEC = 1_700_000_123
STAMP_NANOSEC = 456_789_012
FRAME_ID = "camera_optical_frame"

# Runs in its own process: publishes one Detection2DArray and one TrackerStatus every 0.1 s
# until stopped (the test subscribes while discovery is still going on).
PUBLISHER = """
import sys
import rclpy
from rclpy.executors import ExternalShutdownException
from std_msgs.msg import Header
from builtin_interfaces.msg import Time
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose
from fartrack_ros.msg import TargetStatus, TrackerStatus

detections_topic, status_topic, sec, nanosec, frame_id = sys.argv[1:6]
header = Header(stamp=Time(sec=int(sec), nanosec=int(nanosec)), frame_id=frame_id)

detections = Detection2DArray(header=header)
for target_id, (cx, cy, w, h, score) in {
        "target-1": (320.5, 240.25, 64.0, 48.0, 0.875),
        "target-2": (10.0, 20.0, 30.5, 40.5, 0.125)}.items():
    det = Detection2D(header=header, id=target_id)
    det.bbox.center.position.x = cx
    det.bbox.center.position.y = cy
    det.bbox.center.theta = 0.0
    det.bbox.size_x = w
    det.bbox.size_y = h
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis.class_id = "target"
    hyp.hypothesis.score = score
    hyp.pose.pose.position.x = 1.5
    hyp.pose.covariance[35] = 0.25
    det.results.append(hyp)
    detections.detections.append(det)

status = TrackerStatus(header=header, targets=[
    TargetStatus(id="target-1", state=TargetStatus.TRACKING, score=0.875, templates_held=5),
    TargetStatus(id="target-2", state=TargetStatus.LOST, score=0.125, templates_held=64)],
    convert_ms=1.25, crop_ms=2.5, model_ms=98.75, decode_ms=0.5, publish_ms=0.25,
    total_ms=103.25, dropped_frames=7, device="cpu", model="tiny/torch")

rclpy.init()
node = rclpy.create_node("roundtrip_publisher")
det_pub = node.create_publisher(Detection2DArray, detections_topic, 10)
status_pub = node.create_publisher(TrackerStatus, status_topic, 10)

def publish():
    det_pub.publish(detections)
    status_pub.publish(status)

node.create_timer(0.1, publish)
print("publishing", flush=True)
try:
    rclpy.spin(node)
except (KeyboardInterrupt, ExternalShutdownException):
    pass
finally:
    node.destroy_node()
    rclpy.try_shutdown()
"""


def test_detection_array_and_tracker_status_cross_processes_with_all_fields(ros_node, ros_python):
    from fartrack_ros.msg import TargetStatus, TrackerStatus
    from vision_msgs.msg import Detection2DArray

    suffix = uuid.uuid4().hex[:8]
    detections_topic = f"/roundtrip_{suffix}/detections"
    status_topic = f"/roundtrip_{suffix}/status"
    received: dict[str, object] = {}
    ros_node.node.create_subscription(Detection2DArray, detections_topic,
                                      lambda msg: received.setdefault("detections", msg), 10)
    ros_node.node.create_subscription(TrackerStatus, status_topic,
                                      lambda msg: received.setdefault("status", msg), 10)

    publisher = ros_python(PUBLISHER, detections_topic, status_topic, str(STAMP_SEC),
                           str(STAMP_NANOSEC), FRAME_ID)
    got_both = ros_node.spin_until(lambda: len(received) == 2, timeout=60.0)

    assert got_both, f"received only {sorted(received)}; publisher: {publisher.describe()}"
    assert publisher.poll() is None and publisher.pid != os.getpid()

    detections = received["detections"]
    assert (detections.header.stamp.sec, detections.header.stamp.nanosec) == (STAMP_SEC, STAMP_NANOSEC)
    assert detections.header.frame_id == FRAME_ID
    assert [d.id for d in detections.detections] == ["target-1", "target-2"]
    first = detections.detections[0]
    assert first.header.frame_id == FRAME_ID and first.header.stamp.sec == STAMP_SEC
    assert (first.bbox.center.position.x, first.bbox.center.position.y) == (320.5, 240.25)
    assert first.bbox.center.theta == 0.0
    assert (first.bbox.size_x, first.bbox.size_y) == (64.0, 48.0)
    assert len(first.results) == 1
    assert first.results[0].hypothesis.class_id == "target"
    assert first.results[0].hypothesis.score == 0.875
    assert first.results[0].pose.pose.position.x == 1.5
    assert first.results[0].pose.covariance[35] == 0.25
    second = detections.detections[1]
    assert (second.bbox.size_x, second.bbox.size_y) == (30.5, 40.5)
    assert second.results[0].hypothesis.score == 0.125

    status = received["status"]
    assert (status.header.stamp.sec, status.header.stamp.nanosec) == (STAMP_SEC, STAMP_NANOSEC)
    assert status.header.frame_id == FRAME_ID
    assert [(t.id, t.state, t.score, t.templates_held) for t in status.targets] == [
        ("target-1", TargetStatus.TRACKING, 0.875, 5),
        ("target-2", TargetStatus.LOST, 0.125, 64)]
    assert (status.convert_ms, status.crop_ms, status.model_ms, status.decode_ms,
            status.publish_ms, status.total_ms) == (1.25, 2.5, 98.75, 0.5, 0.25, 103.25)
    assert status.dropped_frames == 7
    assert (status.device, status.model) == ("cpu", "tiny/torch")
