"""The Tracker API: ids, removal, limits, input validation, results and timings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fartrack_ros.tracker import TargetLimitError, Tracker, TrackerConfig, TrackResult, TrackState
from tracker_helpers import MICRO_CONFIG, moving_target_video, one_torch_thread, random_model  # noqa: F401

BOX = (20.0, 30.0, 32.0, 28.0)


@pytest.fixture(scope="module")
def model():
    return random_model(MICRO_CONFIG)


@pytest.fixture(scope="module")
def frame():
    return moving_target_video(1)[0][0]  # 120 x 160


def test_ids_are_generated_when_not_given_and_kept_when_given(model, frame):
    tracker = Tracker(model)
    assert tracker.add_target(frame, BOX) == "1"
    assert tracker.add_target(frame, BOX, target_id="car") == "car"
    assert tracker.add_target(frame, BOX) == "2"
    assert tracker.target_ids == ["1", "car", "2"]


def test_adding_an_existing_id_reinitialises_that_target(model, frame):
    tracker = Tracker(model)
    tracker.add_target(frame, BOX, target_id="car")
    tracker.track(frame)
    tracker.add_target(frame, (50.0, 50.0, 20.0, 20.0), target_id="car")
    snap = tracker.inspect_target("car")
    assert tracker.target_ids == ["car"]
    assert snap.search_box_xywh == (50.0, 50.0, 20.0, 20.0) and snap.held_indices == (0,)


def test_track_returns_one_result_per_target_with_all_fields(model, frame):
    tracker = Tracker(model, TrackerConfig(lost_threshold=0.0))
    tracker.add_target(frame, BOX, target_id="a")
    tracker.add_target(frame, BOX, target_id="b")
    results = tracker.track(frame)
    assert [r.target_id for r in results] == ["a", "b"]
    for r in results:
        assert isinstance(r, TrackResult) and len(r.box_xywh) == 4
        assert 0.0 <= r.score <= 1.0 and r.state == TrackState.TRACKING and r.templates_held == 2
    assert set(tracker.last_timings_ms) == {"crop", "model", "decode"}
    assert all(v >= 0.0 for v in tracker.last_timings_ms.values())


def test_removed_and_reset_targets_are_no_longer_tracked(model, frame):
    tracker = Tracker(model)
    tracker.add_target(frame, BOX, target_id="a")
    tracker.add_target(frame, BOX, target_id="b")
    tracker.remove_target("a")
    assert [r.target_id for r in tracker.track(frame)] == ["b"]
    tracker.reset()
    assert tracker.track(frame) == []


def test_track_can_be_limited_to_some_targets(model):
    frames, _ = moving_target_video(3)
    tracker = Tracker(model, TrackerConfig(lost_threshold=0.0))
    tracker.add_target(frames[0], BOX, target_id="a")
    tracker.add_target(frames[0], (60.0, 40.0, 30.0, 30.0), target_id="b")
    a_before = tracker.inspect_target("a")

    results = tracker.track(frames[1], target_ids=["b", "unknown"])

    assert [r.target_id for r in results] == ["b"]
    a_after = tracker.inspect_target("a")  # untouched: no new box, no new template
    assert (a_after.search_box_xywh, a_after.held_indices) == (a_before.search_box_xywh, a_before.held_indices)
    assert tracker.inspect_target("b").held_indices == (0, 1)
    assert [r.target_id for r in tracker.track(frames[2])] == ["a", "b"]


def test_warm_up_leaves_the_targets_as_they_were(model, frame):
    tracker = Tracker(model)
    tracker.add_target(frame, BOX, target_id="a")
    before = tracker.inspect_target("a")

    tracker.warm_up()
    tracker.add_target(frame, BOX, target_id="__warmup__")  # a user's id like the warm-up's own
    tracker.warm_up()

    assert tracker.target_ids == ["a", "__warmup__"]
    after = tracker.inspect_target("a")
    assert (after.search_box_xywh, after.held_indices) == (before.search_box_xywh, before.held_indices)


def test_warm_up_tracks_one_then_two_targets_where_there_is_room(model, frame, monkeypatch):
    from fartrack_ros.tracker import TrackerConfig

    for max_targets, expected in ((4, [1, 2]), (1, [1])):
        tracker = Tracker(model, TrackerConfig(max_targets=max_targets))
        batches, track = [], tracker.track
        monkeypatch.setattr(tracker, "track", lambda frame, target_ids=None, **kw: (
            batches.append(len(target_ids)), track(frame, target_ids=target_ids, **kw))[1])
        tracker.warm_up()
        assert batches == expected and tracker.target_ids == []


def test_removing_an_unknown_target_names_the_known_ones(model, frame):
    tracker = Tracker(model)
    tracker.add_target(frame, BOX, target_id="a")
    with pytest.raises(KeyError, match="'zz'.*'a'"):
        tracker.remove_target("zz")


def test_targets_beyond_max_targets_are_refused(model, frame):
    tracker = Tracker(model, TrackerConfig(max_targets=2))
    tracker.add_target(frame, BOX)
    tracker.add_target(frame, BOX)
    with pytest.raises(TargetLimitError, match="cannot add a new target: 2 targets are tracked, max_targets is 2"):
        tracker.add_target(frame, BOX)
    tracker.add_target(frame, BOX, target_id="1")  # re-initialising is not a new target
    tracker.remove_target("2")
    assert tracker.add_target(frame, BOX) == "3"  # the refused one used up no id


@pytest.mark.parametrize("box, message", [
    ((10.0, 10.0, float("nan"), 5.0), "non-finite"),
    ((10.0, 10.0, float("inf"), 5.0), "non-finite"),
    ((10.0, 10.0, 0.0, 5.0), "w=0.0"),
    ((10.0, 10.0, 5.0, -3.0), "h=-3.0"),
    ((500.0, 10.0, 20.0, 20.0), "outside the 160x120 image"),
    ((-30.0, -30.0, 20.0, 20.0), "outside"),
    ((0.2, 0.3, 0.1, 0.12), "0.1x0.12 is under a pixel: boxes are in pixels"),
    ((10.0, 10.0, 30.0, 0.5), "30x0.5 is under a pixel"),
    ((159.5, 10.0, 20.0, 20.0), "under a pixel inside the 160x120 image"),
    ((1.0, 2.0, 3.0), "4 numbers"),
    ("abcd", "4 numbers"),
])
def test_unusable_init_boxes_are_rejected_with_their_value(model, frame, box, message):
    with pytest.raises(ValueError, match=message):
        Tracker(model).add_target(frame, box)


@pytest.mark.parametrize("bad_frame", [
    np.zeros((120, 160, 3), np.float32),
    np.zeros((120, 160), np.uint8),
    np.zeros((120, 160, 4), np.uint8),
    [[0, 0, 0]],
])
def test_frames_that_are_not_hxwx3_uint8_are_rejected(model, frame, bad_frame):
    """(and say how to convert the usual ones)"""
    tracker = Tracker(model)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        tracker.add_target(bad_frame, BOX)
    tracker.add_target(frame, BOX)
    with pytest.raises(ValueError, match="HxWx3 uint8") as refused:
        tracker.track(bad_frame)
    hint = {np.float32: "floats in 0..1: ", 2: "grey: cv2.cvtColor", 4: "RGBA: frame[..., :3]"}
    if isinstance(bad_frame, np.ndarray):
        key = bad_frame.dtype.type if bad_frame.dtype != np.uint8 else bad_frame.ndim if bad_frame.ndim == 2 else 4
        assert hint[key] in str(refused.value), refused.value


def test_box_partly_outside_is_clipped_to_the_image(model, frame):
    tracker = Tracker(model)
    tid = tracker.add_target(frame, (-10.0, 100.0, 30.0, 40.0))
    assert tracker.inspect_target(tid).search_box_xywh == (0.0, 100.0, 20.0, 20.0)


def test_box_covering_more_than_the_image_is_tracked(model, frame):
    tracker = Tracker(model)
    tid = tracker.add_target(frame, (-50.0, -50.0, 400.0, 300.0))
    assert tracker.inspect_target(tid).search_box_xywh == (0.0, 0.0, 160.0, 120.0)
    (result,) = tracker.track(frame)
    assert np.isfinite(result.box_xywh).all()


def test_one_pixel_box_is_tracked(model, frame):
    tracker = Tracker(model)
    tracker.add_target(frame, (80.0, 60.0, 1.0, 1.0))
    (result,) = tracker.track(frame)
    assert result.box_xywh[2] >= 10.0 and result.box_xywh[3] >= 10.0  # official 10 px minimum


def test_invalid_config_values_are_rejected():
    with pytest.raises(ValueError, match="memory must be one of"):
        TrackerConfig(memory="unbounded")
    with pytest.raises(ValueError, match="lost_frames"):
        TrackerConfig(lost_frames=0)
    with pytest.raises(ValueError, match="lost_frames must be an integer, got 1.5"):
        TrackerConfig(lost_frames=1.5)
    with pytest.raises(ValueError, match="max_targets must be an integer, got True"):
        TrackerConfig(max_targets=True)
    with pytest.raises(ValueError, match="template_memory_cap must be >= 2"):
        TrackerConfig(template_memory_cap=0)
    with pytest.raises(ValueError, match="lost_threshold must be a number, got '0.1'"):
        TrackerConfig(lost_threshold="0.1")
    with pytest.raises(ValueError, match="drop_pruned must be True or False, got 'no'"):
        TrackerConfig(drop_pruned="no")


def test_numpy_numbers_are_taken_as_the_numbers_they_are():
    config = TrackerConfig(template_memory_cap=np.int64(32), lost_frames=np.int32(3), lost_threshold=np.float32(0.25),
                           drop_pruned=np.bool_(False))
    assert (config.template_memory_cap, config.lost_frames, config.lost_threshold, config.drop_pruned) == (
        32, 3, 0.25, False)
    assert type(config.template_memory_cap) is int and type(config.drop_pruned) is bool


def test_a_tracker_given_a_path_instead_of_a_model_says_how_to_load_one():
    with pytest.raises(TypeError, match=r"Tracker needs a loaded model, e.g. Tracker\(load_checkpoint\(path\)\)"):
        Tracker("weights/default.pth")


def test_a_non_callable_on_results_is_refused_before_the_frame_changes_anything(model, frame):
    tracker = Tracker(model, TrackerConfig(lost_threshold=0.0))
    tracker.add_target(frame, BOX)
    before = tracker.inspect_target("1")
    with pytest.raises(TypeError, match="on_results must be callable"):
        tracker.track(frame, on_results=5)
    after = tracker.inspect_target("1")
    assert after.held_indices == before.held_indices and after.search_box_xywh == before.search_box_xywh


def test_one_tracker_called_from_two_threads_takes_turns(model):
    import threading

    frames, boxes = moving_target_video(12)
    tracker = Tracker(model, TrackerConfig(lost_threshold=0.0))
    tracker.add_target(frames[0], boxes[0])
    results, errors = [], []

    def follow():
        try:
            for image in frames[1:]:
                results.append(tracker.track(image))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=follow) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == [] and len(results) == 2 * (len(frames) - 1)
    assert all(len(r) == 1 and np.isfinite(r[0].box_xywh).all() for r in results)
    assert max(tracker.inspect_target("1").held_indices) == 2 * (len(frames) - 1)  # a template from every frame


def test_a_single_id_string_names_one_target(model, frame):
    tracker = Tracker(model, TrackerConfig(lost_threshold=0.0))
    for target_id in ("12", "1", "2"):
        tracker.add_target(frame, BOX, target_id=target_id)

    assert [r.target_id for r in tracker.track(frame, target_ids="12")] == ["12"]


def test_a_smaller_memory_cap_set_while_tracking_applies_from_the_next_frame(model, frame):
    tracker = Tracker(model, TrackerConfig(lost_threshold=0.0, template_memory_cap=64))
    tracker.add_target(frame, BOX)
    for _ in range(20):
        tracker.track(frame)
    tracker.config = dataclasses.replace(tracker.config, template_memory_cap=6)
    (result,) = tracker.track(frame)
    assert result.templates_held == 6


def test_a_memory_cap_below_the_template_slots_is_refused(model):
    with pytest.raises(ValueError, match="template_memory_cap must be >= the model's 5"):
        Tracker(model, TrackerConfig(template_memory_cap=4))


def test_on_results_gets_the_results_before_the_frame_s_templates_are_embedded(model):
    frames, _ = moving_target_video(8)
    plain, early = Tracker(model, TrackerConfig(lost_threshold=0.0)), Tracker(model, TrackerConfig(lost_threshold=0.0))
    embedded = []
    early.model = _CountingEmbeddings(model, embedded)
    for tracker in (plain, early):
        tracker.add_target(frames[0], BOX, target_id="a")
    for frame in frames[1:]:
        expected = plain.track(frame)
        seen = []
        before = len(embedded)
        returned = early.track(frame, on_results=lambda r: seen.append((r, len(embedded))))
        assert len(embedded) == before + 1  # this frame's template, embedded after the callback
        assert seen == [(returned, before)]
        assert returned == expected  # same boxes, scores, states and templates_held as without it


def test_an_exception_in_on_results_propagates_after_the_templates_are_stored(model):
    frames, _ = moving_target_video(4)
    tracker = Tracker(model, TrackerConfig(lost_threshold=0.0))
    tracker.add_target(frames[0], BOX, target_id="a")

    def fail(results):
        raise RuntimeError("publisher gone")

    with pytest.raises(RuntimeError, match="publisher gone"):
        tracker.track(frames[1], on_results=fail)
    (result,) = tracker.track(frames[2])
    assert result.templates_held == 3 and tracker.inspect_target("a").held_indices == (0, 1, 2)


def test_a_failed_template_embedding_leaves_a_full_memory_as_it_was(model, monkeypatch):
    """At the cap, adding a template thins the memory; a failed embedding undoes that too."""
    frames, _ = moving_target_video(16)
    tracker = Tracker(model, TrackerConfig(lost_threshold=0.0, template_memory_cap=5))
    tracker.add_target(frames[0], BOX, target_id="a")
    embed = tracker._embed_templates

    def out_of_memory(*args):
        raise MemoryError("no room for the template")

    for frame in frames[1:]:  # every frame fails once, then tracks
        before = tracker.inspect_target("a").held_indices
        monkeypatch.setattr(tracker, "_embed_templates", out_of_memory)
        with pytest.raises(MemoryError):
            tracker.track(frame)
        monkeypatch.setattr(tracker, "_embed_templates", embed)
        assert tracker.inspect_target("a").held_indices == before
        (result,) = tracker.track(frame)
        assert result.templates_held == len(tracker.inspect_target("a").held_indices) <= 5
    assert tracker.inspect_target("a").held_indices[-1] == 15


def test_a_template_that_cannot_be_embedded_is_not_left_in_the_memory(model, monkeypatch):
    frames, _ = moving_target_video(4)
    tracker = Tracker(model, TrackerConfig(lost_threshold=0.0))
    tracker.add_target(frames[0], BOX, target_id="a")
    tracker.track(frames[1])

    def out_of_memory(*args):
        raise MemoryError("no room for the template")

    monkeypatch.setattr(tracker, "_embed_templates", out_of_memory)
    with pytest.raises(MemoryError):
        tracker.track(frames[2])
    monkeypatch.undo()
    assert tracker.inspect_target("a").held_indices == (0, 1)
    (result,) = tracker.track(frames[3])  # the memory is whole: the next frame tracks
    assert result.templates_held == 3 and tracker.inspect_target("a").held_indices == (0, 1, 2)


class _CountingEmbeddings:
    """The model, with a record of each embed_template call."""

    def __init__(self, model, calls: list):
        self._model, self._calls = model, calls

    def embed_template(self, z):
        self._calls.append(z.shape[0])
        return self._model.embed_template(z)

    def __getattr__(self, name):
        return getattr(self._model, name)


def test_a_frames_stage_times_wait_for_its_template_embedding(model, frame, monkeypatch):
    """On CUDA the template embedding is queued asynchronously: the tracker waits for the device
    before reading the clock after the forward and after the template step, so neither time lands
    in the next frame's crop stage."""
    tracker = Tracker(model, TrackerConfig(lost_threshold=0.0))
    tracker.add_target(frame, (40, 40, 30, 30), "a")
    events = []
    monkeypatch.setattr(tracker, "_sync", lambda: events.append("sync"))
    embed = tracker.model.embed_template
    monkeypatch.setattr(tracker.model, "embed_template", lambda z: events.append("embed") or embed(z))

    tracker.track(frame)

    assert events == ["sync", "embed", "sync"]
