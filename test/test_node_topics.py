"""The node over real rclpy, in its own process: init by stamp, detections, ids, remove, reset,
two targets, status, diagnostics, debug image, drops, bad input, parameters at run time.

One node serves the whole module. It runs with ``lost_threshold:=0.0`` so that no target is ever
declared LOST: these tests check plumbing and must not depend on how well the weights track
(test_node_tracking.py checks that, with the bundled model).
"""

import re
import time
from pathlib import Path

import numpy as np
import pytest

from node_helpers import (
    FRAME_ID,
    NODE_NAME,
    box_of,
    image_msg,
    init_msg,
    running_node,
    stamp_ns_of,
    start_targets,
    track_lockstep,
    weights_for_tests,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

WIDTH, HEIGHT = 320, 240


def _scene(shift: int = 0, seed: int = 0) -> np.ndarray:
    """A textured background with two distinct objects, shifted right by ``shift`` px."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(60, 120, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    frame[80 + 0:120, 60 + shift:100 + shift] = (220, 40, 40)
    frame[140:190, 200 - shift:240 - shift] = (40, 40, 220)
    return frame


BOX_RED = (60.0, 80.0, 40.0, 40.0)
BOX_BLUE = (200.0, 140.0, 40.0, 50.0)


class StampSource:
    """Unique stamps across the module, 33 ms apart as a 30 Hz camera's (the node measures frame
    intervals from them; one jump among its last 5 does not move their median), 5 to 8 s behind
    the wall clock (its diagnostics warn of stamps 10 s behind or 0.1 s ahead of its clock)."""

    def __init__(self):
        self.next_ns = time.time_ns() - 5_000_000_000  # room for 150 stamps drawn faster than 30 Hz

    def __call__(self) -> int:
        self.next_ns += 33_000_000
        if self.next_ns < time.time_ns() - 8_000_000_000:  # fallen behind while tests waited
            self.next_ns = time.time_ns() - 5_000_000_000
        return self.next_ns


@pytest.fixture(scope="module")
def ros():
    # qos_depth 16: a burst of frames reaches the node's image callback whole, so the frames it
    # drops are its own (newest kept, the others counted), not replaced in the DDS reader's history
    with running_node({"weights": str(weights_for_tests()), "device": "cpu", "lost_threshold": 0.0,
                       "diagnostics_period": 0.5, "frame_cache_size": 10, "cpu_threads": 1,
                       "qos_depth": 16}) as pair:
        yield pair


@pytest.fixture
def node(ros):
    node, probe = ros
    assert probe.reset().success
    probe.clear()
    yield node
    assert node.alive(), node.log_text()


@pytest.fixture
def probe(ros):
    return ros[1]


@pytest.fixture(scope="module")
def stamps():
    return StampSource()


def _start(probe, stamps, targets):
    init_stamp, first_stamp = stamps(), stamps()
    detections = start_targets(probe, _scene(0), init_stamp, targets, _scene(2), first_stamp)
    assert detections is not None, "no detections after init"
    return detections


def _start_after(probe, stamps, send_frame_and_init):
    """``send_frame_and_init(init_stamp)``, then the next frame, until its detections arrive (fresh
    stamps on each of 3 tries: a best-effort image may be lost); (detections or None, init stamp)."""
    for _ in range(3):
        init_stamp, next_stamp = stamps(), stamps()
        send_frame_and_init(init_stamp)
        time.sleep(0.3)
        probe.image_pub.publish(image_msg(_scene(2), next_stamp))
        detections = probe.wait_for("detections", lambda m, s=next_stamp: stamp_ns_of(m.header) == s,
                                    timeout=2.0)
        if detections is not None:
            break
    return detections, init_stamp


def test_detections_copy_the_image_header_and_name_the_target(node, probe, stamps):
    init_stamp, first_stamp = stamps(), stamps()

    detections = start_targets(probe, _scene(0), init_stamp, [("red", BOX_RED)], _scene(2), first_stamp)

    assert detections is not None, node.log_text()
    assert stamp_ns_of(detections.header) == first_stamp
    assert detections.header.frame_id == FRAME_ID
    assert [d.id for d in detections.detections] == ["red"]
    detection = detections.detections[0]
    assert stamp_ns_of(detection.header) == first_stamp and detection.header.frame_id == FRAME_ID
    assert detection.results[0].hypothesis.class_id == "red"
    assert 0.0 <= detection.results[0].hypothesis.score <= 1.0
    assert detection.bbox.size_x > 0 and detection.bbox.size_y > 0


def test_empty_id_gets_an_automatic_id(node, probe, stamps):
    detections = _start(probe, stamps, [("", BOX_RED), ("", BOX_BLUE)])

    ids = [d.id for d in detections.detections]
    assert len(ids) == 2 and all(ids) and len(set(ids)) == 2


def test_a_target_listed_twice_takes_its_last_box_and_a_foreign_frame_id_is_named(node, probe, stamps):
    def send(init_stamp):
        probe.image_pub.publish(image_msg(_scene(0), init_stamp))
        time.sleep(0.3)
        init = init_msg(init_stamp, [("twice", BOX_BLUE), ("twice", BOX_RED)])
        init.header.frame_id = "map"
        probe.init_pub.publish(init)

    detections, _ = _start_after(probe, stamps, send)

    assert detections is not None, node.log_text()
    (detection,) = detections.detections
    assert detection.id == "twice" and abs(detection.bbox.center.position.x - 82.0) < 8.0  # the red box
    log = node.log_text()
    assert "init lists target 'twice' 2 times: its last box is used" in log
    assert f"init frame_id 'map' differs from the image frame_id '{FRAME_ID}'" in log


def test_two_targets_are_tracked_at_once(node, probe, stamps):
    _start(probe, stamps, [("red", BOX_RED), ("blue", BOX_BLUE)])

    later = [stamps() for _ in range(3)]
    results = track_lockstep(probe, [_scene(4 + 2 * i) for i in range(3)], later)

    for detections in results:
        assert detections is not None
        assert sorted(d.id for d in detections.detections) == ["blue", "red"]
    status = probe.wait_for("status", lambda m: stamp_ns_of(m.header) == later[-1])
    assert sorted(t.id for t in status.targets) == ["blue", "red"]
    assert all(t.templates_held >= 1 for t in status.targets)


def test_remove_drops_only_that_target(node, probe, stamps):
    from std_msgs.msg import String

    _start(probe, stamps, [("red", BOX_RED), ("blue", BOX_BLUE)])

    probe.remove_pub.publish(String(data="red"))
    time.sleep(0.5)
    (detections,) = track_lockstep(probe, [_scene(6)], [stamps()])

    assert detections is not None and [d.id for d in detections.detections] == ["blue"]


def test_refusals_of_different_targets_are_each_logged(node, probe):
    from std_msgs.msg import String

    for name in ("nobody-a", "nobody-b"):  # one right after the other: not repeats of one warning
        probe.remove_pub.publish(String(data=name))
    deadline = time.monotonic() + 5.0
    while "'nobody-b'" not in node.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)

    assert "remove ignored: no target 'nobody-a'" in node.log_text()
    assert "remove ignored: no target 'nobody-b'" in node.log_text()


def test_reset_drops_all_targets_says_so_on_the_next_frame_and_stops_work(node, probe, stamps):
    _start(probe, stamps, [("red", BOX_RED), ("blue", BOX_BLUE)])

    response = probe.reset()
    (emptied,) = track_lockstep(probe, [_scene(6)], [stamps()])
    status = probe.wait_for("status", lambda m: m.header.stamp == emptied.header.stamp, timeout=2.0)
    stamp = stamps()
    probe.image_pub.publish(image_msg(_scene(8), stamp))

    assert response.success and "2 target(s)" in response.message
    assert "red" in response.message and "blue" in response.message
    # subscribers drop the removed boxes: one empty array and status for the frame after the reset
    assert emptied is not None and list(emptied.detections) == [] and emptied.header.frame_id == FRAME_ID
    assert status is not None and list(status.targets) == []
    assert probe.wait_for("detections", lambda m: stamp_ns_of(m.header) == stamp, timeout=1.5) is None


def test_removing_the_last_target_sends_one_empty_detections_array(node, probe, stamps):
    from std_msgs.msg import String

    _start(probe, stamps, [("red", BOX_RED)])
    probe.remove_pub.publish(String(data="red"))
    time.sleep(0.5)
    (emptied,) = track_lockstep(probe, [_scene(6)], [stamps()])
    stamp = stamps()
    probe.image_pub.publish(image_msg(_scene(8), stamp))

    assert emptied is not None and list(emptied.detections) == []
    assert probe.wait_for("detections", lambda m: stamp_ns_of(m.header) == stamp, timeout=1.5) is None


def test_detections_carry_the_class_their_init_named(node, probe, stamps):
    from vision_msgs.msg import ObjectHypothesisWithPose

    def send(init_stamp):
        probe.image_pub.publish(image_msg(_scene(0), init_stamp))
        time.sleep(0.3)
        msg = init_msg(init_stamp, [("red", BOX_RED), ("blue", BOX_BLUE)])
        named = ObjectHypothesisWithPose()
        named.hypothesis.class_id, named.hypothesis.score = "person", 0.9
        msg.detections[0].results.append(named)
        probe.init_pub.publish(msg)

    detections, _ = _start_after(probe, stamps, send)

    assert detections is not None, node.log_text()[-2000:]
    classes = {d.id: d.results[0].hypothesis.class_id for d in detections.detections}
    assert classes == {"red": "person", "blue": "blue"}  # no class named: the target id, as before


def test_init_with_a_zero_stamp_uses_the_latest_frame(node, probe, stamps):
    probe.image_pub.publish(image_msg(_scene(0), stamps()))
    time.sleep(0.5)
    probe.init_pub.publish(init_msg(0, [("latest", BOX_RED)]))
    time.sleep(0.5)

    (detections,) = track_lockstep(probe, [_scene(2)], [stamps()])

    assert detections is not None and [d.id for d in detections.detections] == ["latest"]


def test_init_for_a_stamp_not_in_the_cache_is_ignored_with_a_warning(node, probe, stamps):
    unknown = stamps()
    probe.image_pub.publish(image_msg(_scene(0), stamps()))
    time.sleep(0.3)
    since = len(node.log_text())  # the log is the module's: only this init's line counts
    probe.init_pub.publish(init_msg(unknown, [("ghost", BOX_RED)]))
    time.sleep(0.5)
    stamp = stamps()
    probe.image_pub.publish(image_msg(_scene(2), stamp))

    assert probe.wait_for("detections", lambda m: stamp_ns_of(m.header) == stamp, timeout=1.5) is None
    refusal = f"init ignored for 'ghost': no cached frame has stamp {unknown // 10**9}.{unknown % 10**9:09d} "
    deadline = time.monotonic() + 5.0  # the init may wait up to its frame's wait before the refusal
    while refusal not in node.log_text()[since:] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert refusal in node.log_text()[since:], node.log_text()[since:]


def test_an_init_that_overtakes_its_image_waits_for_it(node, probe, stamps):
    # a detector's answer is small and can reach the node before the large image it refers to
    def send(init_stamp):
        probe.init_pub.publish(init_msg(init_stamp, [("early", BOX_RED)]))
        time.sleep(0.2)
        probe.image_pub.publish(image_msg(_scene(0), init_stamp))

    detections, init_stamp = _start_after(probe, stamps, send)

    assert detections is not None, node.log_text()
    assert [d.id for d in detections.detections] == ["early"]
    assert f"on frame {init_stamp // 10**9}.{init_stamp % 10**9:09d}" in node.log_text()


def test_an_init_whose_image_never_comes_is_refused_after_waiting(node, probe, stamps):
    probe.image_pub.publish(image_msg(_scene(0), stamps()))
    time.sleep(0.3)
    never = stamps()
    probe.init_pub.publish(init_msg(never, [("late", BOX_RED)]))

    refusal = (f"no cached frame has stamp {never // 10**9}.{never % 10**9:09d} (the init waited for that "
               "frame but it did not arrive within the wait (1 s, longer at low frame rates)")
    deadline = time.monotonic() + 5.0
    while refusal not in node.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert refusal in node.log_text()
    # no longer held: its frame arriving now starts nothing
    probe.image_pub.publish(image_msg(_scene(0), never))
    time.sleep(0.3)
    stamp = stamps()
    probe.image_pub.publish(image_msg(_scene(2), stamp))
    assert probe.wait_for("detections", lambda m: stamp_ns_of(m.header) == stamp, timeout=1.5) is None


def test_init_can_refer_to_a_frame_older_than_the_latest(node, probe, stamps):
    old = stamps()
    probe.image_pub.publish(image_msg(_scene(0), old))
    time.sleep(0.2)
    probe.image_pub.publish(image_msg(_scene(30), stamps()))  # red object moved 30 px since
    time.sleep(0.3)
    probe.init_pub.publish(init_msg(old, [("red", BOX_RED)]))
    time.sleep(0.5)

    (detections,) = track_lockstep(probe, [_scene(2)], [stamps()])

    assert detections is not None and [d.id for d in detections.detections] == ["red"]
    assert f"started at x=60.0 y=80.0 w=40.0 h=40.0 on frame {old // 10**9}.{old % 10**9:09d}" in node.log_text()


def test_status_reports_targets_and_stage_latencies(node, probe, stamps):
    from fartrack_ros.msg import TargetStatus

    detections = _start(probe, stamps, [("red", BOX_RED)])
    stamp = stamp_ns_of(detections.header)

    status = probe.wait_for("status", lambda m: stamp_ns_of(m.header) == stamp)

    assert status is not None and status.header.frame_id == FRAME_ID
    assert [(t.id, t.state) for t in status.targets] == [("red", TargetStatus.TRACKING)]
    assert status.targets[0].score == pytest.approx(detections.detections[0].results[0].hypothesis.score, abs=1e-6)
    assert status.model_ms > 0 and status.crop_ms > 0 and status.convert_ms > 0
    assert status.total_ms >= status.model_ms
    assert status.device == "cpu" and status.model.endswith("/torch")


def test_diagnostics_report_rates_latencies_device_and_model(node, probe, stamps):
    _start(probe, stamps, [("red", BOX_RED)])
    track_lockstep(probe, [_scene(4), _scene(6)], [stamps(), stamps()])

    def has_latency(msg):  # and counts this test's target (a message from before the init may be queued)
        values = {kv.key: kv.value for status in msg.status for kv in status.values}
        return values.get("frames_processed", "0") != "0" and values.get("targets") == "1"

    msg = probe.wait_for("diagnostics", has_latency, timeout=5.0)

    assert msg is not None
    (status,) = msg.status
    values = {kv.key: kv.value for kv in status.values}
    assert status.name == f"{NODE_NAME}: tracker"  # diagnostic_updater's form: no leading slash
    for key in ("fps_in", "fps_out", "frames_dropped", "device", "model", "delay_from_stamp_p50_ms",
                "warnings_held_back"):
        assert key in values, key
    for stage in ("convert", "crop", "model", "decode", "publish"):
        for stat in ("p50", "p95", "max"):
            assert f"latency_{stage}_{stat}_ms" in values
    assert float(values["latency_model_p50_ms"]) > 0
    assert values["device"] == "cpu" and values["cpu_threads"] == "1"
    assert values["pinned_cpus"] == "none"  # one thread: nothing to pin
    assert values["image_reliability"] == "reliable"  # auto, and the probe's camera is reliable
    assert values["targets"] == "1" and values["targets_lost"] == "0"
    assert status.level == bytes([0]) and status.message.startswith("tracking"), status.message
    assert values["image_size"] == f"{WIDTH}x{HEIGHT}"
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("`/diagnostics` carries")
    documented = readme[start:readme.index("\n\n", start)]

    def listed(key: str) -> bool:
        latency = re.fullmatch(r"latency_([a-z]+)_(p50|p95|max)_ms", key)
        if latency:
            return f"`{latency.group(1)}`" in documented and "`latency_<stage>_{p50,p95,max}_ms`" in documented
        return f"`{re.sub(r'_(p50|p95|max)_ms$', '_{p50,p95,max}_ms', key)}`" in documented

    undocumented = [key for key in values if not listed(key)]
    assert not undocumented, f"diagnostics keys not listed in the README's /diagnostics paragraph: {undocumented}"


def test_a_lost_target_leaves_the_detections_and_is_reported_lost_in_status_and_diagnostics(node, probe, stamps):
    from fartrack_ros.msg import TargetStatus

    _start(probe, stamps, [("red", BOX_RED)])
    (threshold, frames) = probe.set_parameters(lost_threshold=1.0, lost_frames=2)  # no frame is confident
    try:
        frame_stamps = [stamps() for _ in range(3)]
        detections = track_lockstep(probe, [_scene(4), _scene(6), _scene(8)], frame_stamps)
        statuses = [probe.wait_for("status", lambda m, s=s: stamp_ns_of(m.header) == s) for s in frame_stamps]

        def all_lost(msg):
            values = {kv.key: kv.value for status in msg.status for kv in status.values}
            return values.get("targets_lost") == "1"

        diagnostics = probe.wait_for("diagnostics", all_lost, timeout=5.0)
    finally:
        restored = probe.set_parameters(lost_threshold=0.0, lost_frames=5)

    assert threshold.successful and frames.successful and all(r.successful for r in restored)
    assert [[d.id for d in msg.detections] for msg in detections] == [["red"], [], []]
    assert [[t.state for t in msg.targets] for msg in statuses] == [
        [TargetStatus.TRACKING], [TargetStatus.LOST], [TargetStatus.LOST]]
    (status,) = diagnostics.status
    assert status.level == bytes([1]) and status.message.startswith("all 1 target(s) lost"), status.message
    assert "target 'red' LOST" in node.log_text()


def test_debug_image_is_published_while_subscribed(node, probe, stamps):
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image

    from fartrack_ros.node_messages import TRACKING_COLOUR

    probe.subscribe("debug_image", Image, f"{probe.prefix}/debug_image", QoSProfile(depth=5))
    try:
        _start(probe, stamps, [("red", BOX_RED)])
        time.sleep(0.5)  # discovery of our debug subscription
        stamp = stamps()
        track_lockstep(probe, [_scene(4)], [stamp])

        debug = probe.wait_for("debug_image", lambda m: stamp_ns_of(m.header) == stamp, timeout=5.0)
    finally:
        probe.unsubscribe("debug_image")

    assert debug is not None and debug.header.frame_id == FRAME_ID
    assert (debug.height, debug.width, debug.encoding) == (HEIGHT, WIDTH, "rgb8")
    drawn = np.frombuffer(bytes(debug.data), np.uint8).reshape(HEIGHT, WIDTH, 3)
    (detection,) = probe.wait_for("detections", lambda m: stamp_ns_of(m.header) == stamp).detections
    x, y, w, h = (int(round(v)) for v in box_of(detection))
    left_edge = drawn[y + 2:y + h - 2, x]
    assert (left_edge == TRACKING_COLOUR).all(axis=-1).mean() > 0.9, "the box is not drawn where it was found"


def test_a_fast_camera_drops_frames_and_the_newest_frame_is_tracked(node, probe, stamps):
    _start(probe, stamps, [("red", BOX_RED)])
    burst = [stamps() for _ in range(12)]

    for i, stamp in enumerate(burst):
        probe.image_pub.publish(image_msg(_scene(4 + i % 3), stamp))
    last = probe.wait_for("status", lambda m: stamp_ns_of(m.header) == burst[-1], timeout=10.0)

    assert last is not None, "the newest frame of the burst was not tracked"
    assert last.dropped_frames > 0
    processed = {stamp_ns_of(m.header) for m in probe.received["detections"]} & set(burst)
    assert len(processed) < len(burst)


def test_bad_images_are_logged_and_the_node_keeps_tracking(node, probe, stamps):
    _start(probe, stamps, [("red", BOX_RED)])
    bad = image_msg(_scene(4), stamps())
    bad.encoding = "16UC1"
    truncated = image_msg(_scene(4), stamps())
    truncated.data = truncated.data[:100]

    probe.image_pub.publish(bad)
    time.sleep(0.3)
    probe.image_pub.publish(truncated)
    time.sleep(0.3)
    (detections,) = track_lockstep(probe, [_scene(6)], [stamps()])

    assert detections is not None and [d.id for d in detections.detections] == ["red"]
    log = node.log_text()
    assert log.count("unsupported image encoding '16UC1'") == 1  # told on arrival, not again by the compute thread
    assert "needs at least" in log


def test_images_in_an_unusable_encoding_warn_in_diagnostics_while_no_target_needs_them(node, probe, stamps):
    bad = image_msg(_scene(4), stamps())
    bad.encoding = "32FC1"
    probe.image_pub.publish(bad)

    def warns(msg):
        return msg.status[0].level == bytes([1]) and "cannot be tracked" in msg.status[0].message

    msg = probe.wait_for("diagnostics", warns, timeout=5.0)
    assert msg is not None, node.log_text()[-2000:]
    assert "unsupported image encoding '32FC1'" in msg.status[0].message
    assert "images on /image cannot be tracked: unsupported image encoding '32FC1'" in node.log_text()

    probe.clear()
    probe.image_pub.publish(image_msg(_scene(4), stamps()))
    assert probe.wait_for("diagnostics", lambda m: m.status[0].level == bytes([0]), timeout=5.0) is not None
    assert "image encoding changed from '32FC1' to 'rgb8'" in node.log_text()


def test_a_camera_changing_frame_id_under_tracked_targets_is_warned_of_and_detections_follow_it(
        node, probe, stamps):
    _start(probe, stamps, [("red", BOX_RED)])
    other = "cam_switched"

    def publish_other(rgb, stamp):
        probe.image_pub.publish(image_msg(rgb, stamp, frame_id=other))

    (moved,) = track_lockstep(probe, [_scene(4)], [stamps()], publish_image=publish_other)
    (back,) = track_lockstep(probe, [_scene(6)], [stamps()])

    assert moved is not None and moved.header.frame_id == other
    assert back is not None and back.header.frame_id == FRAME_ID
    log = node.log_text()
    assert (f"image frame_id changed from {FRAME_ID!r} to {other!r} while 1 target(s) are tracked"
            in log), log[-2000:]
    assert f"image frame_id changed from {other!r} to {FRAME_ID!r}" in log


def test_bad_init_boxes_are_refused_without_dropping_the_good_ones(node, probe, stamps):
    detections = _start(probe, stamps, [("inside", BOX_RED), ("outside", (900.0, 900.0, 10.0, 10.0)),
                                        ("flat", (10.0, 10.0, 0.0, 5.0))])

    assert [d.id for d in detections.detections] == ["inside"]
    assert "init for target 'outside' refused" in node.log_text()


def test_out_of_range_and_unknown_choice_parameters_are_rejected_with_a_reason(node, probe):
    (too_high,) = probe.set_parameters(lost_threshold=1.5)
    (zero,) = probe.set_parameters(lost_frames=0)
    (read_only,) = probe.set_parameters(device="cuda")

    assert not too_high.successful and "lost_threshold" in too_high.reason
    assert not zero.successful and zero.reason
    assert not read_only.successful and "read-only" in read_only.reason
    assert probe.get_parameters("lost_threshold", "lost_frames") == [0.0, 5]


def test_tracker_parameters_apply_at_run_time(node, probe, stamps):
    (ok,) = probe.set_parameters(max_targets=1)
    try:
        detections = _start(probe, stamps, [("first", BOX_RED), ("second", BOX_BLUE)])
    finally:
        (restored,) = probe.set_parameters(max_targets=16)

    assert ok.successful and restored.successful
    assert [d.id for d in detections.detections] == ["first"]
    assert "max_targets is 1" in node.log_text()
