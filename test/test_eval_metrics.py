"""Metrics on hand-computed cases: IoU, centre error, GOT-10k AO/SR, OTB/LaSOT success and precision."""

import numpy as np
import pytest

from fartrack_ros.evaluation.metrics import (SUCCESS_THRESHOLDS, SequenceResult, centre_error, iou_xywh,
                                             score_results, success_curve)

BOX = [0.0, 0.0, 10.0, 10.0]


def result(pred, gt, absent=None, time_s=0.0, size=(100, 100)):
    gt = np.asarray(gt, float)
    absent = np.zeros(len(gt), bool) if absent is None else np.asarray(absent, bool)
    return SequenceResult("s", np.asarray(pred, float), gt, absent, size, time_s)


def test_iou_of_half_shifted_boxes_is_one_third():
    assert iou_xywh([BOX], [[5, 0, 10, 10]])[0] == pytest.approx(1 / 3)


def test_iou_is_one_for_equal_and_zero_for_disjoint_touching_or_empty_boxes():
    ious = iou_xywh([BOX, BOX, BOX, [0, 0, 0, 0]], [BOX, [20, 20, 5, 5], [10, 0, 10, 10], [0, 0, 0, 0]])
    np.testing.assert_allclose(ious, [1, 0, 0, 0])


def test_bound_clips_both_boxes_to_the_image_first():
    pred, gt = [[5, 0, 200, 10]], [[5, 0, 95, 10]]
    assert iou_xywh(pred, gt)[0] == pytest.approx(950 / 2000)
    assert iou_xywh(pred, gt, bound=(100, 100))[0] == pytest.approx(1.0)


def test_bound_moves_a_left_overhang_without_shortening_it_as_the_got10k_toolkit_does():
    assert iou_xywh([[-10, 0, 20, 10]], [BOX], bound=(100, 100))[0] == pytest.approx(0.5)


def test_centre_error_is_the_distance_between_centres():
    assert centre_error([BOX], [[3, 4, 10, 10]])[0] == pytest.approx(5.0)
    assert centre_error([[0, 0, 10, 10]], [[0, 0, 20, 20]])[0] == pytest.approx(np.hypot(5, 5))


def test_bound_clips_a_box_past_the_bottom_edge_and_a_negative_size_is_empty():
    assert iou_xywh([[0, 5, 10, 200]], [[0, 5, 10, 95]], bound=(100, 100))[0] == pytest.approx(1.0)
    assert iou_xywh([[0, 0, -5, 10]], [[-5, 0, 5, 10]])[0] == 0.0


def test_centre_error_of_tall_boxes_uses_their_heights():
    assert centre_error([[0, 0, 10, 40]], [[0, 0, 10, 20]])[0] == pytest.approx(10.0)


def test_sr75_counts_an_iou_of_0_72_as_a_miss_and_sr50_as_a_hit():
    gt = [BOX] * 2
    pred = [BOX, [0, 0, 10, 7.2]]  # frame 1 has IoU 0.72
    scores = score_results([result(pred, gt)])
    assert scores.ao == pytest.approx(0.72)
    assert scores.sr50 == 1.0 and scores.sr75 == 0.0


def test_ao_skips_the_first_frame_and_absent_frames():
    gt = [BOX] * 4
    pred = [[50, 50, 5, 5], [5, 0, 10, 10], [50, 50, 5, 5], BOX]  # frame 0 and 2 would score 0
    scores = score_results([result(pred, gt, absent=[False, False, True, False])])
    assert scores.ao == pytest.approx((1 / 3 + 1) / 2)
    assert scores.sr50 == pytest.approx(0.5) and scores.sr75 == pytest.approx(0.5)
    assert scores.frames == 2


def test_ao_weighs_every_frame_of_every_sequence_equally():
    long_good = result([BOX] * 4, [BOX] * 4)  # 3 scored frames, IoU 1
    short_bad = result([BOX, [50, 50, 5, 5]], [BOX] * 2)  # 1 scored frame, IoU 0
    assert score_results([long_good, short_bad]).ao == pytest.approx(3 / 4)


def test_success_rate_counts_only_iou_strictly_above_the_threshold():
    exactly_half = result([BOX, [0, 0, 20, 10]], [BOX, BOX])
    assert score_results([exactly_half]).sr50 == 0.0


