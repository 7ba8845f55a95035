"""FARTrack training objectives: coordinate cross-entropy on the four command tokens plus SIoU.

Boxes here are crop-normalised ``x0, y0, x1, y1`` (the units the network predicts in).

Target ids. The official decode reads id ``k`` as ``(k + 0.5) / (bins - 1) - 0.5 * (range - 1)``:
the centre of the cell ``[k, k + 1)`` on the scale ``(v + 0.5 * (range - 1)) * (bins - 1)``. The
target id of a coordinate ``v`` is therefore that scaled value floored (as the official training
code's ``.int()`` on non-negative values) and clamped to the coordinate ids; decoding it gives ``v``
back to within half a cell, ``0.5 / (bins - 1)``.

Soft targets. With ``sigma_bins > 0`` the cross-entropy target is a Gaussian over the coordinate
ids centred on the target id (a label smoothing that knows neighbouring bins are nearly right);
its mode is the target id, so the argmax decode is unchanged. ``sigma_bins = 0`` is the one-hot CE.

Box loss. SIoU (Gevorgyan 2022, as ARTrack/FARTrack use it): ``1 - IoU + (distance + shape) / 2``
on the softmax-expectation box, which is the differentiable part of the decode.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..model.config import ModelConfig
from ..model.decode import bin_values

_EPS = 1e-7


def coordinate_bin_ids(box_xyxy: Tensor, cfg: ModelConfig) -> Tensor:
    """Crop-normalised coordinates (..., 4) -> target ids (..., 4) int64 in [0, num_bins - 1]."""
    scaled = (box_xyxy.double() + 0.5 * (cfg.coord_range - 1)) * (cfg.bins - 1)
    return scaled.floor().clamp(0, cfg.num_bins - 1).long()


def soft_targets(ids: Tensor, cfg: ModelConfig, sigma_bins: float) -> Tensor:
    """(..., 4) ids -> (..., 4, vocab) target distributions over the coordinate ids (0 elsewhere)."""
    vocab = torch.arange(cfg.vocab_size, device=ids.device)
    if sigma_bins <= 0:
        return F.one_hot(ids, cfg.vocab_size).float()
    dist = (vocab - ids.unsqueeze(-1)).float()
    weights = torch.exp(-0.5 * (dist / sigma_bins) ** 2)
    weights = weights * (vocab < cfg.num_bins).float()
    return weights / weights.sum(dim=-1, keepdim=True)


def coordinate_cross_entropy(logits: Tensor, box_xyxy: Tensor, cfg: ModelConfig, sigma_bins: float = 0.0) -> Tensor:
    """Mean CE of the (B, 4, vocab) logits against the target ids of ``box_xyxy`` (B, 4).

    The softmax runs over the whole vocabulary, as the official argmax does, so the model also
    learns to keep the command and padding ids unlikely.
    """
    target = soft_targets(coordinate_bin_ids(box_xyxy, cfg), cfg, sigma_bins)
    log_probs = logits.float().log_softmax(dim=-1)
    return -(target * log_probs).sum(dim=-1).mean()


def expectation_boxes(logits: Tensor, cfg: ModelConfig) -> Tensor:
    """(B, 4, vocab) -> (B, 4) softmax expectation over the coordinate bins (differentiable)."""
    probs = logits[..., : cfg.num_bins].float().softmax(dim=-1)
    return (probs * bin_values(cfg, logits.device)).sum(dim=-1)


def box_iou(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """IoU and union of (N, 4) xyxy boxes, row by row; inverted boxes count as empty."""
    pred_w = (pred[:, 2] - pred[:, 0]).clamp(min=0)
    pred_h = (pred[:, 3] - pred[:, 1]).clamp(min=0)
    tgt_w = (target[:, 2] - target[:, 0]).clamp(min=0)
    tgt_h = (target[:, 3] - target[:, 1]).clamp(min=0)
    inter_w = (torch.min(pred[:, 2], target[:, 2]) - torch.max(pred[:, 0], target[:, 0])).clamp(min=0)
    inter_h = (torch.min(pred[:, 3], target[:, 3]) - torch.max(pred[:, 1], target[:, 1])).clamp(min=0)
    inter = inter_w * inter_h
    union = pred_w * pred_h + tgt_w * tgt_h - inter
    return inter / (union + _EPS), union


def giou_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Per-row 1 - GIoU of (N, 4) xyxy boxes."""
    iou, union = box_iou(pred, target)
    enclose_w = torch.max(pred[:, 2], target[:, 2]) - torch.min(pred[:, 0], target[:, 0])
    enclose_h = torch.max(pred[:, 3], target[:, 3]) - torch.min(pred[:, 1], target[:, 1])
    enclose = (enclose_w * enclose_h).clamp(min=_EPS)
    return 1 - (iou - (enclose - union) / enclose)


