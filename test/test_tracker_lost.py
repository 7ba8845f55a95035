"""Confidence, the LOST state and re-acquisition; the memory bound over a long run."""

from __future__ import annotations

import gc

import pytest
import torch

from fartrack_ros.model import DEFAULT_WEIGHTS_PATH, load_checkpoint
from fartrack_ros.tracker import Tracker, TrackerConfig, TrackState
from tracker_helpers import (MICRO_CONFIG, ScriptedScoreModel, iou_xywh, leave_and_return_video,  # noqa: F401
                             moving_target_video, one_torch_thread, random_model)

HIGH, LOW = 0.9, 0.01
INIT_BOX = (40.0, 40.0, 30.0, 30.0)


def _run_scripted(scores, memory="bounded"):
    model = ScriptedScoreModel(random_model(MICRO_CONFIG), scores)
    tracker = Tracker(model, TrackerConfig(memory=memory, lost_threshold=0.5, lost_frames=3))
    frames, _ = moving_target_video(len(scores) + 1, velocity=(0.0, 0.0))
    tid = tracker.add_target(frames[0], INIT_BOX)
    steps = []
    for frame in frames[1:]:
        (result,) = tracker.track(frame)
        steps.append((result, tracker.inspect_target(tid)))
    return steps


def test_target_is_lost_after_lost_frames_low_scores_and_tracked_again_when_score_recovers():
    steps = _run_scripted([HIGH] * 3 + [LOW] * 5 + [HIGH] * 2)
    states = [r.state for r, _ in steps]
    assert states == [TrackState.TRACKING] * 5 + [TrackState.LOST] * 3 + [TrackState.TRACKING] * 2
    assert [r.score for r, _ in steps] == pytest.approx([HIGH] * 3 + [LOW] * 5 + [HIGH] * 2, abs=1e-4)


def test_a_lost_target_waking_up_on_the_box_another_target_tracks_stays_lost():
    """Two ids on one object: 'b' goes LOST while 'a' tracks; when 'b' is confident again on the
    box 'a' holds it stays LOST (one object reported twice otherwise), and once 'a' is gone it
    is found again there. 'c', far away, recovers at once."""
    scores = [(HIGH, LOW, LOW)] * 3 + [(HIGH, HIGH, HIGH)] * 2 + [(HIGH, HIGH)]
    model = ScriptedScoreModel(random_model(MICRO_CONFIG), scores)
    tracker = Tracker(model, TrackerConfig(lost_threshold=0.5, lost_frames=3))
    frames, _ = moving_target_video(len(scores) + 1, velocity=(0.0, 0.0))
    tracker.add_target(frames[0], INIT_BOX, "a")
    tracker.add_target(frames[0], INIT_BOX, "b")  # the same object
    tracker.add_target(frames[0], (4.0, 4.0, 16.0, 16.0), "c")  # another one

    states = []
    for index, frame in enumerate(frames[1:]):
        if index == len(scores) - 1:
            tracker.remove_target("a")
        states.append({r.target_id: r.state for r in tracker.track(frame)})

    assert [s["b"] for s in states] == [TrackState.TRACKING] * 2 + [TrackState.LOST] * 3 + [TrackState.TRACKING]
    assert [s["c"] for s in states[2:5]] == [TrackState.LOST, TrackState.TRACKING, TrackState.TRACKING]
    assert all(s["a"] == TrackState.TRACKING for s in states[:-1])


