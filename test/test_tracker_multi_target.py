"""All targets go through one batched forward, with the same results as tracking each alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fartrack_ros.tracker import Tracker, TrackerConfig
from tracker_helpers import RecordingModel, moving_target_video, one_torch_thread, random_model  # noqa: F401

# (first frame, init box) of three targets; later starts give ragged kept-token counts per batch
STARTS = {"a": (0, (20.0, 30.0, 32.0, 28.0)), "b": (2, (90.0, 60.0, 24.0, 30.0)),
          "c": (3, (5.0, 80.0, 40.0, 30.0))}
NUM_FRAMES = 12


@pytest.mark.parametrize("memory", ["bounded", "official"])
def test_batched_targets_match_each_target_tracked_alone(memory):
    network = random_model(seed=1)
    config = TrackerConfig(memory=memory, lost_threshold=0.0, template_memory_cap=6)
    frames, _ = moving_target_video(NUM_FRAMES)

    spy = RecordingModel(network)
    together = Tracker(spy, config)
    batched = {tid: [] for tid in STARTS}
    batched_logits = {tid: [] for tid in STARTS}
    kept_counts = set()
    for f, frame in enumerate(frames):
        ids = together.target_ids
        kept_counts.add(tuple(int(together.inspect_target(t).template_keep.sum()) for t in ids))
        for row, result in enumerate(together.track(frame)):
            batched[result.target_id].append(result)
            batched_logits[result.target_id].append(spy.logits[-1][row])
        for tid, (start, box) in STARTS.items():
            if f == start:
                together.add_target(frame, box, target_id=tid)
    assert any(len(set(counts)) > 1 for counts in kept_counts)  # a ragged batch happened

    for tid, (start, box) in STARTS.items():
        solo_spy = RecordingModel(network)
        alone = Tracker(solo_spy, config)
        alone.add_target(frames[start], box, target_id=tid)
        solo = [alone.track(frame)[0] for frame in frames[start + 1:]]
        assert len(solo) == len(batched[tid])
        for logits_solo, logits_batch in zip(solo_spy.logits, batched_logits[tid]):
            torch.testing.assert_close(logits_batch, logits_solo[0], atol=1e-4, rtol=0)
        for r_solo, r_batch in zip(solo, batched[tid]):
            np.testing.assert_allclose(r_batch.box_xywh, r_solo.box_xywh, atol=1e-3, rtol=0)
            assert r_batch.score == pytest.approx(r_solo.score, abs=1e-5)
            assert (r_batch.state, r_batch.templates_held) == (r_solo.state, r_solo.templates_held)
        snap_solo, snap_batch = alone.inspect_target(tid), together.inspect_target(tid)
        assert snap_batch.held_indices == snap_solo.held_indices
        np.testing.assert_array_equal(snap_batch.template_keep, snap_solo.template_keep)
