"""Bad inputs to a running node: each is logged with a clear line, nothing escapes, and the node
still tracks the next good frame (detections with that frame's stamp and a finite box inside the
image).

One node process serves the module (raw images; the compressed path is in
test_robustness_compressed.py). ``lost_threshold:=0.0`` keeps every target TRACKING, so "still
tracking" never depends on how well the weights track. The first test must run before any image
is published; pytest runs the tests in file order.
"""

from __future__ import annotations

import math
import time

import pytest
from std_msgs.msg import String

from node_helpers import (
    box_of,
    image_msg,
    init_msg,
    running_node,
    stamp_ns_of,
    start_targets,
    track_lockstep,
    weights_for_tests,
)
from robustness_helpers import ANCHOR_BOX, HEIGHT, WIDTH, Stamps, scene, wait_for_line, wait_for_log

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CACHE_SIZE = 4
MAX_TARGETS = 3


@pytest.fixture(scope="module")
def ros():
    with running_node({"weights": str(weights_for_tests()), "device": "cpu", "lost_threshold": 0.0,
                       "frame_cache_size": CACHE_SIZE, "max_targets": MAX_TARGETS}) as (node, probe):
        yield node, probe, Stamps()


@pytest.fixture
def ros_ok(ros):
    """The module's node; after the test it must still be alive."""
    yield ros
    node = ros[0]
    assert node.alive(), node.log_text()[-4000:]
    assert "Traceback" not in node.log_text(), node.log_text()[-4000:]


def publish_until_logged(node, probe, make_msg, text: str, attempts: int = 3) -> bool:
    """Publish a (best-effort) bad image until ``text`` is logged for it."""
    since = len(node.log_text())
    for _ in range(attempts):
        probe.image_pub.publish(make_msg())
        if wait_for_log(node, since, text, timeout=3.0):
            return True
    return False


def anchor(probe, stamps) -> None:
    """Reset, then track one target, 'anchor', on the red object."""
    assert probe.reset().success
    detections = start_targets(probe, scene(0), stamps(), [("anchor", ANCHOR_BOX)], scene(2), stamps())
    assert detections is not None and [d.id for d in detections.detections] == ["anchor"]


def init_on_a_new_frame(node, probe, stamps, targets) -> int:
    """Track 'anchor', publish a frame, then an init of ``targets`` stamped with it; the node's log
    offset from before, to read what the init did."""
    anchor(probe, stamps)
    since = len(node.log_text())
    stamp = stamps()
    probe.image_pub.publish(image_msg(scene(4), stamp))
    time.sleep(0.3)
    probe.init_pub.publish(init_msg(stamp, targets))
    return since


def assert_still_tracking(node, probe, stamps, ids=("anchor",), shift: int = 4):
    """The next good frame comes back with its stamp and a finite box inside the image per id."""
    stamp = stamps()
    (detections,) = track_lockstep(probe, [scene(shift)], [stamp])
    assert detections is not None, f"no detections for the good frame:\n{node.log_text()[-3000:]}"
    assert stamp_ns_of(detections.header) == stamp
    assert sorted(d.id for d in detections.detections) == sorted(ids)
    for detection in detections.detections:
        x, y, w, h = box_of(detection)
        assert all(math.isfinite(v) for v in (x, y, w, h)), (detection.id, x, y, w, h)
        assert w > 0 and h > 0
        assert -1e-3 <= x and x + w <= WIDTH + 1e-3 and -1e-3 <= y and y + h <= HEIGHT + 1e-3
    return detections


# --- init before any image (must be first) ------------------------------------------------------


def test_init_before_any_image_is_ignored_with_a_warning(ros_ok):
    node, probe, stamps = ros_ok
    since = len(node.log_text())

    probe.init_pub.publish(init_msg(0, [("early", ANCHOR_BOX)]))
    assert wait_for_log(node, since, "init ignored for 'early': no image received yet on /image")
    probe.init_pub.publish(init_msg(stamps(), [("early2", ANCHOR_BOX)]))
    assert wait_for_log(node, since, "init ignored for 'early2': no image received yet on /image; the init "
                                     "waited for its frame but it did not arrive within the wait")

    anchor(probe, stamps)
    assert_still_tracking(node, probe, stamps)


