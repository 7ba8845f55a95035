"""Inits on an in-process node: targets started on different frames are each tracked from the
frame after their own init frame (an init for one target never makes the others skip a frame);
inits after the camera's stamps went back; what refused inits and grey images are told."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from fartrack_ros.node import GREY_WARNING
from node_helpers import box_of, ground_truth_sequence, image_msg, init_msg, iou, stamp_ns_of

STAMPS_NS = [1_000_000_000 + k * 33_000_000 for k in range(3)]
MONO_SEED = 1_000_006  # a held-out scene drawn for a mono camera


@pytest.fixture
def node(active_node):
    """An active node in this process; what it publishes as detections is kept in ``published``."""
    active_node.published = []
    active_node._detections_pub = SimpleNamespace(publish=active_node.published.append)
    return active_node


def _record_warnings(node) -> list[str]:
    """The node's warnings from now on, in a list."""
    warnings: list[str] = []
    node.get_logger = lambda: SimpleNamespace(warning=warnings.append, info=lambda *_: None,
                                              debug=lambda *_: None)
    return warnings


def _tracking_from_frame_0(node, length: int):
    """A ground-truth sequence with target 'a' started on its frame 0: (frames, boxes, stamps)."""
    frames, boxes = ground_truth_sequence(length)
    stamps_ns = [1_000_000_000 + k * 33_000_000 for k in range(length)]
    node._on_image(image_msg(frames[0], stamps_ns[0]))
    node._start_targets(init_msg(stamps_ns[0], [("a", boxes[0])]))
    return frames, boxes, stamps_ns


def test_a_target_started_on_the_waiting_frame_does_not_hold_back_the_others(node):
    frames, boxes = ground_truth_sequence(3)
    for frame, stamp_ns in zip(frames, STAMPS_NS):  # no targets yet: frames are only cached
        node._on_image(image_msg(frame, stamp_ns))

    node._start_targets(init_msg(STAMPS_NS[0], [("a", boxes[0])]))
    node._start_targets(init_msg(STAMPS_NS[1], [("b", boxes[1])]))  # while frame 1 waits
    for stamp_ns in STAMPS_NS[1:]:
        node._process(node._cache.find(stamp_ns))

    assert [stamp_ns_of(msg.header) for msg in node.published] == STAMPS_NS[1:]
    frame1, frame2 = ({d.id: box_of(d) for d in msg.detections} for msg in node.published)
    assert list(frame1) == ["a"]  # b starts on frame 1: tracked from frame 2
    assert sorted(frame2) == ["a", "b"]
    assert iou(frame1["a"], boxes[1]) > 0.5
    assert min(iou(box, boxes[2]) for box in frame2.values()) > 0.5


def test_an_init_is_queued_for_the_busy_compute_thread_without_stalling_the_executor(node):
    frames, boxes = ground_truth_sequence(2)
    node._on_image(image_msg(frames[0], STAMPS_NS[0]))
    busy = threading.Event()
    node._compute.submit(busy.wait, 10.0)  # the compute thread is busy with a frame

    node._on_init(init_msg(STAMPS_NS[0], [("a", boxes[0])]))  # returns at once
    assert not busy.is_set() and node._loaded.tracker.target_ids == []
    node._on_image(image_msg(frames[1], STAMPS_NS[1]))  # queued for tracking behind the init
    busy.set()
    node._compute.wait_idle()

    assert node._loaded.tracker.target_ids == ["a"]
    assert [stamp_ns_of(msg.header) for msg in node.published] == [STAMPS_NS[1]]


def test_a_remove_drops_an_init_still_waiting_for_its_frame(node):
    lines = []
    node.get_logger = lambda: SimpleNamespace(warning=lines.append, info=lines.append, debug=lambda *_: None)
    frames, boxes = ground_truth_sequence(2)
    node._on_init(init_msg(STAMPS_NS[0], [("x", boxes[0]), ("y", boxes[0])]))  # before its frame: held
    node._on_remove(SimpleNamespace(data="x"))
    node._compute.wait_idle()

    node._on_image(image_msg(frames[0], STAMPS_NS[0]))  # the frame: the held init starts what is left
    node._compute.wait_idle()

    assert node._loaded.tracker.target_ids == ["y"]
    assert "target 'x' removed (its init was waiting for its frame)" in lines
    assert not any("remove ignored" in line for line in lines)


