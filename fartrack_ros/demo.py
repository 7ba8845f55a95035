"""``make demo``: the FARTrack node tracking a generated sequence, over real ROS 2.

Three processes on an isolated ROS graph (a domain of its own, localhost discovery):
``fartrack_node``, ``video_publisher`` playing a held-out synthetic sequence at a fixed rate
(it publishes the first-frame init box stamped with the first frame), and this process, which
subscribes to the images (to number the frames), ``~/detections`` and ``~/status``, prints each
tracked frame's box, IoU against the ground truth and latency, and ends with a summary: frames,
FPS, latency p50/p95, AO and SR0.5 against the ground truth.

    python -m fartrack_ros.demo [--frames 60] [--rate 10] [--seed 1000000] [--device cpu] ...
"""

from __future__ import annotations

import argparse
import bisect
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cli.messages import Terminated, command
from .cli.options import (fraction, int_at_least, node_parameter, non_negative_float, non_negative_int, positive_float,
                          variant_name)

NODE_NAME = "fartrack"
TARGET_ID = "target"
STATUS_WAIT_NS = 500_000_000


def _iou(a, b) -> float:
    """IoU of two xywh boxes (the evaluation's definition)."""
    from fartrack_ros.evaluation.metrics import iou_xywh

    return float(iou_xywh([a], [b])[0])


def executable(name: str, module: str) -> list[str]:
    """The installed executable of this package (colcon prefix), else ``python -m module``."""
    try:
        from ament_index_python.packages import get_package_prefix

        path = Path(get_package_prefix("fartrack_ros")) / "lib" / "fartrack_ros" / name
        if path.is_file():
            return [sys.executable, str(path)]
    except Exception:  # noqa: BLE001 - no ament index: fall back to the module
        pass
    return [sys.executable, "-m", module]


def fartrack_node_argv(node_name: str, params: dict[str, object],
                       remaps: dict[str, str] | None = None) -> list[str]:
    """``fartrack_node`` as ``node_name`` with these topic remaps and parameters (empty: '', bool: true/false)."""
    argv = executable("fartrack_node", "fartrack_ros.node_main") + ["--ros-args", "-r", f"__node:={node_name}"]
    for topic, target in (remaps or {}).items():
        argv += ["-r", f"{topic}:={target}"]
    for key, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        argv += ["-p", f"{key}:={text or chr(39) * 2}"]
    return argv


def ros_missing() -> str | None:
    """Why the ROS 2 Python packages the node's clients need do not import here, with what to do
    (None when they import): the console scripts may run outside a ROS environment."""
    try:
        import rclpy  # noqa: F401
        from sensor_msgs.msg import Image  # noqa: F401
        from vision_msgs.msg import Detection2DArray  # noqa: F401

        from .msg import TrackerStatus  # noqa: F401
    except ImportError as exc:
        return (f"ROS 2 is not set up in this environment ({exc}): source your ROS 2 workspace, or run "
                "the command through tools/ros-run after make setup")
    return None


def child_env() -> dict[str, str]:
    """This process's environment on an isolated graph (set here before rclpy.init too)."""
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)  # the child's venv Python sets it up itself
    return env


class Child:
    """A child process whose output is echoed with a prefix (and kept for the summary)."""

    def __init__(self, label: str, argv: list[str], env: dict[str, str], echo: bool = True) -> None:
        self.label = label
        self.lines: list[str] = []
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, bufsize=1)
        self._echo = echo
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            if self._echo:
                print(f"[{self.label}] {line.rstrip()}", flush=True)

    def running(self) -> bool:
        """Whether the process has not exited yet."""
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """End the process with SIGINT, so rclpy shuts down cleanly; killed if still running after ``timeout`` s."""
        if self.running():
            self.process.send_signal(2)  # SIGINT: rclpy shuts down cleanly
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._thread.join(timeout=2.0)


@dataclass
class FrameResult:
    """One tracked frame as this process saw it: the box (None when lost), score and latencies."""

    index: int
    stamp_ns: int
    box: tuple[float, float, float, float] | None
    score: float
    latency_ms: float  # image stamp -> detections received here
    node_ms: float | None = None  # node: frame received -> published (TrackerStatus.total_ms)
    model_ms: float | None = None


