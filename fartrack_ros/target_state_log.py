"""Which LOST / found-again changes of the targets the node logs.

A target flapping around ``lost_threshold`` would log a line per frame: a target's change is logged
at most every ``every_s`` seconds, but the log always catches up with its state, because what is
compared is the state last logged, not the previous frame's.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable


class TargetStateLog:
    """The LOST state last logged per target, and when."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._every_s = every_s
        self._clock = clock
        self._logged_lost: dict[str, bool] = {}  # target id -> LOST as last logged
        self._logged_s: dict[str, float] = {}  # target id -> clock time of that line

    def changes(self, target_ids: Iterable[str], lost_ids: set[str]) -> list[tuple[str, bool]]:
        """(target id, LOST now) for each of ``target_ids`` (this frame's) whose state differs from
        the one last logged (a new target counts as logged TRACKING) and was not logged within
        ``every_s``; those are taken as logged now."""
        now = self._clock()
        due = []
        for target_id in target_ids:
            lost = target_id in lost_ids
            if self._logged_lost.get(target_id, False) == lost:
                continue
            if now - self._logged_s.get(target_id, -self._every_s) < self._every_s:
                continue  # said on a later frame, if it still holds then
            self._logged_lost[target_id], self._logged_s[target_id] = lost, now
            due.append((target_id, lost))
        return due

    def forget(self, target_id: str) -> None:
        """``target_id`` was (re)started: it starts TRACKING, with nothing logged yet."""
        self._logged_lost.pop(target_id, None)
        self._logged_s.pop(target_id, None)

    def keep_only(self, target_ids: Iterable[str]) -> None:
        """Forget the targets that are gone."""
        for gone in set(self._logged_lost) - set(target_ids):
            self.forget(gone)
