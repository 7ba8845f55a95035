"""Frames between the image callback and the tracker: a short stamp-indexed cache and a
keep-last-1 hand-off slot.

The image callback must stay cheap, so it stores the *message* and converts nothing. A frame is
converted to RGB the first time someone needs it (the worker that tracks it, or an init box
that refers to it by stamp) and the array is kept with the frame, so it is converted at most once.

Pure Python (no ROS): the converter is any callable ``message -> HxWx3 uint8 array``.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    from std_msgs.msg import Header


class CachedFrame:
    """One received image: its stamp, the raw message, and the RGB array once converted.

    ``seq`` numbers frames in order of arrival; unlike stamps it never goes back (a replayed bag,
    a camera clock reset), so "frames after the init frame" is ``seq > init_frame.seq``.
    """

    __slots__ = ("stamp_ns", "msg", "seq", "received_s", "_convert", "_rgb", "_convert_ms", "_lock")

    def __init__(self, stamp_ns: int, msg: Any, convert: Callable[[Any], np.ndarray], seq: int = 0) -> None:
        self.stamp_ns = int(stamp_ns)
        self.msg = msg
        self.seq = int(seq)
        self.received_s = time.monotonic()
        self._convert = convert
        self._rgb: np.ndarray | None = None
        self._convert_ms = 0.0
        self._lock = threading.Lock()

    @property
    def header(self) -> Header:
        """The message's header, which the frame's outputs carry (stamp and frame_id of the image)."""
        return self.msg.header

    def rgb(self) -> np.ndarray:
        """The frame as an RGB array (converted on the first call; errors propagate)."""
        with self._lock:
            if self._rgb is None:
                start = time.perf_counter()
                self._rgb = self._convert(self.msg)
                self._convert_ms = (time.perf_counter() - start) * 1e3
            return self._rgb

    def drop_rgb(self) -> None:
        """Free the converted array (the message stays; `rgb` converts again if asked)."""
        with self._lock:
            self._rgb = None

    @property
    def convert_ms(self) -> float:
        """Milliseconds the conversion took (0 before `rgb` was first called)."""
        return self._convert_ms


LATE_FRAMES = 3  # a frame stamped at most this many frame intervals before the newest is late,
LATE_MIN_NS = 200_000_000  # or at most this long: a second path (a republisher) may lag by as much
INTERVALS_MEASURED = 5  # the frame interval is the median of this many recent ones


@dataclass(frozen=True)
class Arrival:
    """How a frame fitted into the `FrameCache`: ``late`` (reordered on its way), or the number
    of frames of an earlier timeline it ``dropped``."""

    late: bool = False
    dropped: int = 0


class FrameCache:
    """The ``size`` newest-stamped frames, found by exact header stamp (nanoseconds) or as the
    latest (the newest stamp)."""

    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self._frames: OrderedDict[int, CachedFrame] = OrderedDict()  # in stamp order
        self._size = 1
        self.resize(size)

    def resize(self, size: int) -> None:
        """Keep at most ``size`` frames from now on (the oldest go at once); ValueError below 1."""
        if int(size) < 1:
            raise ValueError(f"frame cache size must be >= 1, got {size}")
        with self._lock:
            self._size = int(size)
            self._trim()

    @property
    def size(self) -> int:
        """How many frames the cache keeps at most."""
        return self._size

    def put(self, frame: CachedFrame) -> Arrival:
        """Add a frame; a frame with the newest stamp replaces that frame.

        A stamp up to `late_window_ns` before the newest, and not before every cached frame, is
        `Arrival.late`: reordered on its way (a relay, transport jitter at a high rate), or a copy
        of a recent frame (two paths from one camera), which leaves the cached one in place; so
        is a copy of the newest frame (same non-zero stamp, same data). A stamp further back
        starts a new timeline (a bag loop; a simulator reset; a clock stepped back): the frames
        stamped after it are dropped, so stamps compare within one timeline. Hence a loop shorter
        than the window is taken for copies, and a small cache narrows the window to the stamps
        it holds (none with one frame)."""
        stamp_ns = frame.stamp_ns
        with self._lock:
            newest = next(reversed(self._frames), None)
            if newest == stamp_ns and stamp_ns and _same_data(self._frames[newest].msg, frame.msg):
                return Arrival(late=True)
            if newest is None or newest <= stamp_ns:
                self._frames[stamp_ns] = frame
                self._trim()
                return Arrival()
            if self._is_late(stamp_ns):
                if stamp_ns not in self._frames:
                    self._frames[stamp_ns] = frame
                    self._frames = OrderedDict(sorted(self._frames.items(), key=lambda item: item[0]))
                    self._trim()
                return Arrival(late=True)
            later = [stamp for stamp in self._frames if stamp > stamp_ns]
            for stamp in later:
                del self._frames[stamp]
            self._frames[stamp_ns] = frame
            return Arrival(dropped=len(later))

    def late_window_ns(self) -> float:
        """How far before the newest frame a stamp is late rather than a new timeline: `LATE_FRAMES`
        frame intervals (the median of the last few), at least `LATE_MIN_NS` (0 with fewer than 2
        frames cached)."""
        with self._lock:
            return self._late_window_ns()

    def _late_window_ns(self) -> float:
        recent = list(itertools.islice(reversed(self._frames), INTERVALS_MEASURED + 1))
        if len(recent) < 2:
            return 0.0
        intervals = [later - earlier for later, earlier in zip(recent, recent[1:])]
        return max(LATE_FRAMES * statistics.median(intervals), LATE_MIN_NS)

    def _is_late(self, stamp_ns: int) -> bool:
        """A stamp before the newest that `put` takes as late (the lock is held)."""
        oldest, newest = next(iter(self._frames)), next(reversed(self._frames))
        return oldest <= stamp_ns < newest and newest - stamp_ns <= self._late_window_ns()

    def latest(self) -> CachedFrame | None:
        """The newest-stamped frame (not always the last received: a late one is older), or None."""
        with self._lock:
            return next(reversed(self._frames.values()), None)

    def find(self, stamp_ns: int) -> CachedFrame | None:
        """The frame stamped exactly ``stamp_ns``, or None when it is not (or no longer) cached."""
        with self._lock:
            return self._frames.get(int(stamp_ns))

    def stamps(self) -> list[int]:
        """Cached stamps, oldest first."""
        with self._lock:
            return list(self._frames)

    def clear(self) -> None:
        """Forget every frame: the next one is taken as new, whatever its stamp."""
        with self._lock:
            self._frames.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)

    def _trim(self) -> None:
        while len(self._frames) > self._size:
            self._frames.popitem(last=False)


def _same_data(a: Any, b: Any) -> bool:
    """Whether two image messages carry the same bytes (a copy by a second path); a memory compare,
    far cheaper than a decode, made only when two frames have one stamp."""
    data_a, data_b = getattr(a, "data", None), getattr(b, "data", None)
    return data_a is not None and data_b is not None and data_a == data_b


class LatestSlot:
    """Keep-last-1 hand-off from the image callback to the compute thread: a frame waiting when a
    newer one comes is dropped, as a camera's depth-1 queue would."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._item: Any = None

    def put(self, item: Any) -> bool:
        """Leave ``item`` for the consumer; True if it replaced one never taken (a dropped frame)."""
        with self._lock:
            dropped = self._item is not None
            self._item = item
            return dropped

    def take(self) -> Any:
        """The waiting item, or None; the slot is empty after."""
        with self._lock:
            item, self._item = self._item, None
            return item

    def discard(self) -> bool:
        """Drop the waiting item, if any (not counted as a drop by the caller)."""
        with self._lock:
            had, self._item = self._item is not None, None
            return had


