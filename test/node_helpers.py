"""Helpers for the node tests: the node in its own process, a probe node in the test process that
publishes images/inits and collects what the node publishes, and a ground-truth sequence.

Isolation: test/conftest.py gives the whole pytest run a ROS domain of its own (and localhost
discovery) in os.environ; the node process and the probe both use it. Run outside that
conftest, a random domain is taken instead.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE_WEIGHTS = REPO.parent / "shared" / "fixtures" / "official" / "fartrack_random_ckpt.pth"
DEFAULT_WEIGHTS = REPO / "fartrack_ros" / "weights" / "default.pth"
NODE_NAME = "fartrack"
FRAME_ID = "test_camera"
HELD_OUT_SEED = 1_000_004  # a held-out generated sequence (EVAL_SEED_BASE and up)


def node_executable() -> Path:
    """The installed fartrack_node when built with colcon, else the one in scripts/."""
    installed = REPO / "install" / "fartrack_ros" / "lib" / "fartrack_ros" / "fartrack_node"
    return installed if installed.is_file() else REPO / "scripts" / "fartrack_node"


def pick_domain_id() -> int:
    """This run's domain (set by conftest.py), else a random one."""
    if "ROS_DOMAIN_ID" in os.environ:
        return int(os.environ["ROS_DOMAIN_ID"])
    return random.SystemRandom().randint(1, 100)


