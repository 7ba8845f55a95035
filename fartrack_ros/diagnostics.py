"""Run-time statistics of the node: frame rates, drops, per-stage latency windows.

Pure Python (no ROS): the node feeds `NodeStatistics` from its callbacks and worker thread and,
every ``diagnostics_period``, turns `NodeStatistics.snapshot` into a ``DiagnosticStatus`` with
`diagnostic_items`. All methods are thread-safe.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

# The stages a processed frame goes through, in order. crop/model/decode come from the tracker's
# own timings; convert (message -> RGB array) and publish are measured by the node.
STAGES = ("convert", "crop", "model", "decode", "publish")

# diagnostic_msgs/DiagnosticStatus levels (bytes in the message; ints here).
OK, WARN, ERROR, STALE = 0, 1, 2, 3
# No image (or, with targets, no tracked frame) for this long, and for 3 diagnostics periods, is a
# warning: a slow camera or a period shorter than the frame interval must not make it flap.
SILENCE_WARN_S = 3.0
# Frame rates are measured over the frames of at least the last this many seconds (and of the
# last diagnostics period when it is longer).
RATE_WINDOW_S = 2.0
# Image stamps whose median delay to the detections is below -AHEAD_WARN_MS (stamped in the node's
# future) or above BEHIND_WARN_S (no frame waits that long in a keep-last queue) come from another
# clock than the node's: a warning, as delay_from_stamp then measures the clocks, not the node.
AHEAD_WARN_MS = 100.0
BEHIND_WARN_S = 10.0


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles of one rolling window, in milliseconds (NaN when the window is empty)."""

    count: int
    p50_ms: float
    p95_ms: float
    max_ms: float


class RollingWindow:
    """The last ``size`` samples of one quantity."""

    def __init__(self, size: int = 300) -> None:
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self._samples: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        """Append one sample; the oldest goes once ``size`` are held."""
        self._samples.append(float(value))

    def __len__(self) -> int:
        return len(self._samples)

    def summary(self) -> LatencySummary:
        """Median, 95th percentile and maximum of the samples held (NaN when there are none)."""
        if not self._samples:
            nan = float("nan")
            return LatencySummary(0, nan, nan, nan)
        values = np.fromiter(self._samples, dtype=np.float64, count=len(self._samples))
        p50, p95 = np.percentile(values, [50, 95])
        return LatencySummary(len(values), float(p50), float(p95), float(values.max()))


class EventRate:
    """Events per second, from the times of the events of a recent window: (n - 1) gaps over the
    time they span, so a diagnostics timer that fires early or late does not move a steady rate
    (counting events per timer period showed 7-12 fps for a steady 10 Hz camera). Time since the
    last event counts once it exceeds the mean gap, so a stream that stops decays to 0."""

    MAX_EVENTS = 50_000  # 1000 fps over a 50 s diagnostics period: the newest ones span enough
    HISTORY_S = 60.0  # how far back the last two events of a slow stream are looked for

    def __init__(self) -> None:
        self._times: deque[float] = deque(maxlen=self.MAX_EVENTS)

    def add(self, time_s: float) -> None:
        """One event at ``time_s`` (seconds of the caller's clock, in the order the events happen)."""
        self._times.append(time_s)

    def per_second(self, now_s: float, window_s: float) -> float:
        """The rate over the events of the last ``window_s`` seconds; with fewer than two there,
        over the last two when they are at least half a window apart (a camera slower than one
        frame per window, within `HISTORY_S`), else 0 (a stream that stopped). Events older than
        that are forgotten."""
        times = self._times
        while times and times[0] < now_s - max(window_s, self.HISTORY_S):
            times.popleft()
        cutoff_s = now_s - window_s
        count = sum(1 for _ in itertools.takewhile(lambda t: t >= cutoff_s, reversed(times)))
        if count < 2 and len(times) >= 2 and times[-1] - times[-2] >= window_s / 2:
            count = 2
        if count < 2:
            return 0.0
        first_s = times[len(times) - count]
        span_s = times[-1] - first_s
        mean_gap_s = span_s / (count - 1)
        return (count - 1) / max(span_s, now_s - first_s - mean_gap_s, 1e-9)