@dataclass
class DemoRecorder:
    """What the demo process receives, matched by image stamp.

    Frames are numbered from the init's stamp (frame 0) and the order of the later stamps heard
    here: an image heard late still takes its place, one never heard would shift those after it
    (the summary says so and fails).
    """

    first_stamp: int | None = None  # the init's stamp = frame 0
    later_stamps: list[int] = field(default_factory=list)  # sorted stamps of frames 1, 2, ...
    results: dict[int, FrameResult] = field(default_factory=dict)
    status_of_stamp: dict[int, object] = field(default_factory=dict)
    pending: list = field(default_factory=list)
    last_status: object = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def run(options: argparse.Namespace) -> int:
    """The demo: the node, the video publisher and this listener; 0 when the node ran and the summary passed."""
    env = child_env()
    import rclpy
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image
    from vision_msgs.msg import Detection2DArray

    from fartrack_ros.data.synthetic import SyntheticConfig, generate_sequence
    from fartrack_ros.msg import TrackerStatus
    from fartrack_ros.node_messages import stamp_to_ns

    config = SyntheticConfig(width=320, height=240, min_length=options.frames, max_length=options.frames,
                             difficulty=options.difficulty, luma_contrast=options.mono)
    truth = generate_sequence(options.seed, config, lazy=True)  # boxes only; frames render lazily
    camera = ", mono8 images of a scene drawn for a mono camera" if options.mono else ""
    difficulty = "the seed's difficulty" if options.difficulty is None else f"difficulty {options.difficulty:g}"
    print(f"demo: sequence {options.seed} ({options.frames} frames, 320x240, {difficulty}{camera}), "
          f"{options.rate:g} fps, ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}", flush=True)

    node_params = {"device": options.device, "weights": options.weights, "variant": options.variant,
                   "image_transport": options.transport}
    node_argv = fartrack_node_argv(NODE_NAME, node_params)
    publisher_argv = executable("video_publisher", "fartrack_ros.video_publisher") + [
        "--synthetic", str(options.seed), "--frames", str(options.frames), "--rate", str(options.rate),
        "--transport", options.transport, "--init-id", TARGET_ID, "--init-topic", f"/{NODE_NAME}/init",
        "--wait", "60", "--subscribers", "2"]
    if options.difficulty is not None:
        publisher_argv += ["--difficulty", str(options.difficulty)]
    if options.mono:
        publisher_argv += ["--luma-contrast", "--encoding", "mono8"]

    rclpy.init()
    node = rclpy.create_node("fartrack_demo")
    recorder = DemoRecorder()
    reliable = QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE)

    def on_image(msg):
        stamp = stamp_to_ns(msg.header.stamp)
        with recorder.lock:
            position = bisect.bisect_left(recorder.later_stamps, stamp)
            if position == len(recorder.later_stamps) or recorder.later_stamps[position] != stamp:
                recorder.later_stamps.insert(position, stamp)

    def on_init(msg):
        with recorder.lock:
            recorder.first_stamp = stamp_to_ns(msg.header.stamp)

    def on_detections(msg):
        received_ns = node.get_clock().now().nanoseconds
        with recorder.lock:
            recorder.pending.append((msg, received_ns))

    def on_status(msg):
        with recorder.lock:
            recorder.status_of_stamp[stamp_to_ns(msg.header.stamp)] = msg
            recorder.last_status = msg

    if options.transport == "compressed":
        node.create_subscription(CompressedImage, "/image/compressed", on_image, reliable)
    else:
        node.create_subscription(Image, "/image", on_image, reliable)
    outputs = [node.create_subscription(Detection2DArray, f"/{NODE_NAME}/detections", on_detections, reliable),
               node.create_subscription(TrackerStatus, f"/{NODE_NAME}/status", on_status, reliable)]
    node.create_subscription(Detection2DArray, f"/{NODE_NAME}/init", on_init, reliable)

    started = time.monotonic()
    fartrack = Child("node", node_argv, env)
    publisher = None
    exit_code = 0
    try:
        deadline = started + options.timeout
        # The sequence starts only once this listener hears the node's outputs: a detection sent
        # before discovery has matched the two would be lost and the frame counted as untracked.
        # (node.count_publishers: Subscription.get_publisher_count is not in Humble's rclpy)
        while fartrack.running() and time.monotonic() < deadline and not all(
                node.count_publishers(sub.topic_name) > 0 for sub in outputs):
            rclpy.spin_once(node, timeout_sec=0.05)
        if fartrack.running():  # a node that could not start gets no frames played at it
            publisher = Child("publisher", publisher_argv, env)
        publisher_done_at = None
        while time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.02)
            _report_ready(recorder, truth.boxes)
            if not fartrack.running():
                print("demo: fartrack_node exited early", flush=True)
                exit_code = 1
                break
            if publisher_done_at is None and publisher is not None and not publisher.running():
                publisher_done_at = time.monotonic()
            if publisher_done_at is not None and (
                    _last_frame_done(recorder) or time.monotonic() - publisher_done_at > options.grace):
                break
        else:
            print(f"demo: stopped after the {options.timeout:.0f} s timeout", flush=True)
        for _ in range(10):
            rclpy.spin_once(node, timeout_sec=0.02)
        _report_ready(recorder, truth.boxes)
    finally:
        if publisher is not None:
            publisher.stop()
        fartrack.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    summary_ok = _summarise(recorder, truth, options, time.monotonic() - started)
    return exit_code or (0 if summary_ok else 1)