def ros_env(domain_id: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    env.pop("ROS_LOCALHOST_ONLY", None)
    # The child's venv Python sets up the ROS wheels' library path itself (ros-env.md pitfall).
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    return env


def weights_for_tests() -> Path:
    """$FARTRACK_TEST_WEIGHTS if set, else the bundled model when it exists, else the
    random-weights fixture (plumbing only)."""
    if os.environ.get("FARTRACK_TEST_WEIGHTS"):
        return Path(os.environ["FARTRACK_TEST_WEIGHTS"])
    return DEFAULT_WEIGHTS if DEFAULT_WEIGHTS.is_file() else FIXTURE_WEIGHTS


# a test of what the trained model tracks: skipped while only the random-weights fixture exists
needs_bundled_model = pytest.mark.skipif(
    weights_for_tests() != DEFAULT_WEIGHTS and not os.environ.get("FARTRACK_TEST_WEIGHTS"),
    reason=f"the bundled model {DEFAULT_WEIGHTS.name} is not trained yet (or set FARTRACK_TEST_WEIGHTS)")


class NodeProcess:
    """``fartrack_node`` in a child process, its output in a log file."""

    def __init__(self, domain_id: int, parameters: dict | None = None, extra_args: list[str] | None = None,
                 remaps: dict[str, str] | None = None, program: list[str] | None = None,
                 node_name: str = NODE_NAME):
        """``program``: what runs instead of the executable (e.g. ``python -c ...``), given the same
        arguments."""
        # In the run's private ROS_LOG_DIR when conftest.py set one (removed after the run).
        log_dir = os.environ.get("ROS_LOG_DIR") or None
        self.log_path = Path(tempfile.mkstemp(prefix="fartrack_node_", suffix=".log", dir=log_dir)[1])
        program = program or [sys.executable, str(node_executable())]
        args = [*program, *(extra_args or []), "--ros-args",
                "--log-level", "info", "-r", f"__node:={node_name}"]
        for key, value in (remaps or {}).items():
            args += ["-r", f"{key}:={value}"]
        for key, value in (parameters or {}).items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            args += ["-p", f"{key}:={value}"]
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=ros_env(domain_id), cwd=REPO)

    def log_text(self) -> str:
        if not self.log_path.exists():
            return getattr(self, "_text", "")
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGINT (then SIGKILL); the exit code. The log file is kept only after a failure."""
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        if self.process.returncode == 0:
            self._text = self.log_path.read_text(errors="replace")
            self.log_path.unlink(missing_ok=True)
        return self.process.returncode


@contextlib.contextmanager
def running_node(parameters: dict, *, extra_args: list[str] | None = None, remaps: dict[str, str] | None = None,
                 image_topic: str = "/image", connect: str | None = "image", node_name: str = NODE_NAME):
    """A node process and a probe on this run's domain, for a module-scoped fixture.

    ``connect``: wait until the node subscribes to "image" or "compressed" images (None: do not
    wait, e.g. an unconfigured managed node). ``node_name``: a name of its own keeps the node's
    services apart from those other tests' nodes left in the graph. On exit the probe closes and
    the node must exit 0.
    """
    domain_id = pick_domain_id()
    node = NodeProcess(domain_id, parameters=parameters, extra_args=extra_args, remaps=remaps, node_name=node_name)
    probe = None
    try:
        probe = Probe(domain_id, node_name=node_name, image_topic=image_topic)
        if connect is not None:
            probe.wait_until_connected(node, compressed=connect == "compressed")
        yield node, probe
    finally:
        if probe is not None:
            probe.close()
        code = node.stop()
        assert code == 0, f"fartrack_node exit code {code}:\n{node.log_text()}"


class Probe:
    """A test-side rclpy node (own context, own spinning thread) around one FARTrack node."""

    def __init__(self, domain_id: int, node_name: str = NODE_NAME, image_topic: str = "/image"):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, QoSReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import String
        from std_srvs.srv import Trigger
        from vision_msgs.msg import Detection2DArray

        from fartrack_ros.msg import TrackerStatus

        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # read by rclpy.init
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("fartrack_test_probe", context=self.context)
        self.prefix = f"/{node_name}"
        reliable = QoSProfile(depth=50, reliability=QoSReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, image_topic, reliable)
        self.compressed_pub = self.node.create_publisher(CompressedImage, image_topic + "/compressed", reliable)
        self.init_pub = self.node.create_publisher(Detection2DArray, f"{self.prefix}/init", reliable)
        self.remove_pub = self.node.create_publisher(String, f"{self.prefix}/remove", reliable)
        self.reset_client = self.node.create_client(Trigger, f"{self.prefix}/reset")
        self._cond = threading.Condition()
        self.received: dict[str, list] = {"detections": [], "status": [], "diagnostics": [], "debug_image": []}
        self._subscriptions = {}
        self._clients = {}
        for key, msg_type, topic in (("detections", Detection2DArray, f"{self.prefix}/detections"),
                                     ("status", TrackerStatus, f"{self.prefix}/status"),
                                     ("diagnostics", DiagnosticArray, "/diagnostics")):
            self.subscribe(key, msg_type, topic, reliable)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        # A subscription is destroyed only between two waits of the executor (rclpy's destroy_*
        # racing a wait in another thread can end the spinning thread), and a spinning thread that
        # ends on an error fails the next wait instead of leaving the probe deaf.
        self._spin_lock = threading.Lock()
        self._stop = threading.Event()
        self.spin_error: BaseException | None = None
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException, ShutdownException

        while not self._stop.is_set():
            with self._spin_lock:
                try:
                    self.executor.spin_once(timeout_sec=0.05)
                except (ExternalShutdownException, ShutdownException):
                    return
                except Exception as error:  # noqa: BLE001 - told by the next wait
                    self.spin_error = error
                    return

    def _check_spinning(self) -> None:
        if self.spin_error is not None:
            raise RuntimeError(f"the probe's executor stopped: {self.spin_error!r}") from self.spin_error

    def subscribe(self, key: str, msg_type, topic: str, qos) -> None:
        self.received.setdefault(key, [])

        def store(msg, key=key):
            with self._cond:
                self.received[key].append(msg)
                self._cond.notify_all()

        self._subscriptions[key] = self.node.create_subscription(msg_type, topic, store, qos)

    def unsubscribe(self, key: str) -> None:
        subscription = self._subscriptions.pop(key, None)
        if subscription is not None:
            with self._spin_lock:
                self.node.destroy_subscription(subscription)

    def clear(self) -> None:
        with self._cond:
            for messages in self.received.values():
                messages.clear()

    def wait_for(self, key: str, predicate=lambda msg: True, timeout: float = 10.0):
        """The first received ``key`` message matching ``predicate`` (None on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for msg in self.received[key]:
                    if predicate(msg):
                        return msg
                self._check_spinning()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(min(remaining, 0.5))

    def wait_until_connected(self, node: NodeProcess, timeout: float = 60.0, compressed: bool = False) -> None:
        """Until the node subscribes to our image (``compressed``: compressed image) and init topics
        and offers reset (60 s: a slow machine, or CUDA starting, adds to the imports and warm-up)."""
        images = self.compressed_pub if compressed else self.image_pub
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (images.get_subscription_count() and self.init_pub.get_subscription_count()
                    and self.reset_client.service_is_ready()):
                return
            if not node.alive():
                raise RuntimeError(f"fartrack_node exited:\n{node.log_text()}")
            time.sleep(0.1)
        raise TimeoutError(f"fartrack_node did not connect in {timeout} s:\n{node.log_text()}")

    # Right after discovery a service may already take a request while its response writer has
    # not yet matched this client's reader (a known DDS race: the server logs "failed to send
    # response"), so that response never comes. Idempotent requests are therefore sent again
    # after RESEND_AFTER_S without an answer; a lifecycle transition, which is not idempotent,
    # is settled by asking the state instead (`transition`).
    RESEND_AFTER_S = 3.0

    def reset(self, timeout: float = 10.0):
        """Call ~/reset (idempotent: sent again when its answer does not come)."""
        from std_srvs.srv import Trigger

        return self._call(self.reset_client, Trigger.Request(), timeout, resend_after=self.RESEND_AFTER_S)

    def call(self, srv_type, name: str, request, timeout: float = 10.0, idempotent: bool = True):
        """Call service ``name`` (relative names are under the node) and return the response;
        an ``idempotent`` request is sent again while its answer does not come."""
        if not name.startswith("/"):
            name = f"{self.prefix}/{name}"
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = self.node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {name} is not available")
        return self._call(client, request, timeout, resend_after=self.RESEND_AFTER_S if idempotent else None)

    def set_parameters(self, **values):
        """SetParameters on the node; one rcl_interfaces/SetParametersResult per value."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg() for name, value in values.items()])
        return self.call(SetParameters, "set_parameters", request).results

    def get_parameters(self, *names):
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        response = self.call(GetParameters, "get_parameters", GetParameters.Request(names=list(names)))
        return [parameter_value_to_python(value) for value in response.values]

    def lifecycle_state(self, timeout: float = 30.0) -> int:
        """The managed node's current lifecycle state id (``~/get_state``)."""
        from lifecycle_msgs.srv import GetState

        return self.call(GetState, "get_state", GetState.Request(), timeout).current_state.id

    def transition(self, transition_id: int, timeout: float = 60.0, settle_after: float = 5.0) -> bool:
        """Ask the managed node for a lifecycle transition (``~/change_state``); whether it succeeded.

        No answer after ``settle_after`` s: the node answers ``get_state`` only once the transition
        has run (both services share its executor), so the state then tells whether it reached
        the transition's goal (its answer may have been lost, see RESEND_AFTER_S).
        """
        from lifecycle_msgs.msg import State, Transition
        from lifecycle_msgs.srv import ChangeState

        goals = {Transition.TRANSITION_CONFIGURE: State.PRIMARY_STATE_INACTIVE,
                 Transition.TRANSITION_ACTIVATE: State.PRIMARY_STATE_ACTIVE,
                 Transition.TRANSITION_DEACTIVATE: State.PRIMARY_STATE_INACTIVE,
                 Transition.TRANSITION_CLEANUP: State.PRIMARY_STATE_UNCONFIGURED}
        request = ChangeState.Request(transition=Transition(id=transition_id))
        started = time.monotonic()
        try:
            return self.call(ChangeState, "change_state", request, min(settle_after, timeout),
                             idempotent=False).success
        except TimeoutError:
            if transition_id not in goals:
                raise
        state = self.lifecycle_state(timeout=max(timeout - (time.monotonic() - started), 1.0))
        return state == goals[transition_id]

    def _call(self, client, request, timeout: float, resend_after: float | None = None):
        deadline = time.monotonic() + timeout
        futures = [client.call_async(request)]
        sent_at = time.monotonic()
        while time.monotonic() < deadline:
            self._check_spinning()
            for future in futures:
                if future.done():
                    return future.result()
            if resend_after is not None and time.monotonic() - sent_at >= resend_after:
                futures.append(client.call_async(request))
                sent_at = time.monotonic()
            time.sleep(0.01)
        raise TimeoutError(f"no response from {client.srv_name} in {timeout} s")

    def close(self) -> None:
        import rclpy

        self._stop.set()
        self._thread.join(timeout=5.0)
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5.0)


