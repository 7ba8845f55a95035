"""The node's diagnostics statistics (pure Python, no ROS): rates, drops, latency percentiles."""

import math
import sys
import threading
import time

import numpy as np
import pytest

from fartrack_ros.diagnostics import (
    OK,
    STAGES,
    WARN,
    NodeStatistics,
    RollingWindow,
    WarningThrottle,
    diagnostic_items,
    diagnostic_level,
    warning_kind,
)
from fake_clock import FakeClock


def test_rolling_window_percentiles_cover_only_the_last_samples():
    window = RollingWindow(size=100)
    for value in range(1000):
        window.add(value)

    summary = window.summary()

    assert summary.count == 100
    assert summary.p50_ms == pytest.approx(949.5)
    assert summary.p95_ms == pytest.approx(994.05)
    assert summary.max_ms == 999


def test_empty_window_reports_nan():
    summary = RollingWindow(5).summary()
    assert summary.count == 0 and math.isnan(summary.p50_ms) and math.isnan(summary.max_ms)


def test_totals_accumulate_and_drops_are_counted_per_period():
    clock = FakeClock()
    stats = NodeStatistics(clock=clock)
    for _ in range(30):
        stats.record_received()
    for _ in range(10):
        stats.record_processed({"model": 50.0})
    stats.record_dropped(20)
    clock.now += 2.0

    first = stats.snapshot()
    clock.now += 1.0
    stats.record_received()
    second = stats.snapshot()

    assert (first.dropped_in_period, second.dropped_in_period) == (20, 0)
    assert (second.received_total, second.processed_total, second.dropped_total) == (31, 10, 20)


def _steady_stream(stats, clock, rate_hz, seconds, *, snapshot_every_s=1.0, jitter_s=0.0):
    """Feed ``rate_hz`` frames (each received and processed) for ``seconds``, taking a snapshot
    every ``snapshot_every_s`` late by up to ``jitter_s`` (a busy executor); the snapshots."""
    rng = np.random.default_rng(0)
    snapshots, next_snapshot = [], clock.now + snapshot_every_s + rng.uniform(0, jitter_s)
    end = clock.now + seconds
    frame_times = np.arange(clock.now, end, 1.0 / rate_hz)
    for t in frame_times:
        while next_snapshot <= t:
            clock.now = next_snapshot
            snapshots.append(stats.snapshot())
            next_snapshot += snapshot_every_s + rng.uniform(0, jitter_s)
        clock.now = t
        stats.record_received()
        stats.record_processed({"model": 5.0})
    return snapshots


def test_a_steady_stream_shows_its_rate_however_late_the_timer_fires():
    clock = FakeClock()
    stats = NodeStatistics(clock=clock)

    snapshots = _steady_stream(stats, clock, 10.0, 20.0, jitter_s=0.3)

    for snap in snapshots[2:]:  # once the window is full
        assert snap.fps_in == pytest.approx(10.0, abs=0.05) and snap.fps_out == pytest.approx(10.0, abs=0.05)


def test_the_rate_of_a_stream_that_stops_decays_to_zero():
    clock = FakeClock()
    stats = NodeStatistics(clock=clock)
    _steady_stream(stats, clock, 10.0, 5.0)
    last_frame = clock.now

    rates = []
    for after_s in (0.05, 0.5, 1.0, 1.5, 2.1):
        clock.now = last_frame + after_s
        rates.append(stats.snapshot().fps_in)

    assert rates[0] == pytest.approx(10.0, abs=0.05)
    assert rates[1] < rates[0] and all(a > b for a, b in zip(rates[1:], rates[2:]))
    assert rates[-1] == 0.0


@pytest.mark.parametrize("rate_hz", [0.25, 0.5, 0.7])
def test_a_camera_slower_than_one_frame_per_window_shows_its_rate(rate_hz):
    clock = FakeClock()
    stats = NodeStatistics(clock=clock)

    snapshots = _steady_stream(stats, clock, rate_hz, 40.0, jitter_s=0.3)

    rates = [snap.fps_in for snap in snapshots[int(2 / rate_hz) + 1:]]  # from the second frame on
    assert min(rates) > 0.6 * rate_hz and max(rates) <= rate_hz + 1e-9, rates