@dataclass
class StatisticsSnapshot:
    """What the node reports once per diagnostics period."""

    period_s: float
    fps_in: float
    fps_out: float
    received_total: int
    processed_total: int
    dropped_total: int
    dropped_in_period: int
    since_received_s: float = 0.0  # since the last image (or since subscribing)
    since_processed_s: float = 0.0  # since the last tracked frame (or since targets were added)
    stage_latency: dict[str, LatencySummary] = field(default_factory=dict)
    total_latency: LatencySummary | None = None
    delay_from_stamp: LatencySummary | None = None


class NodeStatistics:
    """Counters and latency windows shared by the node's callbacks and its worker.

    ``record_received`` counts every image that arrives, ``record_dropped`` every frame that was
    stored for tracking and overwritten before the worker took it (keep-last-1), and
    ``record_processed`` every frame the tracker ran on, with its per-stage milliseconds and the
    delay from the image's header stamp to the publication of its detections.
    """

    def __init__(self, window: int = 300, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._window = window
        self._start()

    def reset(self) -> None:
        """Forget every count and latency (a new model was configured: the figures describe it)."""
        with self._lock:
            self._start()

    def _start(self) -> None:
        self._stages = {name: RollingWindow(self._window) for name in STAGES}
        self._total = RollingWindow(self._window)
        self._delay = RollingWindow(self._window)
        self._received = self._processed = self._dropped = 0
        self._received_rate, self._processed_rate = EventRate(), EventRate()
        self._mark = (self._clock(), 0)  # time and dropped count at the last snapshot
        self._last_received_s = self._last_processed_s = self._clock()

    def note_subscribed(self) -> None:
        """Images are awaited from now on: silence is counted from here."""
        with self._lock:
            self._last_received_s = self._last_processed_s = self._clock()

    def note_tracking_started(self) -> None:
        """Targets were added to an idle tracker: a tracked frame is awaited from now on."""
        with self._lock:
            self._last_processed_s = self._clock()

    def record_received(self) -> None:
        """One image arrived: counted, and fed to the input rate and the silence watch."""
        with self._lock:
            self._received += 1
            self._last_received_s = self._clock()
            self._received_rate.add(self._last_received_s)

    def record_dropped(self, count: int = 1) -> None:
        """``count`` stored frames were overwritten before the worker took them."""
        with self._lock:
            self._dropped += count

    def record_processed(self, stage_ms: dict[str, float], delay_ms: float | None = None) -> None:
        """One tracked frame: milliseconds per stage (unknown stage names are ignored)."""
        with self._lock:
            self._processed += 1
            self._last_processed_s = self._clock()
            self._processed_rate.add(self._last_processed_s)
            total = 0.0
            for name, value in stage_ms.items():
                window = self._stages.get(name)
                if window is not None and value is not None and np.isfinite(value):
                    window.add(value)
                    total += float(value)
            self._total.add(total)
            if delay_ms is not None and np.isfinite(delay_ms):
                self._delay.add(delay_ms)

    @property
    def dropped_total(self) -> int:
        """Frames dropped since start (or since the last `reset`)."""
        with self._lock:
            return self._dropped

    def snapshot(self) -> StatisticsSnapshot:
        """Rates over the last `RATE_WINDOW_S` (or since the previous snapshot, when longer), drops
        since the previous snapshot, totals since start, latency over the windows."""
        with self._lock:
            now = self._clock()
            then, dropped = self._mark
            period = max(now - then, 1e-9)
            self._mark = (now, self._dropped)
            window_s = max(RATE_WINDOW_S, period)
            return StatisticsSnapshot(
                period_s=period,
                fps_in=self._received_rate.per_second(now, window_s),
                fps_out=self._processed_rate.per_second(now, window_s),
                received_total=self._received,
                processed_total=self._processed,
                dropped_total=self._dropped,
                dropped_in_period=self._dropped - dropped,
                since_received_s=now - self._last_received_s,
                since_processed_s=now - self._last_processed_s,
                stage_latency={name: window.summary() for name, window in self._stages.items()},
                total_latency=self._total.summary(),
                delay_from_stamp=self._delay.summary(),
            )


def _ms(value: float) -> str:
    return "nan" if not np.isfinite(value) else f"{value:.2f}"


def diagnostic_items(snapshot: StatisticsSnapshot, **extra: object) -> list[tuple[str, str]]:
    """Key/value pairs for a ``DiagnosticStatus``: rates, drops, latency per stage, then ``extra``
    (device, model, targets, ...) in the order given."""
    items = [
        ("fps_in", f"{snapshot.fps_in:.2f}"),
        ("fps_out", f"{snapshot.fps_out:.2f}"),
        ("frames_received", str(snapshot.received_total)),
        ("frames_processed", str(snapshot.processed_total)),
        ("frames_dropped", str(snapshot.dropped_total)),
        ("frames_dropped_in_period", str(snapshot.dropped_in_period)),
    ]
    windows = dict(snapshot.stage_latency)
    if snapshot.total_latency is not None:
        windows["total"] = snapshot.total_latency
    if snapshot.delay_from_stamp is not None:
        windows["delay_from_stamp"] = snapshot.delay_from_stamp
    for name, summary in windows.items():
        prefix = name if name == "delay_from_stamp" else f"latency_{name}"
        items += [
            (f"{prefix}_p50_ms", _ms(summary.p50_ms)),
            (f"{prefix}_p95_ms", _ms(summary.p95_ms)),
            (f"{prefix}_max_ms", _ms(summary.max_ms)),
        ]
    items += [(key, str(value)) for key, value in extra.items()]
    return items


def clock_mismatch(delay: LatencySummary | None) -> str | None:
    """Why the image stamps cannot be of the node's clock, judged from the median delay of
    stamp to detections (`AHEAD_WARN_MS`, `BEHIND_WARN_S`); None when they can."""
    if delay is None or not np.isfinite(delay.p50_ms):
        return None
    if delay.p50_ms < -AHEAD_WARN_MS:
        where = f"{-delay.p50_ms / 1e3:.3g} s ahead of"
    elif delay.p50_ms > BEHIND_WARN_S * 1e3:
        where = f"{delay.p50_ms / 1e3:.3g} s behind"
    else:
        return None
    return (f"image stamps are {where} the node's clock (a camera clock not synchronised, a bag or simulator "
            "time without use_sim_time, or use_sim_time with no /clock): delay_from_stamp measures the clocks")


def diagnostic_level(snapshot: StatisticsSnapshot, *, active: bool, targets: int, lost: int = 0,
                     image_problem: str | None = None, frame_error: str | None = None) -> tuple[int, str]:
    """(level, message) for the node's ``DiagnosticStatus``, with ``targets`` tracked, ``lost`` of
    them LOST, ``image_problem``: why the images arriving cannot be used, if they cannot, and
    ``frame_error``: why the last frame the node tried failed (a bad step, cut-short data), if it did.

    OK while frames arrive; WARN when the node is active but no image arrived for a while (a
    wrong topic or QoS is the usual cause), when the images cannot be used (an encoding the node
    does not convert), when targets are tracked but no frame was processed for a while
    (`SILENCE_WARN_S` and at least 3 periods), when the image stamps come from another clock
    (`clock_mismatch`), or when every target is lost.
    """
    if not active:
        return OK, "inactive (not subscribed to images)"
    silence_s = max(SILENCE_WARN_S, 3.0 * snapshot.period_s)
    if snapshot.since_received_s >= silence_s:
        return WARN, (f"no images received for {snapshot.since_received_s:.1f} s "
                      "(check the image topic and its QoS)")
    if image_problem is not None:
        return WARN, f"images arrive but cannot be tracked: {image_problem}"
    if targets and snapshot.since_processed_s >= silence_s:
        why = f"; the last frame tried failed: {frame_error}" if frame_error else ""
        return WARN, f"targets active but no frame was tracked for {snapshot.since_processed_s:.1f} s{why}"
    tracking_now = targets and snapshot.since_processed_s < silence_s  # the delays are of recent frames
    if tracking_now and (clocks := clock_mismatch(snapshot.delay_from_stamp)) is not None:
        return WARN, clocks
    rates = f"{snapshot.fps_in:.1f} fps in, {snapshot.fps_out:.1f} fps out"
    if targets and lost >= targets:
        return WARN, f"all {targets} target(s) lost (searching where last seen), {rates}"
    state = "idle (no targets)" if not targets else "tracking" + (f" ({lost} of {targets} lost)" if lost else "")
    return OK, f"{state}, {rates}"


# a quote opens only where no letter or digit precedes it: the apostrophe of "image's" is no quote
_QUOTED_OR_NUMBER = re.compile(r"((?<!\w)'[^']*'|(?<!\w)\"[^\"]*\")|\d+")


def warning_kind(text: str, keep_names: bool = True) -> str:
    """What makes warnings repeats of one another: the text with its numbers (stamps, sizes, box
    values) masked. Quoted names (target ids, encodings) are kept, each being another user action,
    unless ``keep_names`` is false (the warning's family, see `WarningThrottle.admit`)."""
    return _QUOTED_OR_NUMBER.sub(lambda match: (match.group(1) if keep_names else None) or "#", text)


class WarningThrottle:
    """Rate limit for repeated warnings, per kind: the first of a kind passes, then at most one
    every ``every_s`` seconds, reporting how many were held back in between."""

    MAX_KINDS = 1024  # past this many, kinds and families not seen for ``every_s`` are forgotten
    FAMILY_BURST = 5  # kinds of one family logged per ``every_s``

    def __init__(self, every_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._every_s = every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._family_times: dict[str, list[float]] = {}  # when each family last logged, newest last
        self._family_held: dict[str, int] = {}
        self._held_total = 0

    @property
    def held_total(self) -> int:
        """Warnings held back since the start, also those of a kind never logged again (which no
        logged line counts)."""
        return self._held_total

    def admit(self, kind: str, family: str | None = None) -> tuple[bool, int]:
        """(log it now?, how many were held back since the last one logged).

        ``family`` groups kinds that differ only in the names they quote (a warning about many
        target ids): each kind is logged, but at most FAMILY_BURST of a family per period, so a
        client inventing an id per request cannot flood the log; the family's next logged line
        counts those held back."""
        family = kind if family is None else family
        with self._lock:
            now = self._clock()
            if len(self._last) > self.MAX_KINDS or len(self._family_times) > self.MAX_KINDS:
                self._forget_before(now - self._every_s)
            last = self._last.get(kind)
            if last is not None and now - last < self._every_s:
                self._held[kind] = self._held.get(kind, 0) + 1
                self._held_total += 1
                return False, 0
            recent = [t for t in self._family_times.get(family, []) if now - t < self._every_s]
            if len(recent) >= self.FAMILY_BURST:
                self._family_times[family] = recent
                self._family_held[family] = self._family_held.get(family, 0) + 1
                self._held_total += 1
                return False, 0
            self._family_times[family] = [*recent, now]
            self._last[kind] = now
            return True, self._held.pop(kind, 0) + self._family_held.pop(family, 0)

    def _forget_before(self, cutoff: float) -> None:
        for old in [k for k, t in self._last.items() if t <= cutoff]:
            del self._last[old]
            self._held.pop(old, None)
        for old in [f for f, times in self._family_times.items() if times[-1] <= cutoff]:
            del self._family_times[old]
            self._family_held.pop(old, None)
