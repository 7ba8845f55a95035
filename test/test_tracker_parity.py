"""Replaying the official tracker trace: same crops, slots, token masks and boxes in all 39 frames."""

from __future__ import annotations

import numpy as np
import pytest

from fartrack_ros.tracker import Tracker, TrackerConfig
from fartrack_ros.tracker.cropping import sample_target
from tracker_helpers import DEVICES, TRACE_PATH, official_model_on, one_torch_thread  # noqa: F401

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not TRACE_PATH.is_file(), reason="official fixtures are not beside the repo")]
BOX_TOLERANCE_PX = 1e-3


@pytest.fixture(scope="module")
def trace() -> dict:
    return dict(np.load(TRACE_PATH))


@pytest.fixture(scope="module", params=DEVICES)
def official_model(request):
    return official_model_on(request.param)


def _replay(model, trace, config: TrackerConfig, check_inputs: bool) -> float:
    """Track the trace video; assert what each forward is given; return the largest box error."""
    tracker = Tracker(model, config)
    target = tracker.add_target(trace["frames"][0], [float(v) for v in trace["init_box"]])
    largest = 0.0
    for f in range(1, 40):
        i = f - 1
        if check_inputs:
            snap = tracker.inspect_target(target)
            np.testing.assert_allclose(snap.search_box_xywh, trace["prev_state"][i], atol=BOX_TOLERANCE_PX, rtol=0)
            patch, geom = sample_target(trace["frames"][f], snap.search_box_xywh, 4.0, 224)
            assert (geom.crop_sz, geom.x1, geom.y1) == (trace["search_crop_sz"][i], *trace["search_crop_x1y1"][i])
            assert int(patch.astype(np.int64).sum()) == trace["search_patch_sum"][i]
            assert list(snap.slot_indices) == list(trace["slots"][i])
            np.testing.assert_array_equal(snap.template_keep, trace["token_keep"][i, :245])
            held = snap.held_indices
            assert len(held) == len(set(held)) and set(trace["slots"][i]) <= set(held)
        (result,) = tracker.track(trace["frames"][f])
        error = float(np.abs(np.array(result.box_xywh) - trace["pred_boxes"][f]).max())
        largest = max(largest, error)
    if check_inputs:  # the templates stored after each frame were cropped at the official boxes
        for k in range(1, 40):
            patch, geom = sample_target(trace["frames"][k], trace["pred_boxes"][k], 2.0, 112)
            assert (geom.crop_sz, geom.x1, geom.y1) == (trace["template_crop_sz"][k], *trace["template_crop_x1y1"][k])
            assert int(patch.astype(np.int64).sum()) == trace["template_patch_sum"][k]
    return largest


@pytest.mark.parametrize("drop_pruned", [False, True], ids=["official-arithmetic", "fast-path"])
def test_official_memory_mode_replays_the_official_tracker(official_model, trace, drop_pruned):
    config = TrackerConfig(memory="official", drop_pruned=drop_pruned)
    largest = _replay(official_model, trace, config, check_inputs=True)
    print(f"official mode, drop_pruned={drop_pruned}: largest box deviation over 39 frames {largest:.3g} px")
    assert largest < BOX_TOLERANCE_PX


def test_fast_path_with_pruned_tokens_dropped_gives_the_same_boxes(official_model, trace):
    # bounded mode with no gate (threshold 0) and a cap the trace never reaches behaves like the
    # official tracker, but runs the drop-pruned-tokens fast path
    config = TrackerConfig(memory="bounded", lost_threshold=0.0, template_memory_cap=64)
    largest = _replay(official_model, trace, config, check_inputs=False)
    print(f"fast path: largest box deviation over 39 frames {largest:.3g} px")
    assert largest < BOX_TOLERANCE_PX