def test_rates_follow_a_rate_change_within_the_window():
    clock = FakeClock()
    stats = NodeStatistics(clock=clock)
    _steady_stream(stats, clock, 30.0, 5.0)
    snapshots = _steady_stream(stats, clock, 5.0, 6.0)

    assert snapshots[-1].fps_in == pytest.approx(5.0, abs=0.05)


def test_a_long_diagnostics_period_measures_over_the_whole_period():
    clock = FakeClock()
    stats = NodeStatistics(clock=clock)

    snapshots = _steady_stream(stats, clock, 0.5, 31.0, snapshot_every_s=10.0)

    assert [round(s.fps_in, 3) for s in snapshots] == [0.5, 0.5, 0.5]


def test_reset_forgets_counts_and_latencies():
    clock = FakeClock()
    stats = NodeStatistics(clock=clock)
    _steady_stream(stats, clock, 10.0, 3.0)
    stats.record_dropped(4)

    stats.reset()
    snap = stats.snapshot()

    assert (snap.received_total, snap.processed_total, snap.dropped_total, snap.fps_in) == (0, 0, 0, 0.0)
    assert snap.stage_latency["model"].count == 0 and snap.total_latency.count == 0


def test_stage_latencies_and_total_and_delay_are_summarised():
    stats = NodeStatistics(clock=FakeClock())
    for i in range(1, 101):
        stats.record_processed(
            {"convert": 1.0, "crop": 2.0, "model": float(i), "decode": 0.5, "publish": 0.25},
            delay_ms=10.0 + i,
        )

    snap = stats.snapshot()

    assert set(snap.stage_latency) == set(STAGES)
    assert snap.stage_latency["model"].p50_ms == pytest.approx(50.5)
    assert snap.stage_latency["model"].max_ms == 100.0
    assert snap.stage_latency["crop"].p95_ms == pytest.approx(2.0)
    assert snap.total_latency.max_ms == pytest.approx(103.75)
    assert snap.delay_from_stamp.p50_ms == pytest.approx(60.5)


def test_unknown_stages_and_non_finite_values_are_ignored():
    stats = NodeStatistics(clock=FakeClock())
    stats.record_processed({"warp": 5.0, "model": float("nan"), "crop": None}, delay_ms=float("inf"))

    snap = stats.snapshot()

    assert snap.processed_total == 1
    assert snap.stage_latency["model"].count == 0 and snap.delay_from_stamp.count == 0


def test_diagnostic_items_name_every_stage_and_extra_fields():
    stats = NodeStatistics(clock=FakeClock())
    stats.record_processed({name: 1.0 for name in STAGES}, delay_ms=3.0)

    keys = dict(diagnostic_items(stats.snapshot(), device="cpu", model="tiny"))

    for name in STAGES:
        for stat in ("p50", "p95", "max"):
            assert keys[f"latency_{name}_{stat}_ms"] == "1.00"
    assert keys["delay_from_stamp_p95_ms"] == "3.00"
    assert keys["frames_dropped"] == "0"
    assert keys["device"] == "cpu" and keys["model"] == "tiny"
    assert {"fps_in", "fps_out"} <= set(keys)


def test_level_warns_when_active_without_images_for_three_seconds():
    clock = FakeClock()
    stats = NodeStatistics(clock=clock)
    levels = []
    for _ in range(4):
        clock.now += 1.0
        levels.append(diagnostic_level(stats.snapshot(), active=True, targets=0))
    assert [level for level, _ in levels] == [OK, OK, WARN, WARN]
    assert "no images received for 4.0 s" in levels[-1][1]


def test_level_is_ok_while_images_arrive():
    clock = FakeClock()
    stats = NodeStatistics(clock=clock)
    stats.record_received()
    clock.now += 1.0
    assert diagnostic_level(stats.snapshot(), active=True, targets=0)[0] == OK


@pytest.mark.parametrize("period_s,frame_interval_s", [(1.0, 2.0), (0.05, 0.1), (1.0, 2.9)])
def test_level_does_not_flap_with_a_camera_slower_than_the_period(period_s, frame_interval_s):
    clock = FakeClock()
    stats = NodeStatistics(clock=clock)
    stats.note_tracking_started()
    next_frame_s, levels = clock.now, []
    for _ in range(int(20 / period_s)):
        clock.now += period_s
        while next_frame_s <= clock.now:
            stats.record_received()
            stats.record_processed({"model": 1.0})
            next_frame_s += frame_interval_s
        levels.append(diagnostic_level(stats.snapshot(), active=True, targets=1)[0])
    assert set(levels) == {OK}