# --- messages ----------------------------------------------------------------------------------


def stamp_of(stamp_ns: int):
    """``builtin_interfaces/Time`` of integer nanoseconds (the node's own conversion)."""
    from fartrack_ros.node_messages import ns_to_time

    return ns_to_time(stamp_ns)


def header_of(stamp_ns: int, frame_id: str = FRAME_ID):
    from std_msgs.msg import Header

    return Header(stamp=stamp_of(stamp_ns), frame_id=frame_id)


def stamp_ns_of(header) -> int:
    """A header's stamp in integer nanoseconds (the node's own conversion)."""
    from fartrack_ros.node_messages import stamp_to_ns

    return stamp_to_ns(header.stamp)


def image_msg(rgb: np.ndarray, stamp_ns: int, encoding: str = "rgb8", frame_id: str = FRAME_ID,
              bit_depth: int = 16):
    from fartrack_ros.image_conversion import rgb_to_image_msg

    return rgb_to_image_msg(rgb, header_of(stamp_ns, frame_id), encoding=encoding, bit_depth=bit_depth)


def compressed_msg(rgb: np.ndarray, stamp_ns: int, image_format: str = "jpeg", frame_id: str = FRAME_ID):
    from fartrack_ros.image_conversion import rgb_to_compressed_msg

    return rgb_to_compressed_msg(rgb, header_of(stamp_ns, frame_id), image_format=image_format,
                                 jpeg_quality=95)


