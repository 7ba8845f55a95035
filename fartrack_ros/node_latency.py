"""End-to-end latency of the node: image published here -> detections received here, over rclpy.

The node runs in its own process on an isolated ROS graph. Frames are sent closed-loop (the next
one after the previous frame's detections arrived, and, with a period, no sooner than that after the
previous one was sent, like a camera), so each figure is one frame's full path: serialisation,
transport, conversion, tracking, publishing and transport back, with no queueing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .benchmark import WARMUP_FRAMES
from .demo import Child, child_env, fartrack_node_argv

NODE_NAME = "fartrack_bench"


STAGES = ("convert", "crop", "model", "decode", "publish", "total")


@dataclass
class NodeLatency:
    """Percentiles of publish -> detections latency over the answered frames after warm-up, how
    many frames were sent and never answered, and medians of the node's own stage times."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    stage_p50_ms: dict[str, float]  # from ~/status: convert, crop, model, decode, publish, total
    sent: int  # frames sent after the init frame, warm-up included
    lost: int  # of those, frames whose detections did not come back within the frame timeout
    samples_ms: list[float]  # every answered round trip, in order, warm-up included


def _image_msg(frame: np.ndarray, stamp_ns: int):
    """``frame`` (HxWx3 uint8 RGB) as an rgb8 ``sensor_msgs/Image`` of frame "camera" stamped ``stamp_ns``."""
    from std_msgs.msg import Header

    from .image_conversion import rgb_to_image_msg
    from .node_messages import ns_to_time

    return rgb_to_image_msg(frame, Header(stamp=ns_to_time(stamp_ns), frame_id="camera"))


def node_argv(threads: int, weights: str = "", variant: str = "", precision: str = "float32",
              pin_cpu_threads: bool = True, executor: str = "single_threaded") -> list[str]:
    """Command line of the node the latency is measured through (CPU, its image on a bench topic;
    lost_threshold 0: a template every frame, as the bench's in-process reference runs)."""
    return fartrack_node_argv(NODE_NAME, {
        "weights": weights, "variant": variant, "device": "cpu", "precision": precision, "cpu_threads": threads,
        "pin_cpu_threads": pin_cpu_threads, "executor": executor, "lost_threshold": 0.0},
        remaps={"image": f"/{NODE_NAME}_image"})