def test_a_lost_target_held_off_another_target_s_box_follows_it_and_is_found_once_they_part(monkeypatch):
    """Two overlapping objects walk together; B is occluded for 3 frames (LOST), then found each
    frame on a box over A's: it stays LOST but its search follows, so when B walks off on its own
    (frame 15) it is found there, not left where it was last confident."""
    from fartrack_ros.tracker import tracker as tracker_module

    def truth(frame):  # A and B 40 px wide, B 10 px right of A (IoU 0.6), 8 px per frame
        ax = 20.0 + 8 * frame
        bx = ax + 10 if frame < 15 else ax + 10 + 12 * (frame - 14)
        return [ax, 100.0, 40.0, 40.0], [bx, 100.0, 40.0, 40.0]

    now = {"frame": 0, "row": 0}

    def predicted(box_px, state, size, factor):
        """The object's true box when its centre lies in the search crop around ``state`` (factor
        4: two box widths each way), else the crop's centre box: the network sees only the crop."""
        box = truth(now["frame"])[now["row"] % 2]
        now["row"] += 1
        reachable = abs((box[0] + box[2] / 2) - (state[0] + state[2] / 2)) < 2 * state[2]
        return list(box) if reachable else list(state)

    monkeypatch.setattr(tracker_module, "map_box_back", predicted)
    monkeypatch.setattr(tracker_module, "box_confidence", lambda logits, cfg: torch.tensor(
        [0.9, 0.2 if 3 <= now["frame"] < 6 else 0.9]))
    tracker = Tracker(random_model(MICRO_CONFIG), TrackerConfig(lost_threshold=0.5, lost_frames=3))
    frames, _ = moving_target_video(25, height=240, width=480, velocity=(0.0, 0.0))
    tracker.add_target(frames[0], tuple(truth(0)[0]), "A")
    tracker.add_target(frames[0], tuple(truth(0)[1]), "B")
    states = {}
    for frame in range(1, 25):
        now["frame"], now["row"] = frame, 0
        states[frame] = {r.target_id: r for r in tracker.track(frames[frame])}

    assert all(states[f]["B"].state == TrackState.LOST for f in range(5, 15))
    assert states[10]["B"].box_xywh == pytest.approx(truth(2)[1])  # reported as last seen well
    assert tracker.inspect_target("B").search_box_xywh != truth(2)[1]
    found = [f for f in range(15, 25) if states[f]["B"].state == TrackState.TRACKING]
    assert found and found[0] <= 17, {f: states[f]["B"].state for f in states}
    assert states[24]["B"].box_xywh == pytest.approx(truth(24)[1])
    assert all(states[f]["A"].state == TrackState.TRACKING for f in states)


def test_lost_target_reports_and_searches_around_its_last_confident_box():
    steps = _run_scripted([HIGH] * 3 + [LOW] * 5 + [HIGH])
    last_confident = steps[2][0].box_xywh
    for result, snap in steps[5:8]:  # LOST
        assert result.box_xywh == last_confident
        assert snap.search_box_xywh == last_confident
    assert steps[3][0].box_xywh != last_confident  # before LOST it still follows the predictions


def test_only_confident_frames_add_templates_in_bounded_mode():
    steps = _run_scripted([HIGH] * 3 + [LOW] * 5 + [HIGH] * 2)
    newest = [snap.held_indices[-1] for _, snap in steps]
    assert newest == [1, 2, 3, 3, 3, 3, 3, 3, 4, 5]


def test_official_mode_adds_a_template_every_frame_and_follows_every_prediction():
    steps = _run_scripted([HIGH] * 2 + [LOW] * 5, memory="official")
    assert [snap.held_indices[-1] for _, snap in steps] == [1, 2, 3, 4, 5, 6, 7]
    assert steps[-1][0].state == TrackState.LOST  # still reported
    for result, snap in steps:
        assert snap.search_box_xywh == result.box_xywh


@pytest.mark.slow
def test_memory_stays_bounded_over_5000_frames():
    cap = 8
    tracker = Tracker(random_model(MICRO_CONFIG), TrackerConfig(lost_threshold=0.0, template_memory_cap=cap))
    frames, _ = moving_target_video(2, height=48, width=64, start=(20.0, 20.0), size=(8.0, 8.0),
                                    velocity=(1.0, 0.0))
    tid = tracker.add_target(frames[0], (20.0, 20.0, 8.0, 8.0))
    live_tensors = {}
    for f in range(1, 5001):
        (result,) = tracker.track(frames[f % 2])
        assert result.templates_held <= cap
        if f in (500, 5000):
            gc.collect()
            live_tensors[f] = sum(type(o) is torch.Tensor for o in gc.get_objects())
    snap = tracker.inspect_target(tid)
    assert snap.held_indices[0] == 0 and snap.held_indices[-1] == 5000
    assert live_tensors[5000] <= live_tensors[500]  # nothing accumulates per frame


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_WEIGHTS_PATH.is_file(), reason="the bundled default model is not trained yet")
def test_target_leaving_the_view_is_lost_and_found_again_when_it_returns():
    tracker = Tracker(load_checkpoint(None))
    frames, boxes, visible = leave_and_return_video()
    tracker.add_target(frames[0], boxes[0])
    results = [tracker.track(frame)[0] for frame in frames[1:]]
    out_of_view = [r for r, v in zip(results, visible[1:]) if not v]
    assert any(r.state == TrackState.LOST for r in out_of_view)
    first_back = visible.index(False) + visible[visible.index(False):].index(True)
    settled = range(first_back + 10, len(frames))
    assert all(results[f - 1].state == TrackState.TRACKING for f in settled)
    assert min(iou_xywh(results[f - 1].box_xywh, boxes[f]) for f in settled) > 0.5
