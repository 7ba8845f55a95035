"""Frame cache (stamp lookup, lazy conversion), the keep-last-1 slot and inits waiting for their
frame (pure Python, no ROS)."""

import time
from types import SimpleNamespace

import numpy as np
import pytest

from fartrack_ros.frame_cache import LATE_MIN_NS, Arrival, CachedFrame, FrameCache, LatestSlot, PendingInits


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


MS = 1_000_000  # nanoseconds


def test_a_bag_loop_shorter_than_the_cache_starts_a_new_timeline_on_its_first_repeated_stamp():
    cache = FrameCache(30)
    stamps = [k * 33 * MS for k in range(10)]  # a 0.3 s bag at 30 Hz
    for stamp in stamps:
        cache.put(_frame(stamp))

    assert cache.put(_frame(stamps[0])) == Arrival(dropped=9)  # the bag's first frame again
    assert [cache.put(_frame(stamp)) for stamp in stamps[1:]] == [Arrival()] * 9
    assert cache.stamps() == stamps


def test_a_step_back_beyond_the_window_starts_a_new_timeline_and_keeps_the_older_frames():
    cache = FrameCache(30)
    for stamp in range(0, 300 * MS, 10 * MS):  # 100 Hz
        cache.put(_frame(stamp))

    assert cache.late_window_ns() == LATE_MIN_NS  # 3 intervals are 30 ms: the floor holds
    assert cache.put(_frame(65 * MS)) == Arrival(dropped=23)  # 225 ms back: a clock stepped back
    assert cache.stamps()[-2:] == [60 * MS, 65 * MS]
    assert cache.put(_frame(55 * MS)) == Arrival(late=True)  # 10 ms back: reordered


def test_a_copy_by_a_slower_second_path_is_late_even_at_a_high_rate():
    cache = FrameCache(300)
    for stamp in range(0, 300 * MS, MS):  # 1 kHz
        cache.put(_frame(stamp))

    assert cache.put(_frame(150 * MS)) == Arrival(late=True)  # a republisher 150 ms behind
    assert len(cache) == 300


def test_a_copy_of_the_newest_frame_is_late_and_a_new_image_with_its_stamp_replaces_it():
    cache = FrameCache(10)
    cache.put(CachedFrame(5 * MS, SimpleNamespace(data=b"image 1"), lambda msg: None))

    assert cache.put(CachedFrame(5 * MS, SimpleNamespace(data=b"image 1"), lambda msg: None)) == Arrival(late=True)
    assert cache.put(CachedFrame(5 * MS, SimpleNamespace(data=b"image 2"), lambda msg: None)) == Arrival()
    assert cache.latest().msg.data == b"image 2"
    zero_stamped = [CachedFrame(0, SimpleNamespace(data=b"same"), lambda msg: None) for _ in range(2)]
    assert cache.put(zero_stamped[0]) == Arrival(dropped=1)  # a camera that stamps nothing:
    assert cache.put(zero_stamped[1]) == Arrival()  # every frame is new, whatever its data
    assert cache.latest() is zero_stamped[1]


def test_a_copy_of_a_recent_frame_is_late_and_the_cached_one_stays():
    cache = FrameCache(10)
    first = [_frame(stamp * MS) for stamp in (100, 133, 166)]
    for frame in first:
        cache.put(frame)

    assert cache.put(_frame(133 * MS)) == Arrival(late=True)  # the same frame by a second path
    assert cache.find(133 * MS) is first[1] and cache.stamps() == [100 * MS, 133 * MS, 166 * MS]


def test_the_late_window_follows_a_change_of_frame_rate():
    cache = FrameCache(30)
    for stamp in range(0, 300 * MS, 10 * MS):  # 100 Hz, then the camera slows to 1 Hz
        cache.put(_frame(stamp))
    for stamp in range(1290 * MS, 6290 * MS, 1000 * MS):
        cache.put(_frame(stamp))

    assert cache.late_window_ns() == 3000 * MS
    assert cache.put(_frame(4790 * MS)) == Arrival(late=True)  # two frames of the slow camera swapped


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
    assert slot.take() == "b"
    assert slot.put("c") is False


def test_slot_is_empty_after_a_take():
    slot = LatestSlot()
    assert slot.take() is None
    slot.put("a")
    assert slot.take() == "a"
    assert slot.take() is None


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
    assert pending.close() == [other] and len(pending) == 0


def test_a_closed_pending_list_holds_nothing_until_reopened():
    pending = PendingInits(wait_s=10.0)
    held = object()
    pending.hold(100, held)

    assert pending.close() == [held]
    assert not pending.hold(100, object()) and len(pending) == 0  # the node stopped receiving images
    pending.reopen()
    assert pending.hold(100, held) and len(pending) == 1


def test_a_zero_stamp_init_is_handed_back_only_by_a_frame_that_became_the_newest():
    pending = PendingInits(wait_s=10.0)
    init = object()
    pending.hold(0, init)

    assert pending.on_frame(500, newest=False) == []  # a late frame or a copy of the newest
    assert pending.on_frame(600) == [init]