def test_level_warns_when_images_arrive_but_targets_are_not_tracked():
    clock = FakeClock()
    stats = NodeStatistics(clock=clock)
    stats.note_tracking_started()
    for _ in range(5):
        clock.now += 1.0
        stats.record_received()
        level, message = diagnostic_level(stats.snapshot(), active=True, targets=1)
    assert level == WARN and "no frame was tracked for 5.0 s" in message
    stats.note_tracking_started()  # targets added anew: counted from there
    assert diagnostic_level(stats.snapshot(), active=True, targets=1)[0] == OK


def test_a_snapshot_sees_each_record_whole_while_threads_record():
    """The lock makes every ``record_*`` call whole to ``snapshot``: taken while two threads record
    frames, each snapshot counts every processed frame in its latency windows too (and reads no
    deque being appended to), and the totals lose no update.

    Left to the GIL's 5 ms switches, a snapshot seldom lands inside a record, and a counter test
    passed with no lock at all. Here the clock, which a record calls between its counter and its
    windows, lets another thread run first, and threads switch every microsecond
    (``sys.setswitchinterval``): without the lock most snapshots are caught half-way."""
    def clock():  # time.monotonic, once another thread has had the chance to run
        time.sleep(0)
        return time.monotonic()

    stats = NodeStatistics(window=100_000, clock=clock)  # no window drops a sample: its count is its frames
    recorded, problems, taken, done = [0, 0], [], [0], threading.Event()

    def record(index):
        # at least 1000 frames, and on until the watcher has taken 300 snapshots (at most 40000)
        while recorded[index] < 1000 or (taken[0] < 300 and recorded[index] < 40_000):
            stats.record_received()
            stats.record_dropped()
            stats.record_processed({"model": 1.0, "decode": 0.5}, delay_ms=2.0)
            recorded[index] += 1

    def watch():
        try:
            while not done.is_set():
                snap = stats.snapshot()
                taken[0] += 1
                counts = (snap.processed_total, snap.total_latency.count, snap.stage_latency["model"].count,
                          snap.stage_latency["decode"].count, snap.delay_from_stamp.count)
                if len(set(counts)) != 1:
                    problems.append(f"processed_total, then the counts of total, model, decode, delay: {counts}")
        except Exception as exc:  # e.g. a rate's deque appended to while the snapshot reads it
            problems.append(f"snapshot raised {type(exc).__name__}: {exc}")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        writers = [threading.Thread(target=record, args=(index,)) for index in range(2)]
        watcher = threading.Thread(target=watch)
        for thread in [watcher, *writers]:
            thread.start()
        for thread in writers:
            thread.join()
        done.set()
        watcher.join()
    finally:
        sys.setswitchinterval(interval)

    assert not problems, f"{len(problems)} of {taken[0]} snapshots inconsistent, the first: {problems[:3]}"
    snap = stats.snapshot()
    total = sum(recorded)
    assert (snap.received_total, snap.dropped_total, snap.processed_total) == (total, total, total)
    assert snap.total_latency.count == snap.delay_from_stamp.count == total


def test_warning_throttle_passes_the_first_then_one_per_period_per_kind():
    clock = FakeClock()
    throttle = WarningThrottle(every_s=5.0, clock=clock)

    assert throttle.admit("image") == (True, 0)
    assert throttle.admit("image") == (False, 0)
    assert throttle.admit("init") == (True, 0)
    assert throttle.admit("image") == (False, 0)
    clock.now += 5.0
    assert throttle.admit("image") == (True, 2)
    assert throttle.admit("image") == (False, 0)


def test_warnings_differing_in_numbers_are_one_kind_and_in_quoted_names_are_not():
    def frame_warning(stamp):
        return f"frame {stamp}.000000001 not tracked: ValueError: bad frame 12x3"

    assert warning_kind(frame_warning(100)) == warning_kind(frame_warning(101))
    assert warning_kind("remove ignored: no target 'foo'") != warning_kind("remove ignored: no target 'bar'")
    assert warning_kind("init for target 't1' refused: w=0.0") == "init for target 't1' refused: w=#.#"
    assert warning_kind('unsupported encoding "16UC1"') != warning_kind('unsupported encoding "32FC1"')
    assert warning_kind("the camera's frame 'cam1'") != warning_kind("the camera's frame 'cam2'")