def _index_of(recorder: DemoRecorder, stamp: int) -> int | None:
    """Frame number of an image stamp (None while it cannot be known yet)."""
    first = recorder.first_stamp
    if first is None or stamp < first:
        return None
    if stamp == first:
        return 0
    later = [s for s in recorder.later_stamps if s > first]
    position = bisect.bisect_left(later, stamp)
    return position + 1 if position < len(later) and later[position] == stamp else None


def _published(recorder: DemoRecorder) -> int:
    first = recorder.first_stamp
    return 0 if first is None else 1 + sum(1 for s in recorder.later_stamps if s > first)


def _last_frame_done(recorder: DemoRecorder) -> bool:
    with recorder.lock:
        last = _published(recorder) - 1
        return last > 0 and last in recorder.results


def _report_ready(recorder: DemoRecorder, boxes: np.ndarray) -> None:
    """Print the detections whose frame number is known (the image may arrive after them)."""
    from fartrack_ros.node_messages import stamp_to_ns

    with recorder.lock:
        ready, waiting = [], []
        now_ns = time.time_ns()
        for msg, received_ns in recorder.pending:
            stamp = stamp_to_ns(msg.header.stamp)
            # the frame's number must be known; wait briefly for its status (published just after)
            known = _index_of(recorder, stamp) is not None
            settled = stamp in recorder.status_of_stamp or now_ns - received_ns > STATUS_WAIT_NS
            (ready if known and settled else waiting).append((msg, received_ns))
        recorder.pending = waiting
        for msg, received_ns in ready:
            stamp = stamp_to_ns(msg.header.stamp)
            index = _index_of(recorder, stamp)
            ours = [d for d in msg.detections if d.id == TARGET_ID]
            box, score = None, 0.0
            if ours:
                bbox = ours[0].bbox
                box = (bbox.center.position.x - bbox.size_x / 2, bbox.center.position.y - bbox.size_y / 2,
                       bbox.size_x, bbox.size_y)
                score = ours[0].results[0].hypothesis.score if ours[0].results else 0.0
            status = recorder.status_of_stamp.get(stamp)
            result = FrameResult(index, stamp, box, score, (received_ns - stamp) / 1e6,
                                 status.total_ms if status else None, status.model_ms if status else None)
            recorder.results[index] = result
            truth = boxes[index] if index < len(boxes) else None
            iou = f"{_iou(box, truth):.2f}" if box is not None and truth is not None and truth[2] > 0 else " -- "
            shown = ("x={:6.1f} y={:6.1f} w={:5.1f} h={:5.1f}".format(*box) if box is not None
                     else "(lost: no detection)")
            node_part = f", node {result.node_ms:5.1f} ms, model {result.model_ms:5.1f} ms" if status else ""
            print(f"frame {index:3d}  {shown}  score {score:.2f}  IoU {iou}  latency "
                  f"{result.latency_ms:6.1f} ms{node_part}", flush=True)