def siou_loss(pred: Tensor, target: Tensor, theta: float = 4.0) -> Tensor:
    """Per-row SIoU loss of (N, 4) xyxy boxes: 1 - IoU + (distance cost + shape cost) / 2.

    angle cost  L = 1 - 2 sin^2(arcsin(|dy| / d) - pi/4)       (d: distance of the centres)
    distance    D = sum_{x,y} 1 - exp(-(2 - L) (dc / c)^2)     (c: enclosing box width/height)
    shape       W = sum_{w,h} (1 - exp(-|s - s_gt| / max(s, s_gt)))^theta
    """
    iou, _ = box_iou(pred, target)
    pcx, pcy = (pred[:, 0] + pred[:, 2]) / 2, (pred[:, 1] + pred[:, 3]) / 2
    tcx, tcy = (target[:, 0] + target[:, 2]) / 2, (target[:, 1] + target[:, 3]) / 2
    dx, dy = tcx - pcx, tcy - pcy
    dist = torch.sqrt(dx * dx + dy * dy + _EPS)
    sin_alpha = (dy.abs() / dist).clamp(max=1 - 1e-6)
    angle = 1 - 2 * torch.sin(torch.arcsin(sin_alpha) - math.pi / 4) ** 2
    enclose_w = torch.max(pred[:, 2], target[:, 2]) - torch.min(pred[:, 0], target[:, 0])
    enclose_h = torch.max(pred[:, 3], target[:, 3]) - torch.min(pred[:, 1], target[:, 1])
    gamma = 2 - angle
    rho_x = (dx / (enclose_w + _EPS)) ** 2
    rho_y = (dy / (enclose_h + _EPS)) ** 2
    distance = (1 - torch.exp(-gamma * rho_x)) + (1 - torch.exp(-gamma * rho_y))
    pw, ph = pred[:, 2] - pred[:, 0], pred[:, 3] - pred[:, 1]
    tw, th = target[:, 2] - target[:, 0], target[:, 3] - target[:, 1]
    omega_w = (pw - tw).abs() / (torch.max(pw, tw).clamp(min=_EPS))
    omega_h = (ph - th).abs() / (torch.max(ph, th).clamp(min=_EPS))
    shape = (1 - torch.exp(-omega_w)) ** theta + (1 - torch.exp(-omega_h)) ** theta
    return 1 - iou + (distance + shape) / 2


def tracking_loss(
    logits: Tensor,
    box_xyxy: Tensor,
    cfg: ModelConfig,
    ce_weight: float = 1.0,
    box_weight: float = 2.0,
    sigma_bins: float = 0.0,
) -> tuple[Tensor, dict[str, float]]:
    """The FARTrack objective on a batch: ce_weight * CE + box_weight * SIoU, and its parts.

    Both terms see the target clamped to the coordinate range the bins cover (as the CE's ids
    are): beyond it SIoU would pull towards a box no expectation over the bins can reach."""
    ce = coordinate_cross_entropy(logits, box_xyxy, cfg, sigma_bins)
    pred = expectation_boxes(logits, cfg)
    reach = 0.5 * (cfg.coord_range - 1)
    target = box_xyxy.float().clamp(-reach, 1.0 + reach)
    siou = siou_loss(pred, target).mean()
    with torch.no_grad():
        iou = box_iou(pred, target)[0].mean()
    total = ce_weight * ce + box_weight * siou
    return total, {"loss": float(total.detach()), "ce": float(ce.detach()), "siou": float(siou.detach()), "iou": float(iou)}


