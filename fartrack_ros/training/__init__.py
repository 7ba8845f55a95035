"""Training FARTrack (fartrack-train): objectives, stage-1 pair sampling, stage-2 sequence rollouts."""

from .configs import MODEL_CONFIGS, model_config
from .objectives import (box_iou, coordinate_bin_ids, coordinate_cross_entropy, expectation_boxes, giou_loss,
                         siou_loss, soft_targets, tracking_loss)
from .rollout import RolloutConfig, rollout_batch, track_clip
from .sampling import PairSampler, SamplerConfig, SequenceSource, box_in_search_crop, jitter_box
from .trainer import TrainConfig, Trainer, checkpoint_path, latest_checkpoint, learning_rate

__all__ = [
    "MODEL_CONFIGS", "PairSampler", "RolloutConfig", "SamplerConfig", "SequenceSource", "TrainConfig", "Trainer",
    "box_in_search_crop", "box_iou", "checkpoint_path", "coordinate_bin_ids", "coordinate_cross_entropy",
    "expectation_boxes", "giou_loss", "jitter_box", "latest_checkpoint", "learning_rate", "model_config",
    "rollout_batch", "siou_loss", "soft_targets", "track_clip", "tracking_loss",
]
