"""The init rules apart from the node: which cached frame an init names, when it waits for its
frame, why it is refused, and which of its detections count."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from fartrack_ros.frame_cache import CachedFrame, FrameCache, PendingInits
from fartrack_ros.init_frames import LATER_FRAME, WAITED, find_init_frame, last_of_each_id


def _cache(*stamps_ns: int) -> FrameCache:
    cache = FrameCache(3)
    for stamp_ns in stamps_ns:
        cache.put(CachedFrame(stamp_ns, SimpleNamespace(), lambda msg: np.zeros((2, 2, 3), np.uint8)))
    return cache


def _init(stamp_ns: int, *ids: str) -> SimpleNamespace:
    stamp = SimpleNamespace(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp), detections=[SimpleNamespace(id=i) for i in ids])


def _find(cache, pending, msg, held=None, may_wait=True):
    return find_init_frame(cache, pending, msg, held=held, may_wait=may_wait, image_topic="/camera/image")


def test_a_stamped_init_names_its_frame_and_a_zero_stamp_the_latest():
    cache, pending = _cache(10, 20, 30), PendingInits(1.0)

    assert _find(cache, pending, _init(20, "a"))[0].stamp_ns == 20
    assert _find(cache, pending, _init(0, "a"))[0].stamp_ns == 30


def test_a_zero_stamp_before_any_image_waits_for_the_first_and_starts_on_it():
    cache, pending = _cache(), PendingInits(1.0)
    msg = _init(0, "a")

    assert _find(cache, pending, msg) == (None, None)
    cache.put(CachedFrame(50, SimpleNamespace(), lambda msg: np.zeros((2, 2, 3), np.uint8)))
    assert pending.on_frame(50) == [msg]  # any next frame hands it back
    assert _find(cache, pending, msg, held=LATER_FRAME)[0].stamp_ns == 50


def test_a_zero_stamp_that_waited_in_vain_is_refused_naming_the_topic():
    frame, refusal = _find(_cache(), PendingInits(1.0), _init(0, "a"), held=WAITED)

    assert frame is None
    assert refusal == ("init ignored for 'a': no image received yet on /camera/image; the init waited "
                       "for a new one but it did not arrive within the wait (1 s, longer at low frame rates)")


def _age(cache: FrameCache, seconds: float) -> None:
    for stamp_ns in cache.stamps():
        cache.find(stamp_ns).received_s -= seconds


def test_a_zero_stamp_waits_for_the_next_frame_when_the_latest_is_old():
    """After a camera outage the latest frame is seconds old and the target no longer there."""
    cache, pending = _cache(10, 20), PendingInits(1.0)
    _age(cache, 6.0)
    msg = _init(0, "a")

    assert _find(cache, pending, msg) == (None, None)
    assert pending.close() == [msg]
    frame, refusal = _find(cache, pending, msg, held=WAITED)
    assert frame is None
    assert refusal.startswith("init ignored for 'a': the latest image on /camera/image (stamp 0.000000020) "
                              "arrived 6.0 s ago; the init waited for a new one but it did not arrive within the wait "
                              "(1 s, longer at low frame rates); "
                              "stamp the init with that image's header to start on it anyway")
    assert _find(cache, pending, _init(20, "a"))[0].stamp_ns == 20  # as it says


def test_an_inactive_node_refuses_a_zero_stamp_when_its_latest_frame_is_old():
    cache = _cache(10)
    _age(cache, 7.0)

    frame, refusal = _find(cache, PendingInits(1.0), _init(0, "a"), may_wait=False)

    assert frame is None
    assert "arrived 7.0 s ago; the node is inactive (not subscribed to images): activate it first" in refusal
    assert _find(_cache(10), PendingInits(1.0), _init(0, "a"), may_wait=False)[0].stamp_ns == 10  # a recent one


def test_an_init_newer_than_every_frame_waits_for_it_once():
    cache, pending = _cache(10, 20), PendingInits(1.0)
    msg = _init(25, "a")

    assert _find(cache, pending, msg) == (None, None)
    assert pending.close() == [msg]
    frame, refusal = _find(cache, pending, msg, held="a later frame arrived first")
    assert frame is None and len(pending) == 0
    assert "the init waited for that frame but a later frame arrived first" in refusal


def test_an_inactive_node_refuses_at_once_instead_of_waiting():
    frame, refusal = _find(_cache(10), PendingInits(1.0), _init(25, "a"), may_wait=False)

    assert frame is None and "no cached frame has stamp 0.000000025" in refusal


def test_an_init_older_than_the_cache_waits_then_says_to_raise_its_size():
    """It may name the first frame of a bag loop that has not arrived yet; once a later frame
    came, the refusal says what to change."""
    cache, pending = _cache(10, 20, 30, 40), PendingInits(1.0)
    msg = _init(10, "a", "b")

    assert _find(cache, pending, msg) == (None, None)
    frame, refusal = _find(cache, pending, msg, held="a later frame arrived first")

    assert frame is None
    assert refusal.startswith("init ignored for 'a', 'b': no cached frame has stamp 0.000000010 (the "
                              "init waited for that frame but a later frame arrived first; the cache "
                              "holds 3 frames from 0.000000020 to 0.000000040; the stamp is older than "
                              "every cached frame: raise frame_cache_size (now 3)")


def test_the_first_frame_of_a_bag_loop_starts_an_init_that_came_before_it():
    cache, pending = _cache(20, 30, 40), PendingInits(1.0)
    msg = _init(10, "a")
    assert _find(cache, pending, msg) == (None, None)

    cache.put(CachedFrame(10, SimpleNamespace(), lambda m: np.zeros((2, 2, 3), np.uint8)))  # the loop
    assert pending.on_frame(10) == [msg]
    frame, refusal = _find(cache, pending, msg, held="a later frame arrived first")
    assert refusal is None and frame.stamp_ns == 10


def test_a_stamp_between_cached_frames_waits_as_its_frame_may_be_late_then_is_refused():
    cache, pending = _cache(10, 30), PendingInits(1.0)
    msg = _init(20, "a")

    assert _find(cache, pending, msg) == (None, None)  # reordered on its way, perhaps
    frame, refusal = _find(cache, pending, msg, held="it did not arrive within 1 s")
    assert frame is None and "frame_cache_size" not in refusal


def test_a_named_target_counts_once_with_its_last_box_and_unnamed_ones_all_count():
    detections = [SimpleNamespace(id=i, n=n) for n, i in enumerate(["a", "", "b", "a", "", "a"])]

    kept, repeated = last_of_each_id(detections)

    assert [(d.id, d.n) for d in kept] == [("", 1), ("b", 2), ("", 4), ("a", 5)]
    assert repeated == {"a": 3}


def test_at_a_low_frame_rate_an_init_waits_as_long_as_a_frame_may_come_late(monkeypatch):
    import fartrack_ros.frame_cache as frame_cache

    now = [100.0]
    monkeypatch.setattr(frame_cache.time, "monotonic", lambda: now[0])
    second = 1_000_000_000
    slow, fast = _cache(0, 5 * second, 10 * second), _cache(0, second // 30, 2 * second // 30)
    for cache in (slow, fast):
        pending = PendingInits(1.0)
        assert _find(cache, pending, _init(cache.stamps()[-1] + 1, "a")) == (None, None)
        now[0] += 2.0
        held_after_2_s = len(pending.overdue()) == 0
        assert held_after_2_s == (cache is slow)  # 0.2 Hz: up to 15 s late; 30 Hz: the usual 1 s


def test_an_init_waits_no_longer_than_max_init_wait_s_whatever_the_frame_intervals(monkeypatch):
    """Stamps a million seconds apart (a camera clock gone wrong) must not hold an init for ever."""
    import fartrack_ros.frame_cache as frame_cache
    from fartrack_ros.init_frames import MAX_INIT_WAIT_S

    now = [100.0]
    monkeypatch.setattr(frame_cache.time, "monotonic", lambda: now[0])
    apart = 10**6 * 1_000_000_000
    cache, pending = _cache(0, apart, 2 * apart), PendingInits(1.0)
    assert _find(cache, pending, _init(2 * apart + 1, "a")) == (None, None)
    now[0] += MAX_INIT_WAIT_S - 0.5
    assert pending.overdue() == []
    now[0] += 1.0
    assert len(pending.overdue()) == 1


def test_an_init_that_cannot_be_held_as_the_node_deactivates_is_refused_for_that():
    cache, pending = _cache(10, 20), PendingInits(1.0)
    pending.close()  # deactivate ran as this init was being started

    for stamp_ns in (25, 0):
        cache.find(20).received_s -= 6.0  # for the zero stamp: the latest is old
        frame, refusal = _find(cache, pending, _init(stamp_ns, "a"))
        assert frame is None and "the node stopped receiving images first" in refusal, refusal
        assert len(pending) == 0
