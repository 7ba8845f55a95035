"""The training loop: stage 1 (pairs) then stage 2 (sequence-level), checkpoints, resume.

Reproducibility. The weights are initialised from ``torch.manual_seed(seed)`` and every batch is
a pure function of ``(seed, step)`` (see `sampling`), so two runs with the same seed, config,
device and thread count give the same weights, and a run resumed from a checkpoint continues
exactly as the uninterrupted run (the checkpoint holds the weights, the optimizer state, the
step and the torch RNG state). That holds on the CPU; on CUDA, the backward passes of gather and
of fused attention add with atomics, so runs agree only to rounding and drift apart from there.

Checkpoints follow the official layout: ``<out>/checkpoints/FARTrackSparse_ep<NNNN>.pth.tar``
with the weights under ``net``, plus ``epoch``, ``step``, ``optimizer``, ``net_type``,
``actor_type``, ``model_config``, ``train_config`` and ``torch_rng_state``: only tensors, dicts,
lists, numbers and strings, so ``torch.load(..., weights_only=True)`` reads them. Here an
"epoch" is ``checkpoint_every`` steps. At the end ``<out>/final.pth`` holds the weights alone
(what ships as the bundled model).
"""

from __future__ import annotations

import json
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ..model import FARTrack, save_checkpoint
from .objectives import attention_loss, objectness_loss, self_distillation_loss, tracking_loss
from .rollout import RolloutConfig, rollout_batch
from .sampling import PairSampler, SamplerConfig, SequenceSource