class PendingInits:
    """Inits that name a frame not received yet, held until it arrives.

    An init that answers an image (a detector's boxes stamped with that image's header) is small and
    can overtake the image, which is large and may still be in transport or queued for the image
    callback: without waiting, 3 of 10 such inits were refused at 320x240 and 9 of 10 at
    1920x1080. A held init is handed back when its frame arrives, when a later frame arrives instead
    (its own was lost or never sent), or after ``wait_s``; whoever takes it then starts or refuses it.
    Thread-safe: the image callback, a timer and the compute thread share it.
    """

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self._lock = threading.Lock()
        self._held: list[tuple[int, float, Any]] = []  # (stamp_ns, monotonic deadline, init)
        self._open = True  # inits may be held (the node receives images)

    def hold(self, stamp_ns: int, init: Any, wait_s: float | None = None) -> bool:
        """Hold ``init`` for its frame, at most ``wait_s`` (default: the ``wait_s`` given at start);
        False, and not held, after `close`."""
        with self._lock:
            if not self._open:
                return False
            self._held.append((int(stamp_ns), time.monotonic() + (self.wait_s if wait_s is None else wait_s), init))
            return True

    def close(self) -> list[Any]:
        """Hold no more inits (the node stops receiving images, so no frame would come): the held
        ones, handed out. An init being started as this runs cannot slip in after it."""
        with self._lock:
            self._open = False
            out, self._held = [init for _, _, init in self._held], []
            return out

    def reopen(self) -> None:
        """Hold inits again after `close` (the node receives images again)."""
        with self._lock:
            self._open = True

    def withdraw(self, init: Any) -> bool:
        """Take ``init`` back from the waiting ones; False when it was already handed out."""
        with self._lock:
            kept = [entry for entry in self._held if entry[2] is not init]
            found = len(kept) < len(self._held)
            self._held = kept
            return found

    def on_frame(self, stamp_ns: int, late_window_ns: float = 0.0, newest: bool = True) -> list[Any]:
        """The inits to take now that a frame stamped ``stamp_ns`` arrived: those naming it, those
        naming a stamp more than ``late_window_ns`` earlier (closer, their frame may still come late,
        reordered on its way), and, when the frame is the ``newest`` (not a late one or a copy),
        those held with stamp 0 (waiting for the next frame)."""
        return self._hand_out(lambda stamp, deadline: (stamp == 0 and newest) or stamp == stamp_ns
                              or 0 < stamp < stamp_ns - late_window_ns)

    def overdue(self) -> list[Any]:
        """The inits that waited ``wait_s`` for their frame."""
        now = time.monotonic()
        return self._hand_out(lambda stamp, deadline: deadline <= now)

    def drop_targets(self, drop: Callable[[Any], bool]) -> int:
        """Remove the detections for which ``drop`` is true from the held inits (an init left with
        none goes); how many were removed. For inits with a ``detections`` list (Detection2DArray)."""
        with self._lock:
            dropped, kept = 0, []
            for stamp, deadline, init in self._held:
                remaining = [detection for detection in init.detections if not drop(detection)]
                dropped += len(init.detections) - len(remaining)
                if remaining:
                    init.detections = remaining
                    kept.append((stamp, deadline, init))
            self._held = kept
            return dropped

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)

    def _hand_out(self, due: Callable[[int, float], bool]) -> list[Any]:
        with self._lock:
            if not self._held:  # the usual case, on every image
                return []
            out = [init for stamp, deadline, init in self._held if due(stamp, deadline)]
            self._held = [entry for entry in self._held if not due(entry[0], entry[1])]
            return out