def test_a_remove_is_not_undone_by_a_waiting_init_whose_frame_comes_while_the_remove_is_queued(node):
    frames, boxes = ground_truth_sequence(2)
    node._on_init(init_msg(STAMPS_NS[0], [("x", boxes[0])]))  # before its frame: held
    node._compute.wait_idle()
    busy = threading.Event()
    node._compute.submit(busy.wait, 10.0)  # the compute thread is busy with a frame

    node._on_remove(SimpleNamespace(data="x"))  # queued behind the frame
    node._on_image(image_msg(frames[0], STAMPS_NS[0]))  # the init's frame, before the remove runs
    busy.set()
    node._compute.wait_idle()

    assert node._loaded.tracker.target_ids == []


def test_a_reset_drops_the_targets_and_the_inits_waiting_for_their_frame_and_says_so(node):
    frames, boxes = ground_truth_sequence(2)
    node._on_image(image_msg(frames[0], STAMPS_NS[0]))
    node._on_init(init_msg(STAMPS_NS[0], [("a", boxes[0])]))
    node._on_init(init_msg(STAMPS_NS[1], [("x", boxes[1])]))  # its frame has not arrived: held

    response = node._on_reset(None, SimpleNamespace(success=False, message=""))
    node._on_image(image_msg(frames[1], STAMPS_NS[1]))
    node._compute.wait_idle()

    assert response.success
    assert response.message == "removed 1 target(s): a; dropped 1 init box(es) waiting for their frame"
    assert node._loaded.tracker.target_ids == []


def test_the_frame_after_a_held_init_s_frame_is_tracked_while_the_init_is_still_queued(node):
    frames, boxes = ground_truth_sequence(2)
    node._start_targets(init_msg(STAMPS_NS[0], [("a", boxes[0])]))  # before its frame: held
    busy = threading.Event()
    node._compute.submit(busy.wait, 10.0)  # the compute thread is busy (a slow model, a big frame)

    node._on_image(image_msg(frames[0], STAMPS_NS[0]))  # hands the init to the compute thread
    node._on_image(image_msg(frames[1], STAMPS_NS[1]))  # arrives before the init has run
    busy.set()
    node._compute.wait_idle()

    assert [stamp_ns_of(msg.header) for msg in node.published] == [STAMPS_NS[1]]
    (detection,) = node.published[0].detections
    assert detection.id == "a" and iou(box_of(detection), boxes[1]) > 0.5


def test_a_zero_stamp_init_after_a_camera_outage_starts_on_the_next_frame_not_the_old_one(node):
    warnings = _record_warnings(node)
    frames, boxes = ground_truth_sequence(3)
    node._on_image(image_msg(frames[0], STAMPS_NS[0]))
    node._cache.latest().received_s -= 6.0  # the camera went silent 6 s ago

    node._start_targets(init_msg(0, [("a", boxes[1])]))
    assert not node._loaded.tracker.target_ids  # held for the next frame
    node._on_image(image_msg(frames[1], STAMPS_NS[1]))
    node._compute.wait_idle()

    assert node._loaded.tracker.target_ids == ["a"], warnings
    assert node._init_seq["a"] == node._cache.find(STAMPS_NS[1]).seq


def test_an_init_being_started_as_the_node_deactivates_is_not_held_into_the_next_activation(node):
    frames, boxes = ground_truth_sequence(3)
    node._on_image(image_msg(frames[0], STAMPS_NS[0]))
    node._cache.latest().received_s -= 6.0  # the camera went silent 6 s ago
    pending, hold = node._pending_inits, node._pending_inits.hold

    def deactivate_then_hold(*args, **kwargs):  # the deactivate runs as the init is being started
        node.trigger_deactivate()
        return hold(*args, **kwargs)

    pending.hold = deactivate_then_hold
    node._start_targets(init_msg(0, [("a", boxes[1])]))
    pending.hold = hold
    assert len(pending) == 0
    node.trigger_activate()
    node._on_image(image_msg(frames[2], STAMPS_NS[2]))
    node._compute.wait_idle()

    assert node._loaded.tracker.target_ids == []  # not started minutes later on whatever frame came


def test_a_copy_of_the_old_frame_does_not_start_a_zero_stamp_init_on_it(node):
    frames, boxes = ground_truth_sequence(2)
    node._on_image(image_msg(frames[0], STAMPS_NS[0]))
    node._cache.latest().received_s -= 6.0
    node._start_targets(init_msg(0, [("a", boxes[1])]))

    node._on_image(image_msg(frames[0], STAMPS_NS[0]))  # the same frame again (a relay, a second path)
    node._compute.wait_idle()

    assert "a" not in node._init_seq and len(node._pending_inits) == 1  # still waits for a new frame


