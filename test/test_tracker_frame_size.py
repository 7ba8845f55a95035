"""A camera that switches its resolution mid-track: the targets' boxes follow to the new size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fartrack_ros.data.synthetic import SyntheticConfig, generate_sequence
from fartrack_ros.model import DEFAULT_WEIGHTS_PATH, load_checkpoint
from fartrack_ros.tracker import Tracker
from tracker_helpers import iou_xywh, one_torch_thread  # noqa: F401

SEED = 1_000_006  # held-out range
SWITCH_AT = 12


def _switching_sequence(scale: float):
    """A held-out 320x240 sequence whose frames from SWITCH_AT on are resized by ``scale`` (as a
    camera switching resolution, same field of view); (frames, ground-truth boxes)."""
    config = SyntheticConfig(width=320, height=240, min_length=30, max_length=30, difficulty=0.1)
    sequence = generate_sequence(SEED, config)
    frames, boxes = list(sequence.frames), [tuple(map(float, b)) for b in sequence.boxes]
    size = (round(320 * scale), round(240 * scale))
    for k in range(SWITCH_AT, len(frames)):
        frames[k] = cv2.resize(frames[k], size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        boxes[k] = tuple(v * s for v, s in zip(boxes[k], (size[0] / 320, size[1] / 240) * 2))
    return frames, boxes


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_WEIGHTS_PATH.is_file(), reason="the bundled default model is not trained yet")
@pytest.mark.parametrize("scale", [2.0, 0.5])  # mean IoU after the switch here: 0.88 either way
def test_boxes_follow_a_change_of_frame_size(scale):
    frames, boxes = _switching_sequence(scale)
    tracker = Tracker(load_checkpoint(None))
    tracker.add_target(frames[0], boxes[0], "t")

    results = [tracker.track(frame)[0] for frame in frames[1:]]

    after = [iou_xywh(r.box_xywh, boxes[k]) for k, r in enumerate(results, start=1) if k >= SWITCH_AT]
    assert np.mean(after) >= 0.7, f"IoU per frame after the switch: {np.round(after, 2).tolist()}"


@pytest.mark.parametrize("new_hw, expected", [
    ((240, 320), (80.0, 60.0, 40.0, 20.0)),  # twice the size: the box doubles
    ((60, 40), (10.0, 15.0, 5.0, 5.0)),  # another aspect ratio: x and y scale apart
])
def test_the_search_is_centred_on_the_box_scaled_to_the_new_frame_size(monkeypatch, new_hw, expected):
    import fartrack_ros.tracker.tracker as tracker_module
    from tracker_helpers import MICRO_CONFIG, random_model

    sample_target = tracker_module.sample_target
    searched = []

    def recording_sample_target(frame, box, factor, size):
        if size == MICRO_CONFIG.search_size:
            searched.append((frame.shape[:2], tuple(box)))
        return sample_target(frame, box, factor, size)

    monkeypatch.setattr(tracker_module, "sample_target", recording_sample_target)
    tracker = Tracker(random_model(MICRO_CONFIG))
    tracker.add_target(np.zeros((120, 160, 3), np.uint8), (40.0, 30.0, 20.0, 10.0), "t")

    tracker.track(np.zeros((*new_hw, 3), np.uint8))

    assert searched == [(new_hw, pytest.approx(expected))]
    assert tracker.last_rescaled == {"t": (120, 160)}
    tracker.track(np.zeros((*new_hw, 3), np.uint8))
    assert tracker.last_rescaled == {}


def test_a_target_started_on_the_new_size_is_not_rescaled():
    from tracker_helpers import MICRO_CONFIG, random_model

    tracker = Tracker(random_model(MICRO_CONFIG))
    tracker.add_target(np.zeros((120, 160, 3), np.uint8), (40.0, 30.0, 20.0, 10.0), "old")
    tracker.track(np.zeros((120, 160, 3), np.uint8))
    tracker.reset()
    tracker.add_target(np.zeros((240, 320, 3), np.uint8), (40.0, 30.0, 20.0, 10.0), "new")

    tracker.track(np.zeros((240, 320, 3), np.uint8))

    assert tracker.last_rescaled == {}


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_WEIGHTS_PATH.is_file(), reason="the bundled default model is not trained yet")
@pytest.mark.parametrize("glitch_hw", [(2, 2), (3000, 2)])
def test_one_glitched_frame_of_another_size_does_not_take_the_target_with_it(glitch_hw):
    """A single broken frame (a driver glitch) gets an unconfident box; the frames after it are
    searched around the last confident box, not around that box scaled back up."""
    config = SyntheticConfig(width=320, height=240, min_length=30, max_length=30, difficulty=0.1)
    sequence = generate_sequence(SEED, config)
    tracker = Tracker(load_checkpoint(None))
    tracker.add_target(sequence.frames[0], sequence.boxes[0], "t")
    for frame in sequence.frames[1:SWITCH_AT]:
        tracker.track(frame)

    glitch = np.zeros((*glitch_hw, 3), np.uint8)
    assert tracker.track(glitch)[0].score < tracker.config.lost_threshold
    after = [iou_xywh(tracker.track(sequence.frames[k])[0].box_xywh, sequence.boxes[k])
             for k in range(SWITCH_AT, SWITCH_AT + 4)]

    assert min(after) >= 0.5, f"IoU per frame after the glitch: {np.round(after, 2).tolist()}"


@pytest.mark.parametrize("frames_at_size, expected", [
    (1, [240.0, 200.0, 40.0, 40.0]),  # one unconfident frame of that size: a glitch, back to confident
    (8, [400.0, 200.0, 40.0, 40.0]),  # a camera that switched resolution: the followed box, scaled
])
def test_after_unconfident_frames_the_search_returns_only_from_a_one_frame_size(frames_at_size, expected):
    from fartrack_ros.tracker.tracker import TrackState, _rescale, _Target

    target = _Target("a", state_xywh=[200.0, 100.0, 20.0, 20.0], memory=None,
                     last_confident_xywh=[120.0, 100.0, 20.0, 20.0], frame_hw=(240, 320),
                     frames_below=1, frames_at_size=frames_at_size, status=TrackState.TRACKING)

    _rescale(target, (480, 640))

    assert target.state_xywh == expected
    assert target.last_confident_xywh == [240.0, 200.0, 40.0, 40.0]