def measure_node_latency(frames: list[np.ndarray], first_box: Sequence[float], threads: int = 2, weights: str = "",
                         variant: str = "", precision: str = "float32", period_s: float = 0.0,
                         timeout_s: float = 120.0, frame_timeout_s: float = 1.0,
                         pin_cpu_threads: bool = True, executor: str = "single_threaded") -> NodeLatency:
    """Start a target on ``frames[0]`` (``first_box``), send the other frames through a fresh node
    process and time each round trip (``period_s``: the least time between two sends, 0 for back
    to back; a frame whose detections take longer than ``frame_timeout_s`` counts as lost).

    Images go best effort, as camera drivers send them, when a frame fits Fast DDS's shared-memory
    segment, and reliable when it does not (best effort would lose every one: see image_qos); the
    node's default ``qos_reliability`` (auto) follows either."""
    import rclpy
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from .image_qos import FASTDDS_SHM_SEGMENT_BYTES
    from .executors import SpinThread
    from .msg import TrackerStatus
    from .node_messages import init_msg, stamp_to_ns

    env = child_env()
    size = (frames[0].shape[1], frames[0].shape[0])
    argv = node_argv(threads, weights, variant, precision, pin_cpu_threads, executor)
    rclpy.init()
    node = rclpy.create_node("fartrack_latency_probe")
    reliable = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
    fits_shm = size[0] * size[1] * 3 < FASTDDS_SHM_SEGMENT_BYTES - 64 * 1024  # room for the headers
    image_qos = qos_profile_sensor_data if fits_shm else QoSProfile(
        depth=1, reliability=QoSReliabilityPolicy.RELIABLE)
    image_pub = node.create_publisher(Image, f"/{NODE_NAME}_image", image_qos)
    init_pub = node.create_publisher(Detection2DArray, f"/{NODE_NAME}/init", reliable)
    arrived: dict[int, int] = {}
    awaited = [0]  # stamp of the frame in flight
    answered = threading.Event()
    stage_ms: dict[int, tuple[float, ...]] = {}  # image stamp -> the node's stage times

    def on_detections(msg) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        arrived.setdefault(stamp, time.perf_counter_ns())
        if stamp == awaited[0]:
            answered.set()

    node.create_subscription(Detection2DArray, f"/{NODE_NAME}/detections", on_detections, reliable)
    node.create_subscription(TrackerStatus, f"/{NODE_NAME}/status",
                             lambda m: stage_ms.setdefault(stamp_to_ns(m.header.stamp),
                                                           tuple(getattr(m, f"{s}_ms") for s in STAGES)),
                             reliable)
    # The probe waits on an event set from a spinning thread: polling spin_once in a loop here
    # would keep one of the machine's cores busy and slow the node it measures. It spins rclpy's
    # single-threaded executor whatever the node's, so a node row's executor is the node's alone.
    spinner = SpinThread(node, "latency_probe_spin")
    child = Child("node", argv, env, echo=False)
    latencies: list[float] = []
    warm_ms: list[float] = []  # answered frames after warm-up
    answered_stamps: list[int] = []  # their stamps
    sent_count = lost = 0
    try:
        deadline = time.monotonic() + timeout_s
        # Until the node subscribes, with our reliability (auto follows publishers within a second).
        while (init_pub.get_subscription_count() == 0 or not any(
                info.qos_profile.reliability == image_qos.reliability
                for info in node.get_subscriptions_info_by_topic(image_pub.topic_name))):
            _check_child(child, deadline)
            time.sleep(0.05)
        stamp0 = time.time_ns()
        for _ in range(3):  # best effort: one copy of the init frame must reach the node's cache
            image_pub.publish(_image_msg(frames[0], stamp0))
            time.sleep(0.2)
        init_pub.publish(init_msg(stamp0, [("bench", first_box)]))
        time.sleep(0.5)
        sent = time.perf_counter_ns()
        for index, image in enumerate(frames[1:]):
            _check_child(child, deadline)
            time.sleep(max(0.0, period_s - (time.perf_counter_ns() - sent) / 1e9))
            stamp = time.time_ns()
            message = _image_msg(image, stamp)
            answered.clear()
            awaited[0] = stamp
            sent = time.perf_counter_ns()
            image_pub.publish(message)
            sent_count += 1
            if answered.wait(frame_timeout_s):
                latencies.append((arrived[stamp] - sent) / 1e6)
                if index >= WARMUP_FRAMES:
                    warm_ms.append(latencies[-1])
                    answered_stamps.append(stamp)
            else:
                lost += 1
    finally:
        child.stop()
        spinner.stop()
        rclpy.try_shutdown()
    fallback = [line for line in child.lines if "running single_threaded" in line]
    if executor == "events" and fallback:
        raise RuntimeError(f"the node did not run executor events: {fallback[0]}")
    if len(warm_ms) < 5:
        raise RuntimeError(f"{len(warm_ms)} frames after the {WARMUP_FRAMES} warm-up ones got detections back "
                           f"({lost} of {sent_count} lost); see the node's log:\n" + "\n".join(child.lines[-20:]))
    warm = np.array(warm_ms)
    stages = np.array([stage_ms[s] for s in answered_stamps if s in stage_ms]).reshape(-1, len(STAGES))
    medians = {name: float(np.median(stages[:, k])) if len(stages) else float("nan") for k, name in enumerate(STAGES)}
    return NodeLatency(float(np.percentile(warm, 50)), float(np.percentile(warm, 95)), float(np.percentile(warm, 99)),
                       medians, sent_count, lost, latencies)


def _check_child(child: Child, deadline: float) -> None:
    """Raise with the node's last log lines when it has exited or the run is over time."""
    if not child.running():
        raise RuntimeError("fartrack_node exited:\n" + "\n".join(child.lines[-20:]))
    if time.monotonic() > deadline:
        raise TimeoutError("the node did not answer in time:\n" + "\n".join(child.lines[-20:]))