def test_success_curve_uses_21_thresholds_and_strict_comparison():
    assert len(SUCCESS_THRESHOLDS) == 21 and SUCCESS_THRESHOLDS[1] == pytest.approx(0.05)
    curve = success_curve([0.0, 0.5, 1.0])
    np.testing.assert_allclose(curve[:10], 2 / 3)
    np.testing.assert_allclose(curve[10:20], 1 / 3)
    assert curve[20] == 0.0
    assert curve.mean() == pytest.approx(10 / 21)


def test_perfect_tracking_has_auc_20_over_21():
    assert score_results([result([BOX] * 5, [BOX] * 5)]).success_auc == pytest.approx(20 / 21)


def test_auc_and_precision_average_over_sequences_and_include_the_first_frame():
    perfect = result([BOX] * 3, [BOX] * 3)  # AUC 20/21, precision 1
    half = result([BOX, [50, 50, 10, 10]], [BOX] * 2)  # first frame right, second lost: AUC 10/21, precision 1/2
    scores = score_results([perfect, half])
    assert scores.success_auc == pytest.approx((20 / 21 + 10 / 21) / 2)
    assert scores.precision == pytest.approx((1 + 0.5) / 2)


def test_precision_counts_centre_errors_up_to_and_including_20_px():
    at_20 = result([BOX, [12, 16, 10, 10]], [BOX, BOX])
    past_20 = result([BOX, [12, 16.1, 10, 10]], [BOX, BOX])
    assert score_results([at_20]).precision == 1.0
    assert score_results([past_20]).precision == 0.5


def test_absent_frames_count_as_misses_in_auc_and_precision_as_lasots_toolkit_divides_by_every_frame():
    gt = [BOX] * 8 + [[0, 0, 0, 0]] * 2  # the last 2 frames without the target
    scores = score_results([result([BOX] * 10, gt, absent=[False] * 8 + [True] * 2)])

    assert scores.success_auc == pytest.approx(8 / 10 * 20 / 21)  # LaSOT toolkit and pytracking: 0.762
    assert scores.precision == pytest.approx(0.8) and scores.norm_precision == pytest.approx(0.8)
    assert scores.ao == 1.0  # GOT-10k leaves them out


def test_invalid_predictions_keep_the_previous_box_in_auc_and_precision_as_the_toolkits_do():
    shifted = [12, 10, 20, 20]
    gt = [[10, 10, 20, 20]] * 5
    pred = [[10, 10, 20, 20], shifted, [0, 0, 0, 0], [np.nan] * 4, [12, 10, -5, 20]]

    scores = score_results([result(pred, gt)])

    carried = iou_xywh([shifted], gt[:1])[0]  # 18 x 20 / (800 - 360) = 0.818: frames 1-4
    assert scores.success_auc == pytest.approx(np.mean(success_curve([1.0] + [carried] * 4)))  # 0.838
    assert scores.precision == 1.0
    assert scores.ao == pytest.approx(carried / 4)  # GOT-10k: an invalid box scores 0


def test_normalized_precision_divides_each_axis_by_the_ground_truth_size():
    gt = [[0, 0, 100, 10]] * 2
    wide_miss = [[19, 0, 100, 10]] * 2  # 19 px off in x: 0.19 of the width
    tall_miss = [gt[0], [0, 2.1, 100, 10]]  # 2.1 px off in y: 0.21 of the height

    assert score_results([result(wide_miss, gt)]).norm_precision == 1.0
    assert score_results([result(tall_miss, gt)]).norm_precision == 0.5
    assert score_results([result(tall_miss, gt)]).precision == 1.0


def test_fps_is_update_frames_over_update_time():
    rows = [result([BOX] * 4, [BOX] * 4, time_s=1.5), result([BOX] * 4, [BOX] * 4, time_s=1.5)]
    assert score_results(rows).fps == pytest.approx(2.0)


def test_scoring_nothing_is_an_error():
    with pytest.raises(ValueError, match="no sequence results"):
        score_results([])


def test_iou_of_a_box_with_itself_is_exactly_one_despite_rounding():
    boxes = np.array([[0.1, 0.7, 33.3, 17.9], [1e6 + 0.3, 2.2, 0.7, 0.1], [5.0, 5.0, 1e-9, 3.0]])
    assert np.all(iou_xywh(boxes, boxes) <= 1.0)
    assert iou_xywh(boxes[:1], boxes[:1])[0] == 1.0
