"""The node's image subscription under the default qos_reliability (auto), between processes.

A best-effort subscription turns a reliable camera's connection best effort, and Fast DDS then
loses every 640x480 rgb8 frame (900 KB, over its 512 KB shared-memory segment): the node must
subscribe reliable to a reliable camera, best effort once a best-effort one is present, say why
when publishers exist but nothing arrives, and the shipped Fast DDS profile must carry large
best-effort frames.
"""

import subprocess
import sys
import time

import numpy as np
import pytest

from node_helpers import (
    FRAME_ID,
    NODE_NAME,
    REPO,
    box_of,
    ground_truth_sequence,
    iou,
    needs_bundled_model,
    ros_env,
    running_node,
    stamp_ns_of,
    start_targets,
    track_lockstep,
    weights_for_tests,
)
from robustness_helpers import wait_for_log

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SEED = 1_000_005  # held-out range
PROFILE = REPO / "config" / "fastdds_large_images.xml"

# A camera in its own process (Fast DDS reads its profile file once per process): 640x480 rgb8
# frames, best effort, as most camera drivers send them.
BEST_EFFORT_CAMERA = """
import sys, time
import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("best_effort_camera")
pub = node.create_publisher(Image, "/image", qos_profile_sensor_data)
while pub.get_subscription_count() == 0:
    time.sleep(0.05)
msg = Image(height=480, width=640, encoding="rgb8", step=640 * 3)
msg.header.frame_id = "camera_be"
msg.data = np.random.default_rng(0).integers(0, 255, 480 * 640 * 3, dtype=np.uint8).tobytes()
for index in range(int(sys.argv[1])):
    msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + index // 20, (index % 20) * 50_000_000
    pub.publish(msg)
    time.sleep(0.05)
"""


@pytest.fixture(scope="module")
def ros():
    with running_node({"device": "cpu", "weights": str(weights_for_tests())}) as pair:
        yield pair


def _node_reliability(probe):
    infos = [info for info in probe.node.get_subscriptions_info_by_topic("/image")
             if info.node_name == NODE_NAME]
    return infos[0].qos_profile.reliability if infos else None


def _wait_reliability(probe, wanted, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _node_reliability(probe) == wanted:
            return True
        time.sleep(0.1)
    return False


def test_the_subscription_follows_the_reliability_the_cameras_offer(ros):
    import rclpy
    from rclpy.qos import QoSReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image

    node, probe = ros
    assert _wait_reliability(probe, QoSReliabilityPolicy.RELIABLE), \
        f"the probe's camera is reliable, the node subscribes {_node_reliability(probe)}:\n{node.log_text()}"
    # On a node of its own that nothing spins: destroying a publisher whose QoS event handlers an
    # executor is waiting on (the probe's) can leave that executor unable to wait again.
    camera = rclpy.create_node("best_effort_camera", context=probe.context)
    try:
        camera.create_publisher(Image, "/image", qos_profile_sensor_data)
        assert _wait_reliability(probe, QoSReliabilityPolicy.BEST_EFFORT), \
            f"a best-effort camera joined, the node still subscribes reliable:\n{node.log_text()}"
        # Two publishers, nothing sent: the node says what may lose the images, once.
        assert wait_for_log(node, 0, "but no image received for", timeout=10.0), node.log_text()
        assert PROFILE.name in node.log_text()
    finally:
        camera.destroy_node()
    assert _wait_reliability(probe, QoSReliabilityPolicy.RELIABLE), node.log_text()


@pytest.fixture(scope="module")
def vga_tracking(ros):
    """A 640x480 ground-truth sequence tracked by the node from the probe's reliable camera, once for
    the tests that check it: (subscribed reliable?, detections per frame from frame 1 on, None where
    none came, ground-truth boxes, stamps)."""
    from rclpy.qos import QoSReliabilityPolicy

    node, probe = ros
    reliable = _wait_reliability(probe, QoSReliabilityPolicy.RELIABLE)
    frames, boxes = ground_truth_sequence(12, SEED, width=640, height=480)
    stamps = [3_000_000_000_000 + i * 50_000_000 for i in range(len(frames))]
    probe.reset()
    probe.clear()
    first = start_targets(probe, frames[0], stamps[0], [("vga", tuple(boxes[0]))], frames[1], stamps[1])
    results = [first, *track_lockstep(probe, frames[2:], stamps[2:])]
    return reliable, results, boxes, stamps


def test_640x480_frames_from_a_reliable_camera_are_tracked(ros, vga_tracking):
    node, _ = ros
    reliable, results, _, stamps = vga_tracking
    assert reliable, node.log_text()
    for index, detections in enumerate(results, start=1):
        assert detections is not None, f"no detections for 640x480 frame {index}:\n{node.log_text()}"
        assert stamp_ns_of(detections.header) == stamps[index] and detections.header.frame_id == FRAME_ID


@needs_bundled_model
def test_the_model_follows_the_target_in_640x480_frames(ros, vga_tracking):
    node, _ = ros
    reliable, results, boxes, _ = vga_tracking
    assert reliable, node.log_text()  # else frames were lost, not tracked badly
    assert all(r is not None for r in results), node.log_text()
    ious = [iou(box_of(r.detections[0]), boxes[i]) if r.detections else 0.0
            for i, r in enumerate(results, start=1)]
    assert np.mean(ious) >= 0.5, f"IoU per frame {np.round(ious, 2).tolist()}"


def test_the_shipped_fastdds_profile_carries_large_best_effort_frames(ros):
    node, probe = ros
    probe.clear()
    latest = probe.wait_for("diagnostics", lambda msg: _frames_received(msg) is not None)
    assert latest is not None, node.log_text()
    before = _frames_received(latest)
    env = ros_env(probe.context.get_domain_id())
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
    camera = subprocess.Popen([sys.executable, "-c", BEST_EFFORT_CAMERA, "60"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = probe.wait_for("diagnostics", lambda msg: (_frames_received(msg) or 0) - before >= 50,
                              timeout=30.0)
    finally:
        output = camera.communicate(timeout=30.0)[0]
    assert camera.returncode == 0, output
    counts = [_frames_received(msg) or 0 for msg in probe.received["diagnostics"]]
    assert seen is not None, (f"the node received {max(counts, default=before) - before} of 60 best-effort "
                              f"640x480 frames:\n{output}\n{node.log_text()}")


def _frames_received(msg):
    """frames_received of the node's status in a /diagnostics message (None when absent)."""
    for status in msg.status:
        if status.name.startswith(f"{NODE_NAME}:"):
            for item in status.values:
                if item.key == "frames_received":
                    return int(item.value)
    return None
