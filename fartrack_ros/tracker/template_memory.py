"""The autoregressive template memory of one target: which templates fill the slots, and
which of them are kept at all.

Every template gets a logical index in the order it was added: 0 is the init template, k the
k-th template added after it. With ``n`` templates added so far and ``S`` slots, the official
tracker (README section 2.2) fills the slots with

    n < S:   slot s <- max(0, s - (S - n))
    n >= S:  [0, int((n-1)*(1-0.7)), int((n-1)*(1-0.7**2)), ..., int((n-1)*(1-0.7**(S-2))), n-1]

computed in Python float64. Each template also carries the prune keep mask that the network
produced in the forward where that template was first the newest (slot S-1); until then it has
none and all its tokens are used. (Officially a template is the newest in exactly one forward;
when the tracker's confidence gate adds none for a while, the first mask is kept.)

Memory. The official tracker keeps every template forever. The picks above are monotone
non-decreasing in ``n``, so once ``n >= S`` no template with ``0 < index < int((n-1)*(1-0.7))``
will ever be picked again: those are freed, which changes nothing. That still leaves about
``0.7 n`` templates, so the memory is also bounded by ``cap``. While fewer than ``cap``
templates are held, every scheduled index is present and the picks equal the official ones.

Thinning rule (only once more than ``cap`` would be held): repeatedly remove the held template
whose removal leaves the smallest gap between its two neighbours (``index[i+1] - index[i-1]``),
never the init template (index 0) and never the newest; ties remove the oldest. This keeps the
held indices about evenly spread over ``[int((n-1)*0.3), n-1]``, the range the schedule picks
from. Each slot then takes the oldest held template at or after its scheduled index. So picks,
like the official ones, never move back in time as frames pass, and a pick is newer than
scheduled by less than the local spacing: under ``2 n / cap`` in the tests (caps 5..64, n up
to 5,000).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SCHEDULE_BASE = 0.7


def schedule_slots(num_added: int, num_slots: int = 5) -> list[int]:
    """Official template indices for the slots when ``num_added`` templates exist."""
    if num_slots < 2:
        raise ValueError(f"num_slots must be >= 2 (first and newest template), got {num_slots}")
    if num_added < 1:
        raise ValueError(f"the memory needs at least the init template, got {num_added} templates")
    n = num_added
    if n < num_slots:
        return [max(0, s - (num_slots - n)) for s in range(num_slots)]
    middle = [int((n - 1) * (1 - SCHEDULE_BASE ** j)) for j in range(1, num_slots - 1)]
    return [0, *middle, n - 1]


def first_future_pick(num_added: int, num_slots: int = 5) -> int:
    """Lower bound on every non-zero index any slot picks from now on (picks never decrease)."""
    if num_slots == 2:
        return num_added - 1
    if num_added < num_slots:
        return 1
    return int((num_added - 1) * (1 - SCHEDULE_BASE))


@dataclass
class StoredTemplate:
    """One held template: its logical index, what the model needs of it, its prune mask."""

    index: int
    embedding: Any  # opaque to the memory: whatever the model's embed_template returned
    keep: Any = None  # bool keep mask over the template's tokens; None = not scored yet


class TemplateMemory:
    """Templates of one target: the schedule above, the exact freeing and the cap.

    ``cap=None`` keeps the official behaviour (nothing thinned; the exact freeing still applies,
    which never changes a pick).
    """

    def __init__(self, num_slots: int = 5, cap: int | None = 64) -> None:
        self.num_slots = num_slots
        self.num_added = 0
        self._held: list[StoredTemplate] = []  # sorted by index
        self._before_add: tuple[list[StoredTemplate], int] | None = None  # what `add` changed
        self.cap = None
        self.set_cap(cap)

    def set_cap(self, cap: int | None) -> None:
        """Change the bound (None: unbounded); a smaller cap thins the memory at once."""
        if cap is not None and cap < self.num_slots:
            raise ValueError(f"template_memory_cap must be >= the {self.num_slots} template slots, "
                             f"got {cap}")
        self.cap = cap
        if cap is not None:
            self._held = _thinned(self._held, cap)
            if self._before_add is not None:  # an undo must not bring back more than the cap
                held, num_added = self._before_add
                self._before_add = (_thinned(held, cap), num_added)

    def __len__(self) -> int:
        return len(self._held)

    @property
    def held_indices(self) -> list[int]:
        """Logical indices of the templates still held, oldest first."""
        return [t.index for t in self._held]

    @property
    def newest(self) -> StoredTemplate:
        """The template added last; the forward puts it in the last slot."""
        return self._held[-1]

    def add(self, embedding: Any) -> StoredTemplate:
        """Store a new template (it becomes the newest) and shrink the memory."""
        self._before_add = (list(self._held), self.num_added)
        entry = StoredTemplate(index=self.num_added, embedding=embedding)
        self._held.append(entry)
        self.num_added += 1
        self._free_unreachable()
        if self.cap is not None:
            self._held = _thinned(self._held, self.cap)
        return entry

    def confirm_newest(self) -> None:
        """The latest `add` is complete (its embedding exists): forget what undoing it needed,
        so that the templates it freed are freed at once."""
        self._before_add = None

    def discard_newest(self) -> None:
        """Undo the latest `add` whole, whose embedding could not be made: the templates it freed
        or thinned come back too, since the schedule without the new one may pick them again."""
        if self._before_add is None:
            raise RuntimeError("discard_newest() without an add() to undo")
        self._held, self.num_added = self._before_add
        self._before_add = None

    def select(self) -> list[StoredTemplate]:
        """The held template for each slot, for the next forward."""
        targets = schedule_slots(self.num_added, self.num_slots)
        return [self._at_or_after(t) for t in targets]

    def record_newest_keep(self, keep: Any) -> None:
        """Attach the prune mask of a forward to the newest template, once."""
        if self._held and self._held[-1].keep is None:
            self._held[-1].keep = keep

    def _free_unreachable(self) -> None:
        lowest = first_future_pick(self.num_added, self.num_slots)
        if len(self._held) > 2 and self._held[1].index < lowest:
            self._held = [self._held[0]] + [t for t in self._held[1:] if t.index >= lowest]

    def _at_or_after(self, target: int) -> StoredTemplate:
        # the newest is always held and target <= newest; few entries, so a plain scan
        return next(t for t in self._held if t.index >= target)


def _thinned(held: list[StoredTemplate], cap: int) -> list[StoredTemplate]:
    """``held`` (sorted by index) cut to ``cap`` entries by the thinning rule above; a new list
    when anything is cut, ``held`` itself otherwise."""
    if len(held) <= cap:
        return held
    held = list(held)
    while len(held) > cap:
        idx = [t.index for t in held]
        # interior positions only: never the init template (0) nor the newest (-1)
        best = min(range(1, len(idx) - 1), key=lambda i: (idx[i + 1] - idx[i - 1], idx[i]))
        del held[best]
    return held
