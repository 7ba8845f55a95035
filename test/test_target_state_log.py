"""Which LOST / found-again changes the node logs (pure Python)."""

from fartrack_ros.target_state_log import TargetStateLog
from fake_clock import FakeClock as Clock


def test_a_change_is_logged_once_and_a_steady_state_never():
    log = TargetStateLog(5.0, Clock())

    assert log.changes(["a", "b"], set()) == []  # new targets start TRACKING: nothing to say
    assert log.changes(["a", "b"], {"a"}) == [("a", True)]
    assert log.changes(["a", "b"], {"a"}) == []


def test_a_flapping_target_is_logged_at_most_every_period_and_catches_up_with_its_state():
    clock = Clock()
    log = TargetStateLog(5.0, clock)
    assert log.changes(["a"], {"a"}) == [("a", True)]

    said = []
    for frame in range(40):  # 4 s of a target flapping at 10 Hz, ending found
        clock.now += 0.1
        said += log.changes(["a"], {"a"} if frame % 2 == 0 and frame < 39 else set())
    assert said == []  # within 5 s of the LOST line

    clock.now += 1.5
    assert log.changes(["a"], set()) == [("a", False)]  # the log now says what holds
    assert log.changes(["a"], set()) == []


def test_a_restarted_target_starts_tracking_with_nothing_logged():
    clock = Clock()
    log = TargetStateLog(5.0, clock)
    log.changes(["a"], {"a"})

    log.forget("a")

    assert log.changes(["a"], set()) == []  # TRACKING, as a new target: no "found again"
    assert log.changes(["a"], {"a"}) == [("a", True)]  # not held back by the old line's time


def test_gone_targets_are_forgotten():
    log = TargetStateLog(5.0, Clock())
    log.changes(["a", "b"], {"a", "b"})

    log.keep_only(["b"])

    assert log.changes(["a"], set()) == []
    assert log.changes(["b"], set()) == []  # held back: b's LOST line was just said