@pytest.mark.parametrize("encoding, told", [("mono8", True), ("8UC1", True), ("rgb8", False)])
def test_an_init_on_a_grey_image_is_warned_the_bundled_model_tracks_less_well_in_grey(node, encoding, told):
    lines = []
    node.get_logger = lambda: SimpleNamespace(warning=lines.append, info=lambda *_: None)
    frames, boxes = ground_truth_sequence(2)
    node._on_image(image_msg(frames[0], STAMPS_NS[0], encoding=encoding))

    node._start_targets(init_msg(STAMPS_NS[0], [("a", boxes[0])]))

    assert node._loaded.bundled and node._loaded.tracker.target_ids == ["a"]
    assert any("the bundled model tracks less well in grey" in line for line in lines) == told, lines


def test_a_mono_camera_is_warned_of_grey_at_its_first_init_only(node):
    warnings = _record_warnings(node)
    frames, boxes = ground_truth_sequence(2)
    for index, stamp_ns in enumerate(STAMPS_NS[:2]):
        node._on_image(image_msg(frames[index], stamp_ns, encoding="mono8"))
        node._start_targets(init_msg(stamp_ns, [(f"t{index}", boxes[index])]))

    assert node._loaded.tracker.target_ids == ["t0", "t1"]
    assert len([line for line in warnings if "grey" in line]) == 1, warnings


def test_a_mono_camera_is_warned_of_grey_as_its_images_arrive_and_a_refused_init_adds_nothing(node):
    warnings = _record_warnings(node)
    frames, _ = ground_truth_sequence(2)
    node._on_image(image_msg(frames[0], STAMPS_NS[0], encoding="mono8"))
    assert [line for line in warnings if "grey" in line] == [
        f"mono8 images: {GREY_WARNING}"]  # before any init: a camera that went mono is told at once

    node._start_targets(init_msg(STAMPS_NS[0], [("a", (-100.0, -100.0, 50.0, 50.0))]))

    assert not node._loaded.tracker.target_ids
    assert any("refused" in line for line in warnings) and len([l for l in warnings if "grey" in l]) == 1


def test_an_init_on_12_bit_data_in_the_low_bits_of_mono16_is_warned_of_a_nearly_black_image(node):
    from fartrack_ros.image_conversion import rgb_to_image_msg

    from node_helpers import header_of

    warnings = _record_warnings(node)
    frames, boxes = ground_truth_sequence(2)
    msg = rgb_to_image_msg(frames[0], header_of(STAMPS_NS[0]), encoding="mono16")
    twelve_bit = np.frombuffer(bytes(msg.data), "<u2" if not msg.is_bigendian else ">u2") >> 4  # 0..4095
    msg.data = twelve_bit.tobytes()
    node._on_image(msg)

    node._start_targets(init_msg(STAMPS_NS[0], [("a", boxes[0])]))

    (line,) = [line for line in warnings if "nearly black" in line]
    # 12-bit values put at most 15 in the high byte; this frame's brightest pixel gives 13
    assert "brightest value 13 of 255" in line and "set the node's image_bit_depth" in line


def _reactivate_with(node, **values) -> None:
    """Deactivate ``node``, set parameters read at activation, activate it again."""
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    results = node.set_parameters([Parameter(name, value=value) for name, value in values.items()])
    assert all(result.successful for result in results), results
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS


def test_with_image_bit_depth_12_a_12_bit_camera_is_tracked_and_not_warned_of(node):
    from fartrack_ros.image_conversion import rgb_to_image_msg

    from node_helpers import header_of

    _reactivate_with(node, image_bit_depth=12)
    warnings = _record_warnings(node)
    frames, boxes = ground_truth_sequence(2, MONO_SEED, luma_contrast=True)  # a scene for a mono camera
    messages = [rgb_to_image_msg(frame, header_of(stamp_ns), encoding="mono16", bit_depth=12)
                for frame, stamp_ns in zip(frames, STAMPS_NS)]
    assert max(np.frombuffer(bytes(messages[0].data), "<u2")) <= 4095  # 12-bit data in the low bits

    node._on_image(messages[0])
    node._start_targets(init_msg(STAMPS_NS[0], [("a", boxes[0])]))
    node._on_image(messages[1])
    node._compute.wait_idle()

    assert not [line for line in warnings if "nearly black" in line or "saturated" in line], warnings
    assert node._cache.find(STAMPS_NS[0]).rgb().max() > 200  # the full range, not 4095 >> 8
    (detection,) = node.published[0].detections
    assert iou(box_of(detection), boxes[1]) > 0.5