def init_msg(stamp_ns: int, targets: list[tuple[str, tuple[float, float, float, float]]]):
    """Detection2DArray with one detection per (id, (x, y, w, h)) on the test camera; stamp 0 means latest."""
    from fartrack_ros import node_messages

    return node_messages.init_msg(stamp_ns, targets, frame_id=FRAME_ID)


def box_of(detection) -> tuple[float, float, float, float]:
    bbox = detection.bbox
    return (bbox.center.position.x - bbox.size_x / 2, bbox.center.position.y - bbox.size_y / 2,
            bbox.size_x, bbox.size_y)


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - w * h
    return w * h / union if union > 0 else 0.0


# --- a ground-truth sequence -------------------------------------------------------------------


def ground_truth_sequence(length: int = 40, seed: int = 1_000_003, difficulty: float = 0.1,
                          width: int = 320, height: int = 240, luma_contrast: bool = False):
    """(frames, boxes): an easy held-out synthetic sequence, 320x240 unless told (``luma_contrast``:
    the scene drawn for a mono camera)."""
    from fartrack_ros.data.synthetic import SyntheticConfig, generate_sequence

    config = SyntheticConfig(width=width, height=height, min_length=length, max_length=length,
                             difficulty=difficulty, luma_contrast=luma_contrast)
    sequence = generate_sequence(seed, config)
    return sequence.frames, sequence.boxes


# --- driving the node ----------------------------------------------------------------------------


def publish_until(probe: Probe, publish, key: str, predicate, attempts: int = 5, timeout: float = 4.0):
    """Publish (again) until a matching ``key`` message arrives; the message or None."""
    for _ in range(attempts):
        publish()
        found = probe.wait_for(key, predicate, timeout)
        if found is not None:
            return found
    return None