# --- bad images ---------------------------------------------------------------------------------


def _bad_image(stamps, **changes):
    def make():
        msg = image_msg(scene(4), stamps())
        for key, value in changes.items():
            setattr(msg, key, value)
        return msg
    return make


@pytest.mark.parametrize("changes, logged", [
    ({"encoding": "16UC1"}, "unsupported image encoding '16UC1'"),
    ({"encoding": "32FC1"}, "unsupported image encoding '32FC1'"),
    ({"step": WIDTH * 3 - 1}, f"image step {WIDTH * 3 - 1} is smaller than width*bytes per pixel"),
    ({"width": WIDTH // 2, "step": WIDTH // 2 * 3}, "more than step*rows"),  # half the data's width
    ({"height": HEIGHT * 2}, "needs at least"),  # header says twice the rows the data has
    ({"height": 0, "width": 0, "step": 0, "data": b""}, "image has no pixels: 0x0"),
    ({"height": 1, "width": 1, "step": 3, "data": b"\x01\x02\x03"}, "frame is too small to track in: 1x1"),
], ids=["encoding-16UC1", "encoding-32FC1", "step-too-small", "size-mismatch", "truncated-rows",
        "zero-size", "one-pixel"])
def test_bad_image_is_logged_and_the_next_good_frame_is_tracked(ros_ok, changes, logged):
    node, probe, stamps = ros_ok
    anchor(probe, stamps)

    assert publish_until_logged(node, probe, _bad_image(stamps, **changes), logged), node.log_text()[-3000:]

    assert_still_tracking(node, probe, stamps)


def test_truncated_data_is_logged_and_the_next_good_frame_is_tracked(ros_ok):
    node, probe, stamps = ros_ok
    anchor(probe, stamps)

    def truncated():
        msg = image_msg(scene(4), stamps(), encoding="bgr8")  # bgr8: not throttled as truncated-rows
        msg.data = msg.data[: len(msg.data) // 3]
        return msg

    assert publish_until_logged(node, probe, truncated, f"image data has {WIDTH * HEIGHT} bytes, a "
                                                        f"{WIDTH}x{HEIGHT} bgr8 image")

    assert_still_tracking(node, probe, stamps)


def test_diagnostics_say_why_frames_of_a_tracked_target_fail(ros_ok):
    """Frames in a usable encoding that still fail (a bad step) leave the targets untracked:
    /diagnostics says so with the reason, not only that nothing was tracked."""
    node, probe, stamps = ros_ok
    anchor(probe, stamps)
    probe.clear()
    bad = _bad_image(stamps, step=WIDTH * 3 - 1)

    def says_why(msg) -> bool:
        status = msg.status[0]
        return status.level == bytes([1]) and "no frame was tracked" in status.message

    deadline = time.monotonic() + 10.0
    warned = None
    while warned is None and time.monotonic() < deadline:
        probe.image_pub.publish(bad())
        warned = probe.wait_for("diagnostics", says_why, timeout=0.3)
    assert warned is not None, node.log_text()[-3000:]
    assert (f"; the last frame tried failed: ImageConversionError: image step {WIDTH * 3 - 1} is smaller than "
            "width*bytes per pixel") in warned.status[0].message
    assert warned.status[0].message.endswith(" s ago)")

    assert_still_tracking(node, probe, stamps)


def test_init_on_an_unconvertible_frame_is_ignored_with_the_reason(ros_ok):
    node, probe, stamps = ros_ok
    anchor(probe, stamps)
    bad_stamp = stamps()
    msg = image_msg(scene(4), bad_stamp)
    msg.encoding = "32FC1"
    probe.image_pub.publish(msg)
    time.sleep(0.3)
    since = len(node.log_text())

    probe.init_pub.publish(init_msg(bad_stamp, [("on_bad_frame", ANCHOR_BOX)]))

    assert wait_for_log(node, since, "init ignored: ImageConversionError: unsupported image encoding '32FC1'")
    assert_still_tracking(node, probe, stamps)


# --- bad init boxes -----------------------------------------------------------------------------


@pytest.mark.parametrize("target_id, box, logged", [
    ("nan_box", (float("nan"), 80.0, 40.0, 40.0), "box centre (nan, 100) size 40x40 is not finite"),
    ("inf_box", (60.0, 80.0, float("inf"), 40.0), "box centre (inf, 100) size infx40 is not finite"),
    ("negative_box", (60.0, 80.0, -40.0, 40.0), "box width and height must be > 0, got w=-40.0"),
    ("zero_box", (60.0, 80.0, 40.0, 0.0), "box width and height must be > 0, got w=40.0, h=0.0"),
    ("normalized_box", (0.2, 0.3, 0.1, 0.12), "box size 0.1x0.12 is under a pixel: boxes are in pixels"),
    ("sliver_box", (-99.5, 80.0, 100.0, 40.0), f"has under a pixel inside the {WIDTH}x{HEIGHT} image"),
    ("outside_box", (900.0, 700.0, 40.0, 40.0), f"(900.0, 700.0, 40.0, 40.0) lies outside the {WIDTH}x{HEIGHT} image"),
    ("left_box", (-100.0, 80.0, 50.0, 40.0), f"(-100.0, 80.0, 50.0, 40.0) lies outside the {WIDTH}x{HEIGHT} image"),
])
def test_unusable_init_box_is_refused_and_tracking_goes_on(ros_ok, target_id, box, logged):
    node, probe, stamps = ros_ok
    since = init_on_a_new_frame(node, probe, stamps, [(target_id, box)])

    assert wait_for_line(node, since, f"init for target '{target_id}' refused: ", logged), node.log_text()[-3000:]
    assert_still_tracking(node, probe, stamps, shift=6)


def test_an_overlong_target_id_is_refused_and_logged_cut_short(ros_ok):
    node, probe, stamps = ros_ok
    since = init_on_a_new_frame(node, probe, stamps, [("x" * 5000, (60.0, 80.0, 40.0, 40.0))])

    assert wait_for_line(node, since, f"init for target {'x' * 40!r}... (5000 characters) refused: ",
                         "a target id has at most 128 characters, this one 5000"), node.log_text()[-3000:]
    probe.remove_pub.publish(String(data="x" * 5000))
    assert wait_for_line(node, since, f"remove ignored: no target {'x' * 40!r}... (5000 characters): no id is "
                                      "that long"), node.log_text()[-3000:]
    assert "x" * 41 not in node.log_text()[since:]
    assert_still_tracking(node, probe, stamps, shift=6)


def test_init_box_larger_than_the_image_is_clipped_with_a_warning(ros_ok):
    node, probe, stamps = ros_ok
    since = init_on_a_new_frame(node, probe, stamps, [("huge", (-50.0, -40.0, WIDTH + 100.0, HEIGHT + 80.0))])

    assert wait_for_log(node, since, f"init box for target 'huge' (x=-50.0 y=-40.0 w={WIDTH + 100.0:.1f} "
                                     f"h={HEIGHT + 80.0:.1f}) extends beyond the {WIDTH}x{HEIGHT} image")
    assert f"target 'huge' started at x=0.0 y=0.0 w={WIDTH:.1f} h={HEIGHT:.1f}" in node.log_text()[since:]
    assert_still_tracking(node, probe, stamps, ids=("anchor", "huge"), shift=6)


def test_init_with_no_detections_is_ignored_with_a_warning(ros_ok):
    node, probe, stamps = ros_ok
    anchor(probe, stamps)
    since = len(node.log_text())

    probe.init_pub.publish(init_msg(stamps(), []))

    assert wait_for_log(node, since, "init ignored: the Detection2DArray has no detections")
    assert_still_tracking(node, probe, stamps)


def test_init_stamped_older_than_the_frame_cache_is_ignored_with_a_hint(ros_ok):
    node, probe, stamps = ros_ok
    anchor(probe, stamps)
    old = stamps()
    later = [stamps() for _ in range(CACHE_SIZE)]  # tracked one by one: all cached, old evicted
    assert all(track_lockstep(probe, [scene(2)] + [scene(3)] * CACHE_SIZE, [old] + later))
    since = len(node.log_text())

    probe.init_pub.publish(init_msg(old, [("stale", ANCHOR_BOX)]))

    assert wait_for_log(node, since, "the stamp is older than every cached frame: raise frame_cache_size "
                                     f"(now {CACHE_SIZE})"), node.log_text()[-3000:]
    assert_still_tracking(node, probe, stamps)


# --- remove, max_targets ------------------------------------------------------------------------


def test_remove_of_an_unknown_id_is_ignored_with_the_known_ids(ros_ok):
    from std_msgs.msg import String

    node, probe, stamps = ros_ok
    anchor(probe, stamps)
    since = len(node.log_text())

    probe.remove_pub.publish(String(data="ghost"))

    assert wait_for_log(node, since, "remove ignored: no target 'ghost' (tracked: ['anchor'])")
    assert_still_tracking(node, probe, stamps)


def test_more_targets_than_max_targets_are_refused_and_the_others_tracked(ros_ok):
    node, probe, stamps = ros_ok
    anchor(probe, stamps)
    since = len(node.log_text())
    stamp = stamps()
    probe.image_pub.publish(image_msg(scene(4), stamp))
    time.sleep(0.3)

    extra = [(f"extra{i}", (150.0 + 30 * i, 20.0, 30.0, 30.0)) for i in range(MAX_TARGETS)]
    probe.init_pub.publish(init_msg(stamp, extra))

    assert wait_for_log(node, since, f"init for target 'extra{MAX_TARGETS - 1}' refused: cannot add target "
                                     f"'extra{MAX_TARGETS - 1}': {MAX_TARGETS} targets are tracked, "
                                     f"max_targets is {MAX_TARGETS}"), node.log_text()[-3000:]
    assert_still_tracking(node, probe, stamps, ids=["anchor"] + [f"extra{i}" for i in range(MAX_TARGETS - 1)])


# --- parameters at run time ---------------------------------------------------------------------


@pytest.mark.parametrize("name, value, logged", [
    ("lost_threshold", 1.5, r"lost_threshold=1.5 is out of range [0.0, 1.0]"),
    ("lost_threshold", float("nan"), "lost_threshold must be finite, got nan"),
    ("lost_frames", 0, "lost_frames=0 is out of range [1, 10000]"),
    ("max_targets", "three", "max_targets must be an integer, got 'three'"),
    ("template_memory_cap", 2, "template_memory_cap=2 is out of range"),
    ("frame_cache_size", -1, "frame_cache_size=-1 is out of range"),
    ("diagnostics_period", 0.0, "diagnostics_period=0.0 is out of range"),
    ("publish_debug_image", "yes", "publish_debug_image must be true or false"),
    ("device", "cuda", "device is read when the model loads, at start in a plain node; restart"),
    ("variant", "huge", "variant='huge' is not valid: use '', tiny, nano, pico or a number of layers"),
    ("image_transport", "theora", "image_transport='theora' is not one of"),
])
def test_invalid_parameter_value_at_run_time_is_refused_with_a_reason(ros_ok, name, value, logged):
    node, probe, stamps = ros_ok
    anchor(probe, stamps)
    (before,) = probe.get_parameters(name)
    since = len(node.log_text())

    (result,) = probe.set_parameters(**{name: value})

    # The reply's reason is rclpy's own when its descriptor check (range, type, read-only) refuses
    # first (a type error reads "Wrong parameter type, expected '2' got '4'"); the node's log
    # line always names the parameter, the value and the rule.
    assert not result.successful
    assert name in result.reason or result.reason.startswith("Wrong parameter type"), result.reason
    assert wait_for_log(node, since, f"parameter change rejected: {logged}"), node.log_text()[-2000:]
    assert probe.get_parameters(name) == [before]
    assert_still_tracking(node, probe, stamps)
