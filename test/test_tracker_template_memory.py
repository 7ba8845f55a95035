"""The template schedule, its prune masks and the bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from fartrack_ros.tracker.template_memory import TemplateMemory, first_future_pick, schedule_slots
from tracker_helpers import TRACE_PATH

needs_trace = pytest.mark.skipif(not TRACE_PATH.is_file(), reason="official fixtures are not beside the repo")


def _memory_after(num_added: int, cap) -> TemplateMemory:
    memory = TemplateMemory(num_slots=5, cap=cap)
    for k in range(num_added):
        memory.add(embedding=k)
    return memory


def test_schedule_fill_rule_below_five_templates():
    assert schedule_slots(1) == [0, 0, 0, 0, 0]
    assert schedule_slots(2) == [0, 0, 0, 0, 1]
    assert schedule_slots(3) == [0, 0, 0, 1, 2]
    assert schedule_slots(4) == [0, 0, 1, 2, 3]


def test_schedule_exponential_picks_from_five_templates():
    assert schedule_slots(5) == [0, 1, 2, 2, 4]
    assert schedule_slots(11) == [0, 3, 5, 6, 10]
    assert schedule_slots(39) == [0, 11, 19, 24, 38]


def test_schedule_generalises_to_other_slot_counts():
    assert schedule_slots(10, num_slots=2) == [0, 9]
    assert schedule_slots(10, num_slots=3) == [0, 2, 9]
    assert schedule_slots(2, num_slots=3) == [0, 0, 1]


@needs_trace
def test_slots_and_token_keep_replay_the_official_trace():
    trace = np.load(TRACE_PATH)
    memory = TemplateMemory(num_slots=5, cap=None)
    memory.add(embedding=0)
    for i in range(39):
        picked = memory.select()
        assert [t.index for t in picked] == list(trace["slots"][i])
        keep = np.concatenate([np.ones(49, bool) if t.keep is None else t.keep for t in picked])
        np.testing.assert_array_equal(keep, trace["token_keep"][i, :245])
        assert trace["token_keep"][i, 245:].all()
        memory.record_newest_keep(trace["prune_keep"][i, 0])
        memory.add(embedding=i + 1)


def test_newest_template_keeps_its_first_prune_mask():
    memory = _memory_after(1, cap=None)
    memory.record_newest_keep("first")
    memory.record_newest_keep("second")
    assert memory.newest.keep == "first"


def test_official_memory_frees_only_templates_no_slot_can_pick_again():
    memory = _memory_after(100, cap=None)
    lowest = first_future_pick(100)
    assert memory.held_indices == [0, *range(lowest, 100)]
    for n in range(100, 400):  # every later pick is held (or 0)
        assert all(k == 0 or k >= lowest for k in schedule_slots(n))


def test_picks_equal_the_official_schedule_while_under_the_cap():
    cap = 16
    memory = TemplateMemory(num_slots=5, cap=cap)
    memory.add(embedding=0)
    official = TemplateMemory(num_slots=5, cap=None)
    official.add(embedding=0)
    while len(official) < cap:  # the unbounded memory would still fit
        assert [t.index for t in memory.select()] == schedule_slots(memory.num_added)
        memory.add(embedding=memory.num_added)
        official.add(embedding=official.num_added)
    assert memory.num_added >= 20


@pytest.mark.parametrize("cap", [5, 8, 64])
def test_memory_stays_bounded_over_5000_templates(cap):
    memory = TemplateMemory(num_slots=5, cap=cap)
    memory.add(embedding=0)
    previous = [0] * 5
    for _ in range(5000):
        picks = [t.index for t in memory.select()]
        targets = schedule_slots(memory.num_added)
        n = memory.num_added
        assert len(memory) <= cap
        assert picks[0] == 0 and picks[-1] == n - 1
        assert picks == sorted(picks)
        assert all(p >= q for p, q in zip(picks, previous))  # picks never move back in time
        assert all(0 <= p - t <= 2 * n / cap for p, t in zip(picks, targets))
        previous = picks
        memory.add(embedding=n)
    assert memory.num_added == 5001
    assert memory.held_indices[0] == 0 and memory.held_indices[-1] == 5000


@pytest.mark.parametrize("cap", [5, 8, None])
def test_discarding_the_newest_undoes_its_add_whole(cap):
    for n in range(1, 200):
        memory = _memory_after(n, cap)
        held, picks = memory.held_indices, [t.index for t in memory.select()]
        memory.add(embedding=None)
        memory.discard_newest()
        assert memory.num_added == n and memory.held_indices == held
        assert [t.index for t in memory.select()] == picks


def test_cap_below_the_slot_count_is_rejected():
    with pytest.raises(ValueError, match="template_memory_cap"):
        TemplateMemory(num_slots=5, cap=3)


def test_a_confirmed_add_frees_what_it_dropped_at_once():
    import gc
    import weakref

    class Embedding:
        pass

    memory = TemplateMemory(num_slots=5, cap=5)
    embeddings = [Embedding() for _ in range(12)]
    refs = [weakref.ref(e) for e in embeddings]
    for embedding in embeddings:
        memory.add(embedding)
        memory.confirm_newest()
    del embeddings, embedding
    gc.collect()
    assert sum(ref() is not None for ref in refs) == len(memory) == 5


def test_a_lower_cap_set_between_add_and_discard_is_kept():
    memory = _memory_after(12, cap=None)
    memory.add(embedding=None)
    memory.set_cap(5)
    memory.discard_newest()
    assert len(memory) <= 5 and memory.num_added == 12
    assert [t.index for t in memory.select()][-1] == 11
