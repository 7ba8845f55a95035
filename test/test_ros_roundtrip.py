"""The node's message builders over real rclpy (Fast DDS): a separate process turns known tracker
results into the vendored vision_msgs/Detection2DArray and the package's own
fartrack_ros/TrackerStatus with fartrack_ros.node_messages (as the node does), publishes them, and
the test process receives them with the conversion intact: centre and size from (x, y, w, h), the
image's stamp and frame_id, LOST targets left out of the detections but listed in the status, a
non-finite score sent as 0."""

from __future__ import annotations

import json
import math
import os
import uuid

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]

STAMP_SEC = 1_700_000_123
STAMP_NANOSEC = 456_789_012
FRAME_ID = "camera_optical_frame"

# What the tracker returned for one frame: (target_id, (x, y, w, h) top-left and size in pixels,
# score, state, templates held). Values exact in float32 (TargetStatus.score is one).
RESULTS = [
    ("target-1", (288.5, 216.25, 64.0, 48.0), 0.875, "TRACKING", 5),
    ("target-2", (10.0, 20.0, 30.5, 40.5), 0.125, "LOST", 64),
    ("target-3", (0.5, 1.0, 2.0, 3.0), math.nan, "TRACKING", 1),
]
STAGE_MS = {"convert": 1.25, "crop": 2.5, "model": 98.75, "decode": 0.5}  # no "publish": sent as 0
TOTAL_MS, DROPPED, DEVICE, MODEL = 103.25, 7, "cpu", "tiny/torch"

# The conversion expected: the TRACKING targets only, (id, centre x, centre y, size x, size y, score).
EXPECTED_DETECTIONS = [
    ("target-1", 320.5, 240.25, 64.0, 48.0, 0.875),
    ("target-3", 1.5, 2.5, 2.0, 3.0, 0.0),
]

# Runs in its own process: builds the messages from the results given as JSON with the node's
# builders and publishes them every 0.1 s until stopped (the test subscribes while discovery is
# still going on).
PUBLISHER = """
import json
import sys
import rclpy
from rclpy.executors import ExternalShutdownException
from std_msgs.msg import Header
from builtin_interfaces.msg import Time
from vision_msgs.msg import Detection2DArray
from fartrack_ros.msg import TrackerStatus
from fartrack_ros.node_messages import detections_msg, status_msg
from fartrack_ros.tracker import TrackResult, TrackState

detections_topic, status_topic, sec, nanosec, frame_id, frame_json = sys.argv[1:7]
frame = json.loads(frame_json)
header = Header(stamp=Time(sec=int(sec), nanosec=int(nanosec)), frame_id=frame_id)
results = [TrackResult(target_id=target_id, box_xywh=tuple(box), score=score, state=TrackState(state),
                       templates_held=held)
           for target_id, box, score, state, held in frame["results"]]
detections = detections_msg(header, results)
status = status_msg(header, results, frame["stage_ms"], frame["total_ms"], frame["dropped"], frame["device"],
                    frame["model"])

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


def test_built_detections_and_status_cross_processes_as_converted_from_tracker_results(ros_node, ros_python):
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

    frame = {"results": RESULTS, "stage_ms": STAGE_MS, "total_ms": TOTAL_MS, "dropped": DROPPED,
             "device": DEVICE, "model": MODEL}
    publisher = ros_python(PUBLISHER, detections_topic, status_topic, str(STAMP_SEC),
                           str(STAMP_NANOSEC), FRAME_ID, json.dumps(frame))
    got_both = ros_node.spin_until(lambda: len(received) == 2, timeout=60.0)

    assert got_both, f"received only {sorted(received)}; publisher: {publisher.describe()}"
    assert publisher.poll() is None and publisher.pid != os.getpid()

    detections = received["detections"]
    assert (detections.header.stamp.sec, detections.header.stamp.nanosec) == (STAMP_SEC, STAMP_NANOSEC)
    assert detections.header.frame_id == FRAME_ID
    got = [(d.id, d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y,
            d.results[0].hypothesis.score if d.results else None) for d in detections.detections]
    assert got == EXPECTED_DETECTIONS  # target-2 is LOST: left out
    for detection in detections.detections:
        assert (detection.header.stamp.sec, detection.header.stamp.nanosec) == (STAMP_SEC, STAMP_NANOSEC)
        assert detection.header.frame_id == FRAME_ID
        assert detection.bbox.center.theta == 0.0
        assert [r.hypothesis.class_id for r in detection.results] == [detection.id]

    status = received["status"]
    assert (status.header.stamp.sec, status.header.stamp.nanosec) == (STAMP_SEC, STAMP_NANOSEC)
    assert status.header.frame_id == FRAME_ID
    assert [(t.id, t.state, t.score, t.templates_held) for t in status.targets] == [
        ("target-1", TargetStatus.TRACKING, 0.875, 5),
        ("target-2", TargetStatus.LOST, 0.125, 64),
        ("target-3", TargetStatus.TRACKING, 0.0, 1)]
    assert (status.convert_ms, status.crop_ms, status.model_ms, status.decode_ms,
            status.publish_ms, status.total_ms) == (1.25, 2.5, 98.75, 0.5, 0.0, 103.25)
    assert status.dropped_frames == DROPPED
    assert (status.device, status.model) == (DEVICE, MODEL)