def _summarise(recorder: DemoRecorder, truth, options, wall_s: float) -> bool:
    results = sorted(recorder.results.values(), key=lambda r: r.index)
    published = _published(recorder)
    print("\n=== FARTrack demo summary ===")
    if not results:
        print(f"frames published {published}, tracked 0: no detections arrived (see the node output above)")
        return False
    latencies = np.array([r.latency_ms for r in results])
    node_ms = np.array([r.node_ms for r in results if r.node_ms is not None])
    model_ms = np.array([r.model_ms for r in results if r.model_ms is not None])
    boxes, absent = truth.boxes, truth.absent
    scored = [r for r in results if r.index < len(boxes) and not absent[r.index]]
    ious = np.array([_iou(r.box, boxes[r.index]) if r.box is not None else 0.0 for r in scored])
    status = recorder.last_status
    span = max(recorder_span(recorder), 1e-9)
    print(f"frames      published {published} (first frame = init), tracked {len(results)}, "
          f"dropped by the node {status.dropped_frames if status else '?'}")
    print(f"rate        in {options.rate:g} fps, out {(len(results) - 1) / span:.1f} fps")
    print(f"latency     image stamp -> detections here: p50 {np.percentile(latencies, 50):.1f} ms, "
          f"p95 {np.percentile(latencies, 95):.1f} ms")
    if node_ms.size:
        print(f"            in the node (frame received -> published): p50 {np.percentile(node_ms, 50):.1f} ms, "
              f"p95 {np.percentile(node_ms, 95):.1f} ms; model p50 {np.percentile(model_ms, 50):.1f} ms")
    if ious.size:
        print(f"accuracy    AO {ious.mean():.3f}, SR0.5 {(ious > 0.5).mean():.3f} over {ious.size} tracked "
              f"frames with the target visible (ground truth of sequence {options.seed})")
    if status is not None:
        print(f"model       {status.model} on {status.device}")
    print(f"wall time   {wall_s:.1f} s")
    if published < options.frames:
        # frames are numbered by the order of the stamps heard here: a missed one shifts the rest
        print(f"demo: this process heard {published} of the {options.frames} images, so frame numbers "
              "(and the accuracy above) may be shifted against the ground truth", flush=True)
        return False
    return True


def recorder_span(recorder: DemoRecorder) -> float:
    """Seconds between the first and the last tracked frame's stamps."""
    stamps = [result.stamp_ns for result in recorder.results.values()]
    return (max(stamps) - min(stamps)) / 1e9 if len(stamps) > 1 else 0.0


def build_parser() -> argparse.ArgumentParser:
    """The demo's options; those handed to the node are checked by the node's rules, so a typo fails here."""
    parser = argparse.ArgumentParser(prog="python -m fartrack_ros.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int_at_least(2), default=60, help="sequence length (default 60)")
    parser.add_argument("--rate", type=positive_float, default=10.0, help="frames per second published (default 10)")
    parser.add_argument("--seed", type=non_negative_int, default=1_000_000,
                        help="synthetic sequence seed (default 1000000, a held-out seed; with --frames it draws the "
                             "scene, so fartrack-eval's sequence of that seed, of another length, differs)")
    parser.add_argument("--difficulty", type=fraction, default=None,
                        help="fixed difficulty in [0, 1] (default: drawn from the seed)")
    parser.add_argument("--device", default="auto", type=node_parameter("device"),
                        help="node device: auto, cpu, cuda, cuda:N")
    parser.add_argument("--weights", default="", help="checkpoint for the node (default: bundled model)")
    parser.add_argument("--variant", default="", type=variant_name,
                        help="tiny, nano, pico or a number of layers (default: as the checkpoint)")
    parser.add_argument("--transport", default="raw", choices=["raw", "compressed"])
    parser.add_argument("--mono", action="store_true",
                        help="play it as a mono camera: mono8 images of the scene drawn for one (raw transport)")
    parser.add_argument("--timeout", type=positive_float, default=120.0, help="give up after this many seconds")
    parser.add_argument("--grace", type=non_negative_float, default=3.0,
                        help="seconds to wait for the last detections after the publisher ends")
    return parser


@command("demo")
def main(argv: list[str] | None = None) -> int:
    """Ctrl-C or SIGTERM stop the node and the publisher and end the demo (exit 130 or 143)."""
    parser = build_parser()
    options = parser.parse_args(argv)
    if options.mono and options.transport != "raw":
        parser.error("--mono publishes raw mono8 images: leave --transport raw")
    from rclpy.executors import ExternalShutdownException

    try:
        return run(options)
    except ExternalShutdownException:  # rclpy shut ROS down on a signal before Python's handler ran
        raise Terminated() from None


if __name__ == "__main__":
    sys.exit(main())
