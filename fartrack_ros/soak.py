"""Soak test of the node: many frames with two targets, watching memory.

``fartrack-soak`` (or ``python -m fartrack_ros.soak``) starts ``fartrack_node`` in its own process
on an isolated ROS graph, initialises two targets on a generated 320x240 sequence and sends
``--frames`` frames of that sequence, looped, over rclpy. By default frames go closed-loop (the
next one as soon as the node's ``~/status`` for the previous one arrived), so the node runs as
fast as it can and no frame is lost; ``--rate-hz`` sends at a fixed rate instead (the node then
drops what it cannot keep up with, and counts it).

``lost_threshold`` is 0, so every frame is confident and adds a template: the template memory
grows as fast as it can and must stop at ``--template-cap``. Every ``--sample-every`` frames the
node's resident memory (``VmRSS`` of ``/proc/<pid>/status``) is read. The table printed at the end
gives frames, wall time, FPS, RSS after warm-up and at the end, growth in %, templates held per
target (min/max after warm-up) against the cap, dropped frames. Exit status 0 when RSS grew less
than ``--max-growth-pct`` after warm-up and the templates were held at the cap, else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .cli.messages import CliError, command
from .cli.options import int_at_least, non_negative_float, non_negative_int, positive_int, variant_name
from .demo import Child, child_env, fartrack_node_argv, ros_missing

NODE_NAME = "fartrack_soak"
IMAGE_TOPIC = f"/{NODE_NAME}_image"
WIDTH, HEIGHT = 320, 240
# The node's log lines in this form, so a warning's time can be read back (rcutils' own default).
LOG_FORMAT = "[{severity}] [{time}] [{name}]: {message}"
MAX_WARNINGS_SHOWN = 10
_WARNING_LINE = re.compile(r"^\[(WARN|ERROR|FATAL)\] \[(\d+(?:\.\d+)?)\]")


@dataclass
class SoakConfig:
    """What to run: frame count, sampling, the node's model and template cap."""

    frames: int = 10_000
    warmup_frames: int = 0  # 0: a tenth of the frames, at least twice the cap
    sample_every: int = 100
    template_cap: int = 16
    weights: str = ""  # empty: the bundled model
    variant: str = ""
    rate_hz: float = 0.0  # 0: closed loop
    node_threads: int = 0  # the node's cpu_threads; 0: its default
    frame_timeout_s: float = 5.0
    max_growth_pct: float = 5.0
    sequence_length: int = 120
    seed: int = 1_000_017  # held-out range

    @property
    def warmup(self) -> int:
        """Frames before the RSS baseline: a tenth of the run, and at least twice the cap, by
        which every target's memory has filled (frames below lost_threshold add no template)."""
        return self.warmup_frames or max(self.frames // 10, 2 * self.template_cap)


@dataclass
class SoakResult:
    """The figures of one soak run (memory in MiB)."""

    frames_sent: int
    frames_answered: int
    wall_s: float
    fps: float
    warmup_frame: int
    rss_warm_mib: float
    rss_end_mib: float
    rss_max_mib: float
    growth_pct: float
    slope_mib_per_1000: float
    templates_min: int
    templates_max: int
    template_cap: int
    dropped_frames: int
    node_warnings: int  # logged after both targets started
    startup_warnings: int  # logged before: a frame or init lost to discovery and sent again
    node_exit_code: int | None
    model: str
    device: str
    max_growth_pct: float
    samples: list[tuple[int, float]] = field(default_factory=list)  # (frame, RSS MiB)
    warning_lines: list[str] = field(default_factory=list)  # the node's warnings and errors, as logged

    @property
    def cap_held(self) -> bool:
        """Whether every target held exactly the cap after warm-up: memory full, and never past it."""
        return self.templates_min == self.templates_max == self.template_cap

    @property
    def passed(self) -> bool:
        """The verdict: RSS grew less than ``max_growth_pct``, the cap held, frames answered, the node
        did not fail (exit 0, or still running)."""
        return (self.growth_pct < self.max_growth_pct and self.cap_held
                and self.frames_answered > 0 and self.node_exit_code in (0, None))


def rss_kib(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


class _StatusWatch:
    """Latest ``~/status`` seen, per-target templates held after warm-up, answered stamps."""

    def __init__(self):
        self.cond = threading.Condition()
        self.answered: set[int] = set()
        self.last = None
        self.count_templates = False
        self.templates_min: int | None = None
        self.templates_max: int | None = None

    def on_status(self, msg) -> None:
        """Note the status's image stamp, and the templates held once counting."""
        from .node_messages import stamp_to_ns

        stamp = stamp_to_ns(msg.header.stamp)
        with self.cond:
            self.answered.add(stamp)
            self.last = msg
            if self.count_templates and msg.targets:
                held = [int(t.templates_held) for t in msg.targets]
                self.templates_min = min(held + ([self.templates_min] if self.templates_min is not None else []))
                self.templates_max = max(held + ([self.templates_max] if self.templates_max is not None else []))
            self.cond.notify_all()

    def wait(self, predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(remaining)
            return True


def split_warnings(lines: list[str], started_s: float) -> tuple[list[str], list[str]]:
    """The node's warning and error lines logged before and after ``started_s`` (epoch seconds);
    a warning whose time cannot be read counts as after."""
    before, after = [], []
    for line in lines:
        match = _WARNING_LINE.match(line)
        if match is None:
            if "[WARN]" in line or "[ERROR]" in line:
                after.append(line)
            continue
        (before if float(match.group(2)) < started_s else after).append(line)
    return before, after


def _image_msgs(config: SoakConfig) -> tuple[list, list[tuple[str, tuple[float, float, float, float]]]]:
    """The looped sequence as ready ``sensor_msgs/Image`` messages, and the two init boxes."""
    from std_msgs.msg import Header

    from .data.synthetic import SyntheticConfig, generate_sequence
    from .image_conversion import rgb_to_image_msg

    sequence = generate_sequence(config.seed, SyntheticConfig(
        width=WIDTH, height=HEIGHT, min_length=config.sequence_length,
        max_length=config.sequence_length, difficulty=0.2))
    messages = []
    for index in range(len(sequence)):
        frame = np.asarray(sequence.frame(index), dtype=np.uint8)
        messages.append(rgb_to_image_msg(frame, Header(frame_id="soak_camera")))
    x, y, w, h = (float(v) for v in sequence.boxes[0])
    second = (WIDTH - x - w, HEIGHT - y - h, w, h)  # the mirrored spot: another patch of scene
    return messages, [("target", (x, y, w, h)), ("second", second)]


def _node_argv(config: SoakConfig) -> list[str]:
    """The soaked node: CPU, two targets, reliable images, a template every frame (lost_threshold 0)."""
    return fartrack_node_argv(NODE_NAME, {
        "device": "cpu", "weights": config.weights, "variant": config.variant,
        "template_memory_cap": config.template_cap, "lost_threshold": 0.0, "qos_reliability": "reliable",
        "max_targets": 2, "cpu_threads": config.node_threads}, remaps={"image": IMAGE_TOPIC})


def run_soak(config: SoakConfig, progress: Callable[[str], None] | None = None) -> SoakResult:
    """Run one soak; ``progress(text)`` is called with a line at every RSS sample."""
    import rclpy
    from rclpy.context import Context
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from .executors import SpinThread
    from .msg import TrackerStatus
    from .node_messages import ns_to_time

    if config.template_cap < 5:
        raise ValueError(f"template_cap must be >= 5 (the template slots), got {config.template_cap}")
    messages, targets = _image_msgs(config)
    env = dict(child_env(), RCUTILS_CONSOLE_OUTPUT_FORMAT=LOG_FORMAT)
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("fartrack_soak_driver", context=context)
    reliable = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
    image_pub = node.create_publisher(Image, IMAGE_TOPIC, reliable)
    init_pub = node.create_publisher(Detection2DArray, f"/{NODE_NAME}/init", reliable)
    watch = _StatusWatch()
    status_sub = node.create_subscription(TrackerStatus, f"/{NODE_NAME}/status", watch.on_status, reliable)
    spinner = SpinThread(node, "soak_driver_spin")
    child = Child("node", _node_argv(config), env, echo=False)
    samples: list[tuple[int, float]] = []
    period_ns = 33_333_333
    base_ns = time.time_ns()
    try:
        _wait_connected(child, node, image_pub, init_pub, status_sub, timeout_s=120.0)
        base_ns = _start_targets(child, watch, image_pub, init_pub, messages, targets, base_ns, period_ns)
        started_epoch_s = time.time()
        started = time.monotonic()
        sent = 0
        for index in range(1, config.frames + 1):
            stamp = base_ns + (index + 1) * period_ns
            msg = messages[(index + 1) % len(messages)]  # frames 0 and 1 went out at the init
            msg.header.stamp = ns_to_time(stamp)
            image_pub.publish(msg)
            sent += 1
            if config.rate_hz > 0:
                time.sleep(max(0.0, started + index / config.rate_hz - time.monotonic()))
            elif not watch.wait(lambda: stamp in watch.answered, config.frame_timeout_s):
                if child.process.poll() is not None:
                    raise RuntimeError("fartrack_node exited during the soak:\n" + "\n".join(child.lines[-20:]))
            if index == config.warmup:
                with watch.cond:
                    watch.count_templates = True
            if index % config.sample_every == 0 or index == config.warmup or index == config.frames:
                samples.append((index, rss_kib(child.process.pid) / 1024.0))
                if progress is not None:
                    progress(f"frame {index:6d}  RSS {samples[-1][1]:8.1f} MiB  "
                             f"{index / (time.monotonic() - started):6.1f} FPS")
        last_stamp = base_ns + (config.frames + 1) * period_ns
        watch.wait(lambda: last_stamp in watch.answered, config.frame_timeout_s)
        wall_s = time.monotonic() - started
    finally:
        child.stop()
        spinner.stop()
        rclpy.try_shutdown(context=context)
    return _summarise(config, samples, watch, sent, wall_s, child, started_epoch_s)


def _wait_connected(child, node, image_pub, init_pub, status_sub, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    # node.count_publishers: Subscription.get_publisher_count came with Iron, not in Humble's rclpy
    while not (image_pub.get_subscription_count() and init_pub.get_subscription_count()
               and node.count_publishers(status_sub.topic_name)):
        if child.process.poll() is not None:
            raise RuntimeError("fartrack_node exited:\n" + "\n".join(child.lines[-20:]))
        if time.monotonic() > deadline:
            raise TimeoutError("fartrack_node did not connect:\n" + "\n".join(child.lines[-20:]))
        time.sleep(0.05)


def _start_targets(child, watch: _StatusWatch, image_pub, init_pub, messages: list, targets: list,
                   base_ns: int, period_ns: int) -> int:
    """Frame 0, the init on it, frame 1 until its status lists both targets; what discovery lost
    is sent again (the init only while no status has listed both targets), with later stamps, as a
    camera's (a stamp sent again after a later one reads as a camera clock gone back). Returns the
    stamp of the frame 0 the soak's frames follow."""
    from .node_messages import init_msg, ns_to_time

    def started() -> bool:
        return watch.last is not None and len(watch.last.targets) == len(targets)

    for attempt in range(5):
        first_ns = base_ns + 2 * attempt * period_ns
        stamp = first_ns + period_ns
        if not started():
            first = messages[0]
            first.header.stamp = ns_to_time(first_ns)
            image_pub.publish(first)
            time.sleep(0.3)
            init_pub.publish(init_msg(first_ns, targets))
            time.sleep(0.3)
        second = messages[1]
        second.header.stamp = ns_to_time(stamp)
        image_pub.publish(second)
        if watch.wait(lambda: stamp in watch.answered and started(), 10.0):
            return first_ns
        if child.process.poll() is not None:
            break
    raise RuntimeError("the node did not start tracking both targets:\n" + "\n".join(child.lines[-20:]))


def _summarise(config: SoakConfig, samples, watch: _StatusWatch, sent: int, wall_s: float,
               child, started_epoch_s: float) -> SoakResult:
    warm = next((rss for frame, rss in samples if frame >= config.warmup), samples[0][1])
    after = [(frame, rss) for frame, rss in samples if frame >= config.warmup]
    end = samples[-1][1]
    slope = 0.0
    if len(after) >= 2:
        frames, rss = np.array(after, dtype=np.float64).T
        slope = float(np.polyfit(frames, rss, 1)[0]) * 1000.0
    last = watch.last
    startup, after_start = split_warnings(child.lines, started_epoch_s)
    return SoakResult(
        frames_sent=sent,
        frames_answered=len(watch.answered) - 1,  # frame 1 answered at the init
        wall_s=wall_s,
        fps=sent / wall_s if wall_s > 0 else 0.0,
        warmup_frame=config.warmup,
        rss_warm_mib=warm,
        rss_end_mib=end,
        rss_max_mib=max(rss for _, rss in after) if after else end,
        growth_pct=100.0 * (end - warm) / warm,
        slope_mib_per_1000=slope,
        templates_min=watch.templates_min if watch.templates_min is not None else 0,
        templates_max=watch.templates_max if watch.templates_max is not None else 0,
        template_cap=config.template_cap,
        dropped_frames=int(last.dropped_frames) if last is not None else 0,
        node_warnings=len(after_start),
        startup_warnings=len(startup),
        node_exit_code=child.process.returncode,
        model=last.model if last is not None else "",
        device=last.device if last is not None else "",
        max_growth_pct=config.max_growth_pct,
        samples=samples,
        warning_lines=startup + after_start,
    )


def format_result(result: SoakResult) -> str:
    """The soak's figures as a plain-text table."""
    rows = [
        ("frames sent / answered", f"{result.frames_sent} / {result.frames_answered}"),
        ("wall time", f"{result.wall_s:.1f} s"),
        ("throughput", f"{result.fps:.1f} FPS"),
        (f"RSS after warm-up (frame {result.warmup_frame})", f"{result.rss_warm_mib:.1f} MiB"),
        ("RSS at end", f"{result.rss_end_mib:.1f} MiB"),
        ("RSS max after warm-up", f"{result.rss_max_mib:.1f} MiB"),
        ("RSS growth after warm-up", f"{result.growth_pct:+.2f} % (limit {result.max_growth_pct:g} %)"),
        ("RSS trend after warm-up", f"{result.slope_mib_per_1000:+.3f} MiB / 1000 frames"),
        ("templates held per target", f"min {result.templates_min} / max {result.templates_max} "
                                      f"(cap {result.template_cap})"),
        ("dropped frames (node)", str(result.dropped_frames)),
        ("node warnings/errors", f"{result.node_warnings} (and {result.startup_warnings} while starting "
                                 "the targets)"),
        ("node exit code", str(result.node_exit_code)),
        ("verdict", "PASS" if result.passed else
         f"FAIL (growth < {result.max_growth_pct:g} %: {result.growth_pct < result.max_growth_pct}, "
         f"templates at cap: {result.cap_held})"),
    ]
    width = max(len(name) for name, _ in rows)
    head = (f"fartrack_node soak: 2 targets, {WIDTH}x{HEIGHT}, model {result.model or '?'} "
            f"on {result.device or '?'}")
    shown = result.warning_lines[:MAX_WARNINGS_SHOWN]
    more = len(result.warning_lines) - len(shown)
    lines = [head] + [f"  {name:<{width}}  {value}" for name, value in rows]
    if shown:
        lines += ["  the node's warnings/errors:"] + [f"    {line}" for line in shown]
        lines += [f"    ... and {more} more"] if more else []
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """``fartrack-soak``'s options, defaults taken from `SoakConfig`."""
    parser = argparse.ArgumentParser(prog="fartrack-soak", description=__doc__.split("\n\n")[0])
    defaults = SoakConfig()
    parser.add_argument("--frames", type=positive_int, default=defaults.frames,
                        help=f"frames sent through the node (default {defaults.frames}; more than the warm-up)")
    parser.add_argument("--warmup-frames", type=non_negative_int, default=0,
                        help="frames before the RSS baseline is taken (default: a tenth of --frames, at least "
                             "twice --template-cap)")
    parser.add_argument("--sample-every", type=positive_int, default=defaults.sample_every,
                        help=f"RSS sample period in frames (default {defaults.sample_every})")
    parser.add_argument("--template-cap", type=int_at_least(5), default=defaults.template_cap,
                        help=f"the node's template_memory_cap (small, so it is reached early; default "
                             f"{defaults.template_cap})")
    parser.add_argument("--weights", default="", help="checkpoint (default: the bundled model)")
    parser.add_argument("--variant", default="", type=variant_name,
                        help="tiny, nano, pico or a number of layers (default: as in the checkpoint)")
    parser.add_argument("--rate-hz", type=non_negative_float, default=0.0, help="send at this rate (default: closed loop)")
    parser.add_argument("--node-threads", type=non_negative_int, default=0, help="the node's cpu_threads parameter (0: automatic)")
    parser.add_argument("--max-growth-pct", type=non_negative_float, default=defaults.max_growth_pct,
                        help="the soak fails when the node's RSS grows more than this percentage after the "
                             f"warm-up (default {defaults.max_growth_pct:g})")
    parser.add_argument("--json", type=Path, help="also write the figures (and RSS samples) here")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


@command("fartrack-soak")
def main(argv: list[str] | None = None) -> int:
    """``fartrack-soak [--frames N] [--template-cap C] ...``: run, print the table, exit 0 on PASS."""
    parser = build_parser()
    options = parser.parse_args(sys.argv[1:] if argv is None else argv)
    config = SoakConfig(frames=options.frames, warmup_frames=options.warmup_frames,
                        sample_every=options.sample_every, template_cap=options.template_cap,
                        weights=options.weights, variant=options.variant, rate_hz=options.rate_hz,
                        node_threads=options.node_threads, max_growth_pct=options.max_growth_pct)
    if config.warmup >= config.frames:
        parser.error(f"the warm-up ({config.warmup} frames{'' if options.warmup_frames else ', by default'}) "
                     f"must be shorter than --frames {config.frames}")
    missing = ros_missing()
    if missing is not None:
        raise CliError(missing, code=2)
    if options.json is not None:  # before the minutes of soaking, not after
        try:
            options.json.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(f"--json {options.json}: cannot make its folder ({exc.strerror})", code=2) from None
        if options.json.is_dir() or not os.access(options.json.parent, os.W_OK):
            raise CliError(f"--json {options.json}: not a file that can be written", code=2)
    progress = None if options.quiet else (lambda line: print(line, flush=True))
    try:
        result = run_soak(config, progress)
    except (RuntimeError, TimeoutError, OSError) as exc:  # the node would not start or answer
        raise CliError(exc) from None
    print(format_result(result), flush=True)
    if options.json is not None:
        try:
            options.json.write_text(json.dumps(dict(asdict(result), passed=result.passed), indent=1))
        except OSError as exc:  # the figures are printed above all the same
            raise CliError(f"cannot write --json {options.json}: {exc.strerror}") from None
    return 0 if result.passed else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