def start_targets(probe: Probe, frame: np.ndarray, stamp_ns: int, targets, next_frame: np.ndarray,
                  next_stamp_ns: int, publish_image=None):
    """Publish ``frame``, init ``targets`` on it by stamp, then publish ``next_frame`` until its
    detections arrive (re-sending all three if a best-effort image was lost). Returns them."""
    publish_image = publish_image or (lambda rgb, stamp: probe.image_pub.publish(image_msg(rgb, stamp)))

    def attempt():
        publish_image(frame, stamp_ns)
        time.sleep(0.3)
        probe.init_pub.publish(init_msg(stamp_ns, targets))
        time.sleep(0.3)
        publish_image(next_frame, next_stamp_ns)

    return publish_until(probe, attempt, "detections",
                         lambda msg: stamp_ns_of(msg.header) == next_stamp_ns, attempts=4)


def track_lockstep(probe: Probe, frames, stamps, publish_image=None, timeout: float = 4.0):
    """Publish each frame after the previous one's detections arrived; the detections per frame."""
    publish_image = publish_image or (lambda rgb, stamp: probe.image_pub.publish(image_msg(rgb, stamp)))
    results = []
    for rgb, stamp in zip(frames, stamps):
        results.append(publish_until(
            probe, lambda rgb=rgb, stamp=stamp: publish_image(rgb, stamp), "detections",
            lambda msg, stamp=stamp: stamp_ns_of(msg.header) == stamp, attempts=3, timeout=timeout))
    return results


def track_sequence(probe: Probe, frames, first_box, base_ns: int, encoding: str = "bgr8", bit_depth: int = 16):
    """Init a target "target" on frame 0 and track the rest in lock-step (images in ``encoding``,
    16-bit ones with data in ``bit_depth`` bits); the detections of frames 1.., each checked for its
    stamp, frame_id and id."""
    stamps = [base_ns + i * 50_000_000 for i in range(len(frames))]

    def publish(rgb, stamp):
        probe.image_pub.publish(image_msg(rgb, stamp, encoding=encoding, bit_depth=bit_depth))

    probe.reset()
    first = start_targets(probe, frames[0], stamps[0], [("target", tuple(first_box))], frames[1], stamps[1],
                          publish_image=publish)
    rest = track_lockstep(probe, frames[2:], stamps[2:], publish_image=publish)
    results = [first, *rest]
    for index, detections in enumerate(results, start=1):
        assert detections is not None, f"no detections for frame {index}"
        assert stamp_ns_of(detections.header) == stamps[index] and detections.header.frame_id == FRAME_ID
        assert [d.id for d in detections.detections] in (["target"], []), "[] only while LOST"
    return results


def assert_tracks_as_the_library(probe: Probe, base_ns: int, seed: int = HELD_OUT_SEED) -> None:
    """The node's boxes and scores on 12 frames of a held-out sequence are the library Tracker's."""
    import pytest
    import torch

    from fartrack_ros.model import load_checkpoint
    from fartrack_ros.tracker import Tracker

    frames, boxes = ground_truth_sequence(12, seed, difficulty=0.1)

    published = track_sequence(probe, frames, boxes[0], base_ns)

    torch.manual_seed(0)
    tracker = Tracker(load_checkpoint(str(weights_for_tests()), device="cpu"))
    tracker.add_target(frames[0], tuple(boxes[0]), "target")
    for index, detections in enumerate(published, start=1):
        (expected,) = tracker.track(frames[index])
        if expected.state.value == "TRACKING":
            assert detections.detections, f"frame {index}: node lost a target the library tracks"
            assert iou(box_of(detections.detections[0]), expected.box_xywh) > 0.98, index
            score = detections.detections[0].results[0].hypothesis.score
            assert score == pytest.approx(expected.score, abs=1e-3)
        else:
            assert not detections.detections