def test_a_family_logs_a_few_kinds_per_period_and_then_counts_the_rest():
    clock = FakeClock()
    throttle = WarningThrottle(every_s=5.0, clock=clock)
    burst = WarningThrottle.FAMILY_BURST

    admitted = [throttle.admit(f"no target 'id{k}'", "no target #")[0] for k in range(burst + 3)]
    assert admitted == [True] * burst + [False] * 3
    assert throttle.admit("other", "other") == (True, 0)  # another family is not held back
    clock.now += 5.0
    assert throttle.admit("no target 'late'", "no target #") == (True, 3)


def test_every_warning_held_back_is_counted_also_of_a_kind_never_logged_again():
    clock = FakeClock()
    throttle = WarningThrottle(every_s=5.0, clock=clock)
    for _ in range(3):
        throttle.admit("no target 'once'", "no target #")  # logged, then 2 held; the id never comes back
    for k in range(WarningThrottle.FAMILY_BURST + 4):
        throttle.admit(f"no target 'id{k}'", "no target #")
    assert throttle.held_total == 2 + 5  # 4 kinds logged before the family's burst of 5 was spent


def test_warning_throttle_forgets_kinds_not_seen_for_a_period_once_it_holds_many():
    clock = FakeClock()
    throttle = WarningThrottle(every_s=5.0, clock=clock)
    for k in range(3 * WarningThrottle.MAX_KINDS):
        throttle.admit(f"kind {k}")
        clock.now += 0.01  # 10 s of distinct kinds
    assert len(throttle._last) <= WarningThrottle.MAX_KINDS + 5.0 / 0.01 + 1


@pytest.mark.parametrize("lost, level, message", [
    (0, OK, "tracking, "),
    (2, OK, "tracking (2 of 3 lost), "),
    (3, WARN, "all 3 target(s) lost (searching where last seen), "),
])
def test_level_warns_when_every_target_is_lost(lost, level, message):
    clock = FakeClock()
    stats = NodeStatistics(clock=clock)
    stats.note_tracking_started()
    clock.now += 1.0
    stats.record_received()
    stats.record_processed({"model": 1.0})

    got_level, got_message = diagnostic_level(stats.snapshot(), active=True, targets=3, lost=lost)

    assert got_level == level and got_message.startswith(message), got_message


@pytest.mark.parametrize("delay_ms, level, message", [
    (35.0, OK, "tracking, "),
    (-50.0, OK, "tracking, "),  # within the clocks' tolerance
    (-11_000.0, WARN, "image stamps are 11 s ahead of the node's clock"),
    (-1.7957e12, WARN, "image stamps are 1.8e+09 s ahead of the node's clock"),  # use_sim_time, no /clock
    (4.2e11, WARN, "image stamps are 4.2e+08 s behind the node's clock"),  # a bag's stamps, wall time
])
def test_level_warns_when_the_image_stamps_come_from_another_clock(delay_ms, level, message):
    stats = _tracked_frames(delay_ms)

    got_level, got_message = diagnostic_level(stats.snapshot(), active=True, targets=1)

    assert got_level == level and got_message.startswith(message), got_message


def _tracked_frames(delay_ms: float) -> NodeStatistics:
    """Statistics of 5 frames tracked 0.1 s apart, each ``delay_ms`` after its stamp."""
    clock = FakeClock()
    stats = NodeStatistics(clock=clock)
    stats.note_tracking_started()
    for _ in range(5):
        clock.now += 0.1
        stats.record_received()
        stats.record_processed({"model": 1.0}, delay_ms=delay_ms)
    return stats


def test_stamps_of_another_clock_are_judged_only_while_frames_are_tracked():
    stats = _tracked_frames(-11_000.0)
    assert diagnostic_level(stats.snapshot(), active=True, targets=1)[0] == WARN

    level, message = diagnostic_level(stats.snapshot(), active=True, targets=0)  # targets removed
    assert level == OK and message.startswith("idle (no targets)"), message