CHECKPOINT_PATTERN = re.compile(r"^FARTrackSparse_ep(\d{4,})\.pth\.tar$")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a run; stored in every checkpoint so --resume continues the same run."""

    seed: int = 0
    steps: int = 9000  # stage-1 optimizer steps
    batch_size: int = 16
    lr: float = 8e-4
    weight_decay: float = 0.05
    warmup_steps: int = 100
    min_lr_ratio: float = 0.02  # stage-1 cosine ends at lr * min_lr_ratio
    grad_clip: float = 1.0
    ce_weight: float = 1.0
    box_weight: float = 2.0
    label_sigma_bins: float = 1.0  # Gaussian soft target over neighbouring bins; 0 = one-hot CE
    objectness_weight: float = 1.0  # auxiliary per-search-token target BCE (see forward_for_training)
    attention_weight: float = 1.0  # auxiliary: command tokens' attention mass on the target tokens
    stage2_steps: int = 200
    stage2_lr_scale: float = 0.1  # stage 2 starts at lr * this and decays linearly to 0
    checkpoint_every: int = 500
    # share of the training sequences seen in grey, in both stages (OSTrack's value on real video)
    grey_fraction: float = 0.05
    # generated grey sequences drawn for a mono camera, objects differing in brightness too (in
    # scenes set apart by hue alone the network learns little grey: see the model card)
    grey_luma_contrast: bool = True
    # Task-Specific Self-Distillation (FARTrack): from this depth on, every layer also predicts the
    # box (the tied head on its command tokens), trained on the box and on the next deeper layer's
    # coordinate distribution, so that the first N layers track on their own (the official Nano and
    # Pico are the first 10 and 6 layers of such a Tiny). 0: off, only the last layer predicts.
    self_distill_from: int = 0
    distill_weight: float = 0.01  # weight of the layer-to-layer KL term (the official value)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole run: stage 1, then stage 2."""
        return self.steps + self.stage2_steps

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values, as checkpoints store them (for --resume)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Settings stored in a checkpoint; fields a run stored before they existed get the values it ran
        with, and fields no longer known are dropped, so an older run resumes."""
        values = dict(values)
        values.setdefault("grey_fraction", 0.0)  # a run stored before grey training had none
        values.setdefault("grey_luma_contrast", False)  # ... or turned the colour scenes grey
        values["sampler"] = SamplerConfig(**values.get("sampler", {}))
        values["rollout"] = RolloutConfig(**values.get("rollout", {}))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def _epoch(step: int, config: TrainConfig) -> int:
    """Checkpoint number of ``step``: ``checkpoint_every`` steps make one epoch (a partial last one counts)."""
    return -(-step // config.checkpoint_every)


def learning_rate(config: TrainConfig, step: int) -> float:
    """LR of ``step``: linear warmup, cosine to ``lr * min_lr_ratio`` over stage 1, then stage 2
    from ``lr * stage2_lr_scale`` linearly down to 0."""
    if step < config.steps:
        if step < config.warmup_steps:
            return config.lr * (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        floor = config.lr * config.min_lr_ratio
        return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    progress = (step - config.steps) / max(1, config.stage2_steps)
    return config.lr * config.stage2_lr_scale * (1 - progress)


def make_optimizer(model: FARTrack, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms and embeddings."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_matrix = param.ndim >= 2 and "embed" not in name and name != "identity"
        (decay if is_matrix else no_decay).append(param)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, betas=(0.9, 0.999),
    )


def checkpoint_path(out_dir: Path, epoch: int) -> Path:
    """Where the checkpoint of ``epoch`` goes, named as the official training names its checkpoints."""
    return Path(out_dir) / "checkpoints" / f"FARTrackSparse_ep{epoch:04d}.pth.tar"


def checkpoints(out_dir: Path) -> list[Path]:
    """The checkpoints under ``<out>/checkpoints``, oldest (lowest epoch number) first."""
    folder = Path(out_dir) / "checkpoints"
    found = [(int(m.group(1)), p) for p in folder.glob("*.pth.tar") if (m := CHECKPOINT_PATTERN.match(p.name))]
    return [path for _, path in sorted(found)]


def latest_checkpoint(out_dir: Path) -> Optional[Path]:
    """The checkpoint with the highest epoch number under ``<out>/checkpoints``, or None."""
    found = checkpoints(out_dir)
    return found[-1] if found else None


def forward_for_training(model: FARTrack, template_embeds: torch.Tensor, template_keep: torch.Tensor,
                         search: torch.Tensor, exits_from: int = 0
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """The fast forward path (pruned tokens dropped, fused attention) with extra outputs.

    Returns the coordinate logits (B, 4, vocab), exactly as `FARTrack.forward_embedded`;
    a per-search-token target score (B, G*G): the final-normed search state projected on the
    padding id's row of the tied head (an existing, otherwise unused parameter, so checkpoints
    keep the official keys); the attention of the 4 command tokens to the search tokens in
    every layer, averaged over heads and commands (L, B, G*G); and, with ``exits_from`` > 0, the
    head's logits after each layer from that depth to the one before the last (what the first
    N layers alone would predict: self-distillation's exits). The score and the attention feed the
    auxiliary losses, dense signals that make a small model trained from scratch look at the target
    long before the 4-token head alone would.
    """
    cfg = model.cfg
    batch = template_embeds.shape[0]
    backbone = model.backbone
    tokens = torch.cat([model._template_tokens(template_embeds), model._search_tokens(search),
                        backbone.command_tokens(batch)], dim=1)
    hidden, key_keep, _, _ = model._drop_pruned(tokens, template_keep.reshape(batch, -1))
    search_slice = slice(hidden.shape[1] - 4 - cfg.search_tokens, hidden.shape[1] - 4)
    attention, exits = [], []
    layers = backbone.layers()
    for depth, block in enumerate(layers, start=1):
        attention.append(_command_attention(block, hidden, key_keep)[..., search_slice])
        hidden, _ = block(hidden, key_keep=key_keep, fused=True)
        if 0 < exits_from <= depth < len(layers):
            exits.append(backbone.head(hidden[:, -4:]))
    logits = backbone.head(hidden[:, -4:])
    pad = cfg.vocab_size - 1
    search_states = backbone.norm(hidden[:, search_slice])
    search_logits = search_states @ backbone.word_embeddings.weight[pad] + backbone.output_bias[pad]
    return logits, search_logits, torch.stack(attention), exits


def _command_attention(block, hidden: torch.Tensor, key_keep) -> torch.Tensor:
    """Attention probabilities of the 4 command tokens in ``block``, averaged over heads and commands."""
    attn = block.attn
    batch, length, dim = hidden.shape
    qkv = attn.qkv(block.masknorm1(hidden)).reshape(batch, length, 3, attn.num_heads, attn.head_dim)
    q = qkv[:, -4:, 0].transpose(1, 2)  # (B, H, 4, hd)
    k = qkv[:, :, 1].transpose(1, 2)  # (B, H, L, hd)
    scores = (q @ k.transpose(-2, -1)) * attn.scale
    if key_keep is not None:
        scores = scores.masked_fill(~key_keep[:, None, None, :], float("-inf"))
    return scores.softmax(dim=-1).mean(dim=(1, 2))


def train_step(model: FARTrack, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor],
               config: TrainConfig, lr: float) -> dict[str, float]:
    """One optimizer step on a batch; returns the loss parts."""
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    templates = batch["templates"]
    b, s = templates.shape[:2]
    embeds = model.embed_template(templates.flatten(0, 1)).unflatten(0, (b, s))
    logits, search_logits, attention, exits = forward_for_training(
        model, embeds, batch["template_keep"], batch["search"], config.self_distill_from)
    if exits:
        loss, parts = self_distillation_loss([*exits, logits], batch["target_xyxy"], model.cfg, config.ce_weight,
                                             config.box_weight, config.label_sigma_bins, config.distill_weight)
    else:
        loss, parts = tracking_loss(logits, batch["target_xyxy"], model.cfg, config.ce_weight,
                                    config.box_weight, config.label_sigma_bins)
    if config.objectness_weight > 0:
        objectness = objectness_loss(search_logits, batch["target_xyxy"], model.cfg)
        loss = loss + config.objectness_weight * objectness
        parts["objectness"] = float(objectness.detach())
    if config.attention_weight > 0:
        focus = attention_loss(attention, batch["target_xyxy"], model.cfg)
        loss = loss + config.attention_weight * focus
        parts["attention"] = float(focus.detach())
    parts["loss"] = float(loss.detach())
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip > 0:
        parts["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip))
    optimizer.step()
    parts["lr"] = lr
    return parts


class TrainingStopped(Exception):
    """`Trainer.run` stopped on request (`Trainer.stop_requested`), its last step checkpointed."""

    def __init__(self, step: int) -> None:
        super().__init__(f"stopped at step {step}")
        self.step = step


class Trainer:
    """Runs (or resumes) a training run into ``out_dir``."""

    def __init__(self, model: FARTrack, source: SequenceSource, config: TrainConfig, out_dir: "str | Path",
                 workers: int = 0, progress: bool = True, metadata: Optional[dict[str, Any]] = None,
                 keep_checkpoints: int = 0) -> None:
        if config.self_distill_from >= model.cfg.num_layers:
            raise ValueError(f"self_distill_from {config.self_distill_from} must be below the model's "
                             f"{model.cfg.num_layers} layers (the last layer always predicts)")
        self.model = model
        self.source = source.with_grey(config.grey_fraction, config.seed, config.grey_luma_contrast)
        self.config = config
        self.out_dir = Path(out_dir)
        self.workers = workers
        self.progress = progress
        self.metadata = dict(metadata or {})
        self.keep_checkpoints = keep_checkpoints  # after each save, older ones beyond this go (0: all kept)
        self.optimizer = make_optimizer(model, config)
        self.sampler = PairSampler(self.source, model.cfg, config.seed, config.sampler)
        self.step = 0
        self.wall_time_s = 0.0  # summed over all sessions of this run
        # set (by a signal handler) to stop after the current step with a checkpoint of it
        self.stop_requested = False

    # -- checkpoints ----------------------------------------------------------------------------
    def save(self, path: Path, last_parts: dict[str, float]) -> None:
        """Write a checkpoint of the current step: weights, optimizer, settings, RNG state and the last loss
        parts, all that --resume needs to continue the run."""
        save_checkpoint(
            self.model, path,
            epoch=_epoch(self.step, self.config),
            step=self.step,
            actor_type="FARTrackSparseActor",
            optimizer=self.optimizer.state_dict(),
            train_config=self.config.to_dict(),
            torch_rng_state=torch.get_rng_state(),
            stats={k: float(v) for k, v in last_parts.items()},
            wall_time_s=self.wall_time_s,
            metadata=self.metadata,
        )

    def _prune_checkpoints(self) -> None:
        """Delete all but the newest ``keep_checkpoints`` checkpoints (a tiny run's optimizer state
        makes each 85 MB)."""
        if self.keep_checkpoints > 0:
            for old in checkpoints(self.out_dir)[:-self.keep_checkpoints]:
                old.unlink(missing_ok=True)

    def resume_from(self, path: "str | Path") -> None:
        """Load weights, optimizer, step and RNG state of a checkpoint written by `save`."""
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(checkpoint["net"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        torch.set_rng_state(checkpoint["torch_rng_state"])
        self.step = int(checkpoint["step"])
        self.wall_time_s = float(checkpoint.get("wall_time_s", 0.0))
        log_path = self.out_dir / "train_log.jsonl"
        if log_path.is_file():  # drop the steps the interrupted session logged after this checkpoint
            lines = log_path.read_text().splitlines(keepends=True)
            log_path.write_text("".join(line for line in lines if json.loads(line)["step"] <= self.step))

    # -- loop -----------------------------------------------------------------------------------
    def run(self, on_step: Optional[Callable[[int, dict[str, float]], None]] = None) -> dict[str, Any]:
        """Train up to ``config.total_steps``; returns a summary (also written to ``summary.json``)."""
        from tqdm import tqdm

        config = self.config
        self.model.train()
        log_path = self.out_dir / "train_log.jsonl"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=config.total_steps, initial=self.step, disable=not self.progress,
                   desc="fartrack-train", unit="step", dynamic_ncols=True)
        parts: dict[str, float] = {}
        session_start = time.perf_counter()
        base_wall = self.wall_time_s
        executor = ThreadPoolExecutor(max_workers=self.workers) if self.workers > 0 else None
        pending = None
        try:
            with log_path.open("a", buffering=1) as log:  # line-buffered: the log follows the run
                while self.step < config.total_steps:
                    step = self.step
                    if step < config.steps:
                        if pending is not None:
                            batch = pending.result()
                        else:
                            batch = self.sampler.batch(step, config.batch_size)
                        pending = None
                        if executor is not None and step + 1 < config.steps:
                            pending = executor.submit(self.sampler.batch, step + 1, config.batch_size)
                        stage = 1
                        tracked_iou = None
                    else:
                        batch, tracked_iou = rollout_batch(self.model, self.source, config.seed,
                                                           step - config.steps, config.rollout)
                        stage = 2
                    parts = train_step(self.model, self.optimizer, batch, config, learning_rate(config, step))
                    if tracked_iou is not None:
                        parts["tracked_iou"] = tracked_iou
                    self.step = step + 1
                    self.wall_time_s = base_wall + time.perf_counter() - session_start
                    log.write(json.dumps({"step": self.step, "stage": stage, **parts}) + "\n")
                    bar.set_postfix(stage=stage, loss=f"{parts['loss']:.3f}", iou=f"{parts['iou']:.2f}")
                    bar.update(1)
                    if on_step is not None:
                        on_step(self.step, parts)
                    at_end = self.step % config.checkpoint_every == 0 or self.step == config.total_steps
                    if at_end or self.stop_requested:
                        log.flush()
                        self.save(checkpoint_path(self.out_dir, _epoch(self.step, config)), parts)
                        self._prune_checkpoints()
                    if self.stop_requested:
                        raise TrainingStopped(self.step)
        finally:
            if pending is not None:
                pending.cancel()
            if executor is not None:
                executor.shutdown(wait=True)
            bar.close()
        final = self.out_dir / "final.pth"
        save_checkpoint(self.model, final, epoch=_epoch(self.step, config), step=self.step,
                        train_config=config.to_dict(), wall_time_s=self.wall_time_s, metadata=self.metadata)
        summary = {"steps": self.step, "wall_time_s": round(self.wall_time_s, 1), "final": str(final),
                   "last": parts, **self.metadata}
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary
