"""Training objectives: target ids against the official decode, soft targets, SIoU and GIoU by hand,
the auxiliary losses and the training init."""

from __future__ import annotations

import math

import pytest
import torch

from fartrack_ros.model import ModelConfig, build_model, decode_terms
from fartrack_ros.model.decode import bin_values
from fartrack_ros.training import (coordinate_bin_ids, coordinate_cross_entropy, expectation_boxes, giou_loss,
                                   model_config, siou_loss, soft_targets)
from fartrack_ros.training.configs import init_for_training
from fartrack_ros.training.objectives import (attention_loss, search_token_labels, self_distillation_loss,
                                              tracking_loss)

CFG = ModelConfig()  # official 300 bins, range 2, 605 ids


def one_hot_logits(ids: torch.Tensor, cfg: ModelConfig = CFG) -> torch.Tensor:
    logits = torch.full((*ids.shape, cfg.vocab_size), -50.0)
    return logits.scatter(-1, ids.unsqueeze(-1), 50.0)


def test_target_ids_round_trip_through_the_official_argmax_decode_within_half_a_bin():
    values = torch.linspace(-0.45, 1.45, 4000).reshape(-1, 4)
    ids = coordinate_bin_ids(values, CFG)
    argmax_term, _ = decode_terms(one_hot_logits(ids), CFG)
    assert (argmax_term - values).abs().max() <= 0.5 / (CFG.bins - 1) + 1e-6


def test_target_ids_of_a_decoded_id_are_that_id():
    ids = torch.arange(0, CFG.num_bins - 1).reshape(-1, 1).expand(-1, 4)
    decoded = (ids.double() + 0.5) / (CFG.bins - 1) - 0.5 * (CFG.coord_range - 1)
    assert torch.equal(coordinate_bin_ids(decoded, CFG), ids)


def test_target_ids_are_clamped_to_the_coordinate_ids():
    ids = coordinate_bin_ids(torch.tensor([[-3.0, -0.6, 1.7, 9.0]]), CFG)
    assert ids.tolist() == [[0, 0, CFG.num_bins - 1, CFG.num_bins - 1]]


def test_soft_targets_are_distributions_peaked_at_the_id_and_zero_on_special_ids():
    ids = torch.tensor([[0, 17, 300, CFG.num_bins - 1]])
    target = soft_targets(ids, CFG, sigma_bins=1.5)
    assert torch.allclose(target.sum(-1), torch.ones(1, 4))
    assert torch.equal(target.argmax(-1), ids)
    assert target[..., CFG.num_bins:].abs().max() == 0


def test_cross_entropy_is_lowest_for_logits_at_the_target_ids():
    box = torch.tensor([[0.3, 0.35, 0.62, 0.7]])
    ids = coordinate_bin_ids(box, CFG)
    right = coordinate_cross_entropy(one_hot_logits(ids), box, CFG)
    wrong = coordinate_cross_entropy(one_hot_logits(ids + 3), box, CFG)
    assert right < 1e-3 < wrong


def test_expectation_box_of_a_peaked_distribution_is_the_bin_value():
    ids = torch.tensor([[150, 225, 300, 375]])
    box = expectation_boxes(one_hot_logits(ids), CFG)
    assert torch.allclose(box, -0.5 + ids.float() / CFG.bins, atol=1e-6)


def test_giou_loss_on_hand_computed_boxes():
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    target = torch.tensor([[1.0, 1.0, 3.0, 3.0], [1.0, 0.0, 2.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    # overlap 1, union 7, enclosing 9 | touching: IoU 0, enclosing = union | identical
    expected = torch.tensor([1 - 1 / 7 + 2 / 9, 1.0, 0.0])
    assert torch.allclose(giou_loss(pred, target), expected, atol=1e-5)


def test_siou_loss_of_diagonally_shifted_equal_boxes():
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    target = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    # 45 degrees: angle cost 1, gamma 1; centre offsets 1 in a 3x3 enclosing box; same shape
    expected = 1 - 1 / 7 + (2 * (1 - math.exp(-1 / 9))) / 2
    assert siou_loss(pred, target).item() == pytest.approx(expected, abs=1e-5)


def test_siou_loss_of_concentric_boxes_is_iou_plus_shape_cost():
    pred = torch.tensor([[0.5, 0.0, 1.5, 2.0]])  # w 1, h 2
    target = torch.tensor([[0.0, 0.0, 2.0, 2.0]])  # w 2, h 2, same centre
    expected = 1 - 0.5 + (1 - math.exp(-0.5)) ** 4 / 2
    assert siou_loss(pred, target).item() == pytest.approx(expected, abs=1e-5)


def test_siou_loss_is_zero_for_identical_boxes_and_has_finite_gradients():
    pred = torch.tensor([[0.2, 0.3, 0.6, 0.8], [0.6, 0.5, 0.4, 0.7]], requires_grad=True)  # 2nd inverted
    target = torch.tensor([[0.2, 0.3, 0.6, 0.8], [0.3, 0.3, 0.5, 0.6]])
    loss = siou_loss(pred, target)
    assert loss[0].item() == pytest.approx(0.0, abs=1e-5)
    loss.sum().backward()
    assert torch.isfinite(pred.grad).all()


def test_search_token_labels_mark_the_patches_whose_centres_lie_in_the_box():
    cfg = ModelConfig(template_size=32, search_size=64, patch_size=16)  # 4x4 search grid, centres 1/8, 3/8, ...
    labels = search_token_labels(torch.tensor([[0.3, 0.0, 0.7, 0.4]]), cfg).reshape(4, 4)
    expected = torch.zeros(4, 4)
    expected[0:2, 1:3] = 1  # rows with centre y in [0, 0.4], columns with centre x in [0.3, 0.7]
    assert torch.equal(labels, expected)


def test_attention_loss_is_zero_when_all_attention_is_on_the_target_and_log_n_when_uniform():
    cfg = ModelConfig(template_size=32, search_size=64, patch_size=16)
    box = torch.tensor([[0.3, 0.0, 0.7, 0.4]])  # 4 of 16 tokens
    on_target = search_token_labels(box, cfg) / 4
    uniform = torch.full((1, 16), 1 / 16)
    assert attention_loss(on_target.unsqueeze(0), box, cfg).item() == pytest.approx(0.0, abs=1e-5)
    assert attention_loss(uniform.unsqueeze(0), box, cfg).item() == pytest.approx(math.log(4), abs=1e-5)


def test_training_init_makes_search_positions_readable_as_coordinates():
    model = init_for_training(build_model(model_config("bundled-s")))
    cfg = model.cfg
    half = cfg.embed_dim // 2
    pos = model.backbone.pos_embed_x[0]  # (G*G, D): x features in the first half
    x_only = torch.cat([pos[:, :half], torch.zeros_like(pos[:, half:])], dim=-1)
    scores = x_only @ model.backbone.word_embeddings.weight[: cfg.num_bins].t()
    read = bin_values(cfg)[scores.argmax(dim=-1)].reshape(cfg.search_grid, cfg.search_grid)
    centres = (torch.arange(cfg.search_grid) + 0.5) / cfg.search_grid
    assert torch.allclose(read, centres.expand(cfg.search_grid, -1), atol=1.0 / cfg.bins)


def test_box_loss_targets_are_clamped_to_the_reachable_coordinate_range():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, CFG.vocab_size)
    reach = 0.5 * (CFG.coord_range - 1)
    beyond = torch.tensor([[-0.9, 0.2, 0.6, 2.4], [0.1, -3.0, 1.7, 0.8]])
    at_limit = beyond.clamp(-reach, 1 + reach)
    _, parts_beyond = tracking_loss(logits, beyond, CFG)
    _, parts_limit = tracking_loss(logits, at_limit, CFG)
    assert parts_beyond["siou"] == pytest.approx(parts_limit["siou"])


def test_self_distillation_averages_the_exits_tracking_losses_and_adds_the_weighted_kl():
    torch.manual_seed(1)
    exits = [torch.randn(3, 4, CFG.vocab_size) for _ in range(3)]
    box = torch.tensor([[0.3, 0.3, 0.6, 0.7], [0.2, 0.4, 0.5, 0.5], [0.4, 0.1, 0.9, 0.6]])

    total, parts = self_distillation_loss(exits, box, CFG, distill_weight=0.5)

    per_exit = [tracking_loss(logits, box, CFG)[0] for logits in exits]
    bins = CFG.num_bins
    kls = []
    for shallow, deep in zip(exits, exits[1:]):  # KL(deep || shallow) over the coordinate bins, per sample
        p, log_q = deep[..., :bins].softmax(-1), shallow[..., :bins].log_softmax(-1)
        kls.append((p * (p.log() - log_q)).sum() / box.shape[0])
    expected_kl = sum(kls) / len(kls)
    assert parts["distill_kl"] == pytest.approx(float(expected_kl), rel=1e-4)
    assert float(total) == pytest.approx(float(sum(per_exit) / 3 + 0.5 * expected_kl), rel=1e-4)
    assert parts["iou"] == tracking_loss(exits[-1], box, CFG)[1]["iou"]  # the whole model's parts
    assert parts["shallowest_iou"] == tracking_loss(exits[0], box, CFG)[1]["iou"]


def test_the_kl_term_teaches_the_shallower_exit_and_leaves_the_deeper_one_as_its_target():
    torch.manual_seed(2)
    shallow = torch.randn(2, 4, CFG.vocab_size, requires_grad=True)
    deep = torch.randn(2, 4, CFG.vocab_size, requires_grad=True)
    box = torch.tensor([[0.3, 0.3, 0.6, 0.7], [0.2, 0.4, 0.5, 0.5]])

    # the KL alone: tracking terms weighted 0
    total, parts = self_distillation_loss([shallow, deep], box, CFG, ce_weight=0.0, box_weight=0.0,
                                          distill_weight=1.0)
    total.backward()

    assert parts["distill_kl"] > 0
    assert deep.grad is None or torch.count_nonzero(deep.grad) == 0
    assert torch.count_nonzero(shallow.grad[..., :CFG.num_bins]) > 0
    assert torch.count_nonzero(shallow.grad[..., CFG.num_bins:]) == 0  # special ids are no coordinates


def test_identical_exits_have_no_divergence():
    logits = torch.randn(2, 4, CFG.vocab_size)
    box = torch.tensor([[0.3, 0.3, 0.6, 0.7], [0.2, 0.4, 0.5, 0.5]])
    _, parts = self_distillation_loss([logits, logits.clone()], box, CFG)
    assert parts["distill_kl"] == pytest.approx(0.0, abs=1e-6)