def test_16_bit_data_read_with_a_lower_image_bit_depth_is_warned_of_as_saturated(node):
    _reactivate_with(node, image_bit_depth=10)
    warnings = _record_warnings(node)
    frames, boxes = ground_truth_sequence(2)
    node._on_image(image_msg(frames[0], STAMPS_NS[0], encoding="rgb16"))  # full 16-bit range

    node._start_targets(init_msg(STAMPS_NS[0], [("a", boxes[0])]))

    (line,) = [line for line in warnings if "saturated" in line]
    assert "image_bit_depth 10" in line and "raise it" in line


def test_an_init_on_a_dark_8_bit_image_is_warned_of_the_exposure_not_of_16_bit_data(node):
    warnings = _record_warnings(node)
    frames, boxes = ground_truth_sequence(2)
    node._on_image(image_msg(frames[0] // 20, STAMPS_NS[0], encoding="bgr8"))

    node._start_targets(init_msg(STAMPS_NS[0], [("a", boxes[0])]))

    (line,) = [line for line in warnings if "nearly black" in line]
    assert "exposure" in line and "16-bit" not in line


def test_after_the_stamps_go_back_an_init_that_overtakes_its_image_still_waits_for_it(node):
    frames, boxes = ground_truth_sequence(4)
    for frame, stamp_ns in zip(frames[:2], STAMPS_NS[1:]):  # the old timeline
        node._on_image(image_msg(frame, stamp_ns))
    restart_ns = STAMPS_NS[0] - 500_000_000  # a bag loop: the camera starts again, earlier
    node._on_image(image_msg(frames[2], restart_ns))

    node._start_targets(init_msg(restart_ns + 33_000_000, [("a", boxes[3])]))  # before its frame
    assert node._loaded.tracker.target_ids == []
    node._on_image(image_msg(frames[3], restart_ns + 33_000_000))
    node._compute.wait_idle()

    assert node._loaded.tracker.target_ids == ["a"]


def test_inits_refused_back_to_back_are_each_logged_with_their_target(node):
    warnings = _record_warnings(node)
    frames, boxes = ground_truth_sequence(3)
    for frame, stamp_ns in zip(frames[1:], STAMPS_NS[1:]):
        node._on_image(image_msg(frame, stamp_ns))

    for target in ("a", "b"):  # stamped with a frame older than every cached one: held for it
        node._start_targets(init_msg(STAMPS_NS[0], [(target, boxes[0])]))
    for k in range(1, 8):  # later frames, beyond the time a late frame may lag: both refused
        node._on_image(image_msg(frames[2], STAMPS_NS[2] + k * 33_000_000))
    node._compute.wait_idle()

    refused = [line for line in warnings if "no cached frame" in line]
    assert len(refused) == 2 and "'a'" in refused[0] and "'b'" in refused[1], warnings


def test_a_frame_reordered_on_its_way_is_not_tracked_but_an_init_still_finds_it(node):
    """Two publishers on one topic or a reordering relay: a frame stamped before the newest one
    would take the target back in time; it is told and skipped, while the cache keeps the frames
    an init may name."""
    warnings = _record_warnings(node)
    frames, boxes, stamps_ns = _tracking_from_frame_0(node, 4)
    for k in (1, 3, 2):  # frame 2 arrives after frame 3
        node._on_image(image_msg(frames[k], stamps_ns[k]))
        node._compute.wait_idle()

    assert [stamp_ns_of(msg.header) for msg in node.published] == [stamps_ns[1], stamps_ns[3]]
    assert any("arrived late or a second time" in line for line in warnings), warnings
    assert node._cache.stamps() == stamps_ns
    node._start_targets(init_msg(stamps_ns[2], [("b", boxes[2])]))
    assert node._loaded.tracker.target_ids == ["a", "b"]


def test_a_bag_loop_shorter_than_the_frame_cache_is_tracked_on_every_pass(node):
    warnings = _record_warnings(node)
    frames, boxes, stamps_ns = _tracking_from_frame_0(node, 9)  # 0.26 s: a loop, not a late copy
    for loop in range(2):
        for k in range(1 - loop, 9):  # the second pass replays the bag from its first frame
            node._on_image(image_msg(frames[k], stamps_ns[k]))
            node._compute.wait_idle()

    assert [stamp_ns_of(msg.header) for msg in node.published] == stamps_ns[1:] + stamps_ns
    assert any("image stamps went back" in line for line in warnings), warnings
    assert not any("arrived late" in line for line in warnings), warnings


def test_a_copy_of_a_recent_frame_from_a_second_path_is_not_tracked_again(node):
    """Two relays of one camera: each frame arrives twice, the copy sometimes after the next frame."""
    warnings = _record_warnings(node)
    frames, boxes, stamps_ns = _tracking_from_frame_0(node, 4)
    for k in (1, 2, 1, 3, 2, 3):
        node._on_image(image_msg(frames[k], stamps_ns[k]))
        node._compute.wait_idle()

    published = [stamp_ns_of(msg.header) for msg in node.published]
    assert published == stamps_ns[1:], published
    assert node._cache.stamps() == stamps_ns  # nothing left the cache
    assert not any("went back" in line for line in warnings), warnings


def test_an_init_that_overtakes_a_reordered_frame_waits_for_it(node):
    frames, boxes, stamps_ns = _tracking_from_frame_0(node, 4)
    node._on_image(image_msg(frames[1], stamps_ns[1]))
    node._start_targets(init_msg(stamps_ns[2], [("b", boxes[2])]))  # frame 2 is still on its way
    node._on_image(image_msg(frames[3], stamps_ns[3]))  # frame 3 overtook it
    node._on_image(image_msg(frames[2], stamps_ns[2]))
    node._compute.wait_idle()

    assert node._loaded.tracker.target_ids == ["a", "b"]


def test_a_target_going_lost_and_found_again_is_logged_and_a_re_init_says_restarted(node):
    from rclpy.parameter import Parameter

    lines = []
    node.get_logger = lambda: SimpleNamespace(warning=lines.append, info=lines.append, debug=lambda *_: None)
    node.set_parameters([Parameter("lost_frames", value=1)])
    frames, boxes = ground_truth_sequence(4)
    stamps = [1_000_000_000 + k * 33_000_000 for k in range(5)]
    node._on_image(image_msg(frames[0], stamps[0]))
    node._start_targets(init_msg(stamps[0], [("a", boxes[0])]))
    blank = np.full_like(frames[1], 128)  # the target gone: a low confidence, LOST after 1 frame
    for frame, stamp_ns in ((blank, stamps[1]), (frames[1], stamps[2])):
        node._on_image(image_msg(frame, stamp_ns))
        node._compute.wait_idle()

    states = [line for line in lines if "LOST (" in line or "found again" in line]
    assert len(states) == 1 and states[0].startswith("target 'a' LOST"), lines  # found again within 5 s
    node._state_log._clock = lambda: time.monotonic() + 10.0  # 10 s later
    node._on_image(image_msg(frames[2], stamps[3]))
    node._compute.wait_idle()
    states = [line for line in lines if "LOST (" in line or "found again" in line]
    assert len(states) == 2 and states[1].startswith("target 'a' found again (confidence "), lines
    node._start_targets(init_msg(stamps[3], [("a", boxes[2])]))
    assert any(line.startswith("target 'a' restarted at x=") for line in lines)

    for _ in range(3):  # a client re-sending its box on every frame: one line per WARN_EVERY_S
        node._start_targets(init_msg(stamps[3], [("a", boxes[2])]))
    assert sum("restarted" in line for line in lines) == 1, lines
    node._restart_log._clock = lambda: time.monotonic() + 10.0
    node._start_targets(init_msg(stamps[3], [("a", boxes[2])]))
    assert lines[-1].startswith("target 'a' restarted at x=") and lines[-1].endswith(
        " (3 restarts since the last one logged)"), lines


def test_an_init_keeps_no_decoded_frame_in_the_cache(node):
    """Inits naming cached frames (refused ones too) must not pile up decoded images: the cache holds
    messages, each frame decoded when needed."""
    frames, boxes = ground_truth_sequence(3)
    for frame, stamp_ns in zip(frames, STAMPS_NS):
        node._on_image(image_msg(frame, stamp_ns))
    node._start_targets(init_msg(STAMPS_NS[0], [("a", boxes[0])]))
    node._start_targets(init_msg(STAMPS_NS[1], [("b", (-500.0, -500.0, 10.0, 10.0))]))  # refused

    assert node._loaded.tracker.target_ids == ["a"]
    assert all(node._cache.find(stamp_ns)._rgb is None for stamp_ns in STAMPS_NS)
