"""Frame cache (stamp lookup, lazy conversion), the keep-last-1 slot and inits waiting for their
frame (pure Python, no ROS)."""

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from fartrack_ros.frame_cache import Arrival, CachedFrame, FrameCache, LatestSlot, PendingInits


def _frame(stamp_ns, calls=None):
    def convert(msg):
        if calls is not None:
            calls.append(msg.value)
        return np.full((2, 2, 3), msg.value, np.uint8)

    return CachedFrame(stamp_ns, SimpleNamespace(value=stamp_ns % 256, header="h"), convert)


def test_cache_keeps_only_the_newest_frames():
    cache = FrameCache(3)
    for stamp in range(1, 6):
        cache.put(_frame(stamp))

    assert cache.stamps() == [3, 4, 5]
    assert cache.find(2) is None and cache.find(4).stamp_ns == 4
    assert cache.latest().stamp_ns == 5


def test_empty_cache_has_no_latest():
    assert FrameCache(2).latest() is None


def test_same_stamp_replaces_and_becomes_latest():
    cache = FrameCache(3)
    cache.put(_frame(1))
    cache.put(_frame(2))
    replacement = _frame(2)
    assert cache.put(replacement) == Arrival()

    assert cache.stamps() == [1, 2] and cache.latest() is replacement


def test_a_frame_reordered_on_its_way_is_cached_in_stamp_order_as_late():
    cache = FrameCache(5)
    for stamp in (100, 200, 300):
        cache.put(_frame(stamp))

    assert cache.put(_frame(150)) == Arrival(late=True)  # two publishers, a reordering relay
    assert cache.stamps() == [100, 150, 200, 300] and cache.latest().stamp_ns == 300
    assert cache.put(_frame(400)) == Arrival()
    assert cache.put(_frame(500)) == Arrival()
    assert cache.stamps() == [150, 200, 300, 400, 500]  # the oldest stamp leaves first


def test_a_stamp_before_every_cached_frame_starts_a_new_timeline():
    cache = FrameCache(5)
    for stamp in (100, 200, 300):
        cache.put(_frame(stamp))

    assert cache.put(_frame(50)) == Arrival(dropped=3)  # a bag loop or a simulator reset
    assert cache.stamps() == [50] and cache.latest().stamp_ns == 50


def test_a_bag_loop_shorter_than_the_cache_starts_a_new_timeline_on_its_first_repeated_stamp():
    cache = FrameCache(30)
    for stamp in range(10, 60, 10):
        cache.put(_frame(stamp))

    assert cache.put(_frame(10)) == Arrival(dropped=4)  # the bag's first frame again
    assert [cache.put(_frame(stamp)) for stamp in range(20, 60, 10)] == [Arrival()] * 4
    assert cache.stamps() == [10, 20, 30, 40, 50]


def test_a_step_back_beyond_a_few_frames_starts_a_new_timeline_and_keeps_the_older_frames():
    cache = FrameCache(30)
    for stamp in range(0, 300, 10):  # 30 frames, 10 apart
        cache.put(_frame(stamp))

    assert cache.put(_frame(225)) == Arrival(late=False, dropped=7)  # 75 back: over 3 intervals
    assert cache.stamps()[-2:] == [220, 225]
    assert cache.put(_frame(215)) == Arrival(late=True)  # 10 back: reordered


def test_a_copy_of_a_recent_frame_is_late_and_the_cached_one_stays():
    cache = FrameCache(10)
    first = [_frame(stamp) for stamp in (100, 200, 300)]
    for frame in first:
        cache.put(frame)

    assert cache.put(_frame(200)) == Arrival(late=True)  # the same frame by a second path
    assert cache.find(200) is first[1] and cache.stamps() == [100, 200, 300]


def test_the_late_window_follows_a_change_of_frame_rate():
    cache = FrameCache(30)
    for stamp in range(0, 300, 10):  # 10 apart, then the camera slows to 1000 apart
        cache.put(_frame(stamp))
    for stamp in range(1290, 6290, 1000):
        cache.put(_frame(stamp))

    assert cache.late_window_ns() == 3000
    assert cache.put(_frame(4790)) == Arrival(late=True)  # two frames of the slow camera swapped


def test_shrinking_drops_the_oldest():
    cache = FrameCache(5)
    for stamp in range(5):
        cache.put(_frame(stamp))
    cache.resize(2)
    assert cache.stamps() == [3, 4]


def test_size_below_one_is_rejected():
    with pytest.raises(ValueError, match=">= 1"):
        FrameCache(0)


def test_frame_converts_once_on_demand():
    calls = []
    frame = _frame(7, calls)

    assert calls == [] and frame.convert_ms == 0.0
    first, second = frame.rgb(), frame.rgb()

    assert calls == [7] and first is second and first[0, 0, 0] == 7


def test_conversion_error_propagates_and_is_retried():
    attempts = []

    def broken(msg):
        attempts.append(1)
        raise ValueError("bad encoding")

    frame = CachedFrame(1, SimpleNamespace(header=None), broken)
    for _ in range(2):
        with pytest.raises(ValueError, match="bad encoding"):
            frame.rgb()
    assert len(attempts) == 2


def test_slot_reports_an_overwritten_item_as_dropped():
    slot = LatestSlot()
    assert slot.put("a") is False
    assert slot.put("b") is True
    assert slot.take(0) == "b"
    assert slot.put("c") is False


def test_slot_take_times_out_empty():
    assert LatestSlot().take(0.01) is None


def test_slot_wakes_a_waiting_consumer():
    slot = LatestSlot()
    got = []
    consumer = threading.Thread(target=lambda: got.append(slot.take(5.0)))
    consumer.start()
    time.sleep(0.05)
    slot.put("frame")
    consumer.join(2.0)
    assert got == ["frame"]


def test_closed_slot_returns_at_once():
    slot = LatestSlot()
    slot.close()
    start = time.monotonic()
    assert slot.take(5.0) is None
    assert time.monotonic() - start < 1.0


def test_discard_is_not_a_drop():
    slot = LatestSlot()
    slot.put("a")
    assert slot.discard() is True
    assert slot.put("b") is False


def test_dropped_rgb_is_converted_again_on_demand():
    calls = []
    frame = _frame(3, calls)
    frame.rgb()
    frame.drop_rgb()
    frame.rgb()
    assert calls == [3, 3]


def test_a_held_init_is_handed_back_when_its_frame_or_a_later_one_arrives():
    pending = PendingInits(wait_s=10.0)
    first, second = object(), object()
    pending.hold(200, first)
    pending.hold(300, second)

    assert pending.on_frame(100) == []  # an earlier frame: both still wait
    assert pending.on_frame(200) == [first]
    assert pending.on_frame(250) == [] and len(pending) == 1
    assert pending.on_frame(400) == [second]  # frame 300 never came: handed back to be refused
    assert len(pending) == 0


def test_a_held_init_is_overdue_after_the_wait():
    pending = PendingInits(wait_s=0.05)
    init = object()
    pending.hold(100, init)

    assert pending.overdue() == []
    time.sleep(0.06)
    assert pending.overdue() == [init] and pending.overdue() == []


def test_withdraw_takes_back_only_an_init_still_held():
    pending = PendingInits(wait_s=10.0)
    init, other = object(), object()
    pending.hold(100, init)
    pending.hold(100, other)

    assert pending.withdraw(init)
    assert not pending.withdraw(init)  # already gone: whoever holds it now starts it
    assert pending.take_all() == [other] and len(pending) == 0
