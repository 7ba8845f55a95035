"""The node's init rules, apart from the node (testable without one): which cached frame an init
names, and which of its detections count.

An init stamped with an image's header starts its targets on that frame; a zero stamp on the
latest, when it arrived within LATEST_FRAME_MAX_AGE_S: after a camera outage the latest frame may
be seconds old, and the target no longer where the init says, so an active node waits for the
next frame and an inactive one refuses it (a paused bag's frame takes an init stamped with its
header). One whose frame is not cached is held for it (`PendingInits`): the init may
have overtaken its image, or come just before the first frame of a bag loop. It is refused, with a
reason that says what to change, once a frame stamped as late or later has arrived, or after the
wait (longer at low frame rates: as long as a frame may come late, at most MAX_INIT_WAIT_S).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable

from .frame_cache import CachedFrame, FrameCache, PendingInits
from .node_messages import format_stamp, is_zero_stamp, shown_id, stamp_to_ns


INIT_WAIT_S = 1.0  # an init whose frame has not arrived yet waits this long for it
MAX_INIT_WAIT_S = 10.0  # the longest an init waits for its frame, whatever the frame rate
LATEST_FRAME_MAX_AGE_S = 1.0  # a zero-stamp init starts on the latest frame only if it is this recent
# why a held init is handed back to be started or refused (see PendingInits)
LATER_FRAME = "a later frame arrived first"
WAITED = f"it did not arrive within the wait ({INIT_WAIT_S:g} s, longer at low frame rates)"
DEACTIVATED = "the node stopped receiving images first"


def find_init_frame(cache: FrameCache, pending: PendingInits, msg: Any, *, held: str | None,
                    may_wait: bool, image_topic: str) -> tuple[CachedFrame | None, str | None]:
    """(frame, None) for the cached frame ``msg`` (a ``Detection2DArray``) is stamped with;
    (None, refusal) when it is refused; (None, None) when it now waits in ``pending`` (only if
    ``may_wait`` and it was not ``held`` before: ``held`` says why its frame did not come)."""
    stamp = msg.header.stamp
    targets = ", ".join(shown_id(d.id) for d in msg.detections)
    if is_zero_stamp(stamp):
        return _latest_frame(cache, pending, msg, held=held, may_wait=may_wait, image_topic=image_topic,
                             targets=targets)
    stamp_ns = stamp_to_ns(stamp)
    frame = cache.find(stamp_ns)
    if frame is None and held is None and may_wait:
        frame = _hold(cache, pending, stamp_ns, msg, lambda: cache.find(stamp_ns))
        if frame is _WAITS:
            return None, None
        if frame is None:
            held = DEACTIVATED
    if frame is not None:
        return frame, None
    stamps = cache.stamps()  # in stamp order
    if not stamps:  # a wrong image topic, or a camera not started: the stamp is not the problem
        waited = f"; the init waited for its frame but {held}" if held is not None else ""
        return None, f"init ignored for {targets}: no image received yet on {image_topic}{waited}"
    count = f"{len(stamps)} frame" + ("s" if len(stamps) != 1 else "")
    cached = f"the cache holds {count} from {format_stamp(stamps[0])} to {format_stamp(stamps[-1])}"
    if stamp_ns < stamps[0]:
        cached += (f"; the stamp is older than every cached frame: raise frame_cache_size "
                   f"(now {cache.size}) or send the init sooner")
    if held is not None:
        cached = f"the init waited for that frame but {held}; {cached}"
    return None, (f"init ignored for {targets}: no cached frame has stamp {format_stamp(stamp_ns)} "
                  f"({cached}); stamp the init with the header of a recent image, or use a zero stamp "
                  "for the latest frame")


_WAITS = object()  # `_hold`: the init waits in PendingInits


def _hold(cache: FrameCache, pending: PendingInits, stamp_ns: int, msg: Any,
          lookup: Callable[[], CachedFrame | None]) -> CachedFrame | object | None:
    """Hold ``msg`` for its frame: the frame ``lookup()`` finds if it arrived as the init was being
    held (taken back from ``pending``), else _WAITS (it waits, or the image callback's retry
    already has it); None when the node has just stopped receiving images (the deactivate ran as
    the init was being started). At a low frame rate a large image may lag its init by more than
    the usual wait (not for ever: stamps far apart, a camera clock gone wrong, would hold inits
    and their memory)."""
    if not pending.hold(stamp_ns, msg, min(max(pending.wait_s, cache.late_window_ns() / 1e9), MAX_INIT_WAIT_S)):
        return None
    frame = lookup()
    return frame if frame is not None and pending.withdraw(msg) else _WAITS


def _latest_frame(cache: FrameCache, pending: PendingInits, msg: Any, *, held: str | None, may_wait: bool,
                  image_topic: str, targets: str) -> tuple[CachedFrame | None, str | None]:
    """`find_init_frame` for a zero-stamp init: the latest frame if it is recent, or one that
    arrived while the init was held; else the init waits for the next frame (active node) or is
    refused."""
    def recent(frame: CachedFrame | None) -> bool:
        return frame is not None and time.monotonic() - frame.received_s <= LATEST_FRAME_MAX_AGE_S

    frame = cache.latest()
    if recent(frame) or (held == LATER_FRAME and frame is not None):  # that frame came after the init
        return frame, None
    if held is None and may_wait:  # handed back by the next frame
        found = _hold(cache, pending, 0, msg, lambda: latest if recent(latest := cache.latest()) else None)
        if found is _WAITS:
            return None, None
        if found is not None:
            return found, None
        held = DEACTIVATED
    if frame is None:
        seen = f"no image received yet on {image_topic}"
    else:
        seen = (f"the latest image on {image_topic} (stamp {format_stamp(frame.stamp_ns)}) arrived "
                f"{time.monotonic() - frame.received_s:.1f} s ago")
    if held is not None:
        why = f"the init waited for a new one but {held}"
    else:
        why = "the node is inactive (not subscribed to images): activate it first"
    anyway = "; stamp the init with that image's header to start on it anyway" if frame is not None else ""
    return None, f"init ignored for {targets}: {seen}; {why}{anyway}"


def last_of_each_id(detections: list) -> tuple[list, dict[str, int]]:
    """The detections of an init that count, a named target's last one only (re-init semantics),
    and how many times each id listed more than once appears."""
    repeated = {target_id: n for target_id, n in Counter(d.id for d in detections if d.id).items() if n > 1}
    last = {detection.id: index for index, detection in enumerate(detections) if detection.id}
    kept = [detection for index, detection in enumerate(detections)
            if not detection.id or last[detection.id] == index]
    return kept, repeated