def self_distillation_loss(
    exit_logits: list[Tensor],
    box_xyxy: Tensor,
    cfg: ModelConfig,
    ce_weight: float = 1.0,
    box_weight: float = 2.0,
    sigma_bins: float = 0.0,
    distill_weight: float = 0.01,
) -> tuple[Tensor, dict[str, float]]:
    """FARTrack's Task-Specific Self-Distillation on the (B, 4, vocab) logits of successive exits
    (shallowest first, the whole model last): `tracking_loss` averaged over the exits, plus
    ``distill_weight`` times the mean KL divergence of each exit's coordinate distribution from the
    next deeper one's. The deeper exit is the target (no gradient flows into it through the KL), so
    each layer learns from the one above it and no teacher-student layer pairs are chosen by hand.
    The parts are the whole model's, plus ``exits_loss``, ``distill_kl`` and ``shallowest_iou``."""
    losses = [tracking_loss(logits, box_xyxy, cfg, ce_weight, box_weight, sigma_bins) for logits in exit_logits]
    tracking = torch.stack([loss for loss, _ in losses]).mean()
    bins = cfg.num_bins
    divergences = [F.kl_div(shallow[..., :bins].float().log_softmax(dim=-1),
                            deep[..., :bins].detach().float().softmax(dim=-1), reduction="batchmean")
                   for shallow, deep in zip(exit_logits, exit_logits[1:])]
    kl = torch.stack(divergences).mean() if divergences else tracking.new_zeros(())
    total = tracking + distill_weight * kl
    parts = {**losses[-1][1], "loss": float(total.detach()), "exits_loss": float(tracking.detach()),
             "distill_kl": float(kl.detach()), "shallowest_iou": losses[0][1]["iou"]}
    return total, parts


def search_token_labels(box_xyxy: Tensor, cfg: ModelConfig) -> Tensor:
    """(B, 4) crop-normalised boxes -> (B, G*G) 1.0 where a search patch centre lies inside the box."""
    g = cfg.search_grid
    centres = (torch.arange(g, device=box_xyxy.device, dtype=box_xyxy.dtype) + 0.5) / g
    cy, cx = torch.meshgrid(centres, centres, indexing="ij")
    cx, cy = cx.reshape(1, -1), cy.reshape(1, -1)
    inside = (cx >= box_xyxy[:, :1]) & (cx <= box_xyxy[:, 2:3]) & (cy >= box_xyxy[:, 1:2]) & (cy <= box_xyxy[:, 3:4])
    return inside.float()


def objectness_loss(search_logits: Tensor, box_xyxy: Tensor, cfg: ModelConfig) -> Tensor:
    """Mean BCE of per-search-token target scores against `search_token_labels` (positives reweighted
    to count as much as negatives, since the target covers few tokens)."""
    labels = search_token_labels(box_xyxy, cfg)
    positives = labels.sum().clamp(min=1.0)
    pos_weight = ((labels.numel() - positives) / positives).clamp(max=20.0)
    return F.binary_cross_entropy_with_logits(search_logits.float(), labels, pos_weight=pos_weight)


def attention_loss(attention: Tensor, box_xyxy: Tensor, cfg: ModelConfig) -> Tensor:
    """-log of the attention mass (L, B, G*G) the command tokens put on the target's search tokens
    (those whose centre lies in the box, or the one nearest the box centre), averaged."""
    labels = search_token_labels(box_xyxy, cfg)
    g = cfg.search_grid
    centre = ((box_xyxy[:, :2] + box_xyxy[:, 2:]) / 2 * g).floor().clamp(0, g - 1).long()
    nearest = centre[:, 1] * g + centre[:, 0]
    labels = labels.scatter(1, nearest.unsqueeze(1), 1.0)
    mass = (attention * labels.unsqueeze(0)).sum(dim=-1)
    return -torch.log(mass + 1e-6).mean()
