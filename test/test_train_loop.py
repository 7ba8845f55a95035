"""The training loop: it learns, a seed reproduces a run, and a resumed run equals an uninterrupted one."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from fartrack_ros.data.synthetic import SyntheticConfig
from fartrack_ros.model import build_model
from fartrack_ros.tracker.cropping import IMAGENET_MEAN, IMAGENET_STD
from fartrack_ros.training import (PairSampler, RolloutConfig, SamplerConfig, SequenceSource, TrainConfig, Trainer,
                                   box_in_search_crop, latest_checkpoint, model_config, rollout_batch)
from fartrack_ros.training.objectives import tracking_loss
from fartrack_ros.training.trainer import make_optimizer, train_step

CFG = model_config("test-xs")
SMALL_SEQUENCES = SyntheticConfig(width=128, height=96, min_length=12, max_length=16)
SAMPLER = SamplerConfig(frames_per_sequence=8, pool_stride=1, pool_lifetime=3)
ROLLOUT = RolloutConfig(clips_per_step=1, clip_length=6, samples_per_clip=3)
RUN = TrainConfig(steps=4, batch_size=2, warmup_steps=1, stage2_steps=2, checkpoint_every=2, sampler=SAMPLER,
                  rollout=ROLLOUT)


def source(seed: int = 0) -> SequenceSource:
    return SequenceSource.synthetic(seed, SMALL_SEQUENCES)


def run(out_dir, config: TrainConfig = RUN, stop_after: int | None = None) -> Trainer:
    torch.manual_seed(config.seed)
    trainer = Trainer(build_model(CFG), source(config.seed), config, out_dir, progress=False)

    def interrupt(step, parts):
        if stop_after is not None and step > stop_after:
            raise KeyboardInterrupt

    try:
        trainer.run(on_step=interrupt)
    except KeyboardInterrupt:
        pass
    return trainer


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_target_box_of_a_search_crop_centred_on_it_is_the_middle_quarter():
    box = box_in_search_crop([100, 50, 40, 40], [100, 50, 40, 40], CFG)
    assert np.allclose(box, [0.375, 0.375, 0.625, 0.625])


def test_a_batch_is_a_function_of_seed_and_step():
    a = PairSampler(source(), CFG, seed=3, config=SAMPLER).batch(5, 3)
    b = PairSampler(source(), CFG, seed=3, config=SAMPLER).batch(5, 3)
    assert a["templates"].shape == (3, CFG.num_template_slots, 3, CFG.template_size, CFG.template_size)
    assert a["search"].shape == (3, 3, CFG.search_size, CFG.search_size)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_only_older_slots_are_pruned_and_by_num_pruned_tokens():
    keep = PairSampler(source(), CFG, seed=0, config=SAMPLER).batch(0, 8)["template_keep"]
    pruned = (~keep).sum(dim=-1)
    assert (pruned[:, -1] == 0).all()
    assert set(pruned[:, :-1].unique().tolist()) <= {0, CFG.num_pruned}


def test_loss_decreases_when_overfitting_a_fixed_batch():
    torch.manual_seed(0)
    model = build_model(CFG).train()
    config = TrainConfig(lr=3e-3)
    optimizer = make_optimizer(model, config)
    batch = PairSampler(source(), CFG, seed=0, config=SAMPLER).batch(0, 4)
    losses = [train_step(model, optimizer, batch, config, config.lr)["loss"] for _ in range(40)]
    assert np.mean(losses[-5:]) < 0.75 * np.mean(losses[:5])


def test_self_distillation_trains_the_first_layer_to_predict_the_box_on_its_own():
    from fartrack_ros.training.trainer import forward_for_training

    def first_layer_iou(model) -> float:
        """Mean IoU of what the model's first layer alone predicts for ``batch``."""
        with torch.no_grad():
            embeds = model.embed_template(batch["templates"].flatten(0, 1)).unflatten(0, batch["templates"].shape[:2])
            _, _, _, exits = forward_for_training(model, embeds, batch["template_keep"], batch["search"], 1)
            return tracking_loss(exits[0], batch["target_xyxy"], CFG)[1]["iou"]

    batch = PairSampler(source(), CFG, seed=0, config=SAMPLER).batch(0, 4)
    ious = {}
    for distill_from in (0, 1):  # the same start, without and with self-distillation
        torch.manual_seed(0)
        model = build_model(CFG).train()
        config = TrainConfig(lr=3e-3, self_distill_from=distill_from)
        optimizer = make_optimizer(model, config)
        parts = [train_step(model, optimizer, batch, config, config.lr) for _ in range(40)]
        ious[distill_from] = first_layer_iou(model)
        assert ("distill_kl" in parts[-1]) == bool(distill_from)
        assert np.mean([p["loss"] for p in parts[-5:]]) < 0.75 * np.mean([p["loss"] for p in parts[:5]])

    # measured: 0.50 against 0.36 (the head is shared, so an untaught first layer is not blind)
    assert ious[1] > 0.45 and ious[1] > ious[0] + 0.1, ious


def test_a_self_distillation_exit_predicts_what_the_model_cut_to_that_depth_does(tmp_path):
    """Nano and Pico are the first 10 and 6 layers of a Tiny (`variant`): the exits trained at those
    depths are exactly the boxes those cut models give."""
    from fartrack_ros.model import load_checkpoint, save_checkpoint
    from fartrack_ros.model.config import variant_config
    from fartrack_ros.training.trainer import forward_for_training

    torch.manual_seed(0)
    tiny = build_model(variant_config("tiny")).eval()
    save_checkpoint(tiny, tmp_path / "tiny.pth")
    cfg = tiny.cfg
    templates = torch.randn(1, cfg.num_template_slots, 3, cfg.template_size, cfg.template_size)
    search = torch.randn(1, 3, cfg.search_size, cfg.search_size)
    keep = torch.ones(1, cfg.num_template_slots, cfg.template_tokens, dtype=torch.bool)
    keep[0, 0, :10] = False  # pruned tokens of an older template

    with torch.no_grad():
        embeds = tiny.embed_template(templates.flatten(0, 1)).unflatten(0, templates.shape[:2])
        logits, _, _, exits = forward_for_training(tiny, embeds, keep, search, exits_from=6)
        assert len(exits) == cfg.num_layers - 6
        for variant, depth in (("pico", 6), ("nano", 10), ("tiny", 15)):
            cut = load_checkpoint(tmp_path / "tiny.pth", variant=variant)
            expected = cut.forward_embedded(embeds, keep, search).logits
            got = logits if depth == cfg.num_layers else exits[depth - 6]
            torch.testing.assert_close(got, expected, atol=2e-4, rtol=1e-4)


def test_self_distillation_needs_a_depth_below_the_model_s_layers(tmp_path):
    with pytest.raises(ValueError, match="self_distill_from 2 must be below the model's 2 layers"):
        Trainer(build_model(CFG), source(), replace(RUN, self_distill_from=2), tmp_path, progress=False)


def test_stage2_batch_replays_the_trackers_own_frames(tmp_path):
    torch.manual_seed(0)
    model = build_model(CFG)
    batch, tracked_iou = rollout_batch(model, source(), seed=0, iteration=0, config=ROLLOUT)
    assert model.training
    assert 1 <= batch["search"].shape[0] <= ROLLOUT.samples_per_clip
    assert batch["templates"].shape[1:] == (CFG.num_template_slots, 3, CFG.template_size, CFG.template_size)
    assert 0.0 <= tracked_iou <= 1.0


def test_same_seed_gives_identical_weights_and_another_seed_does_not(tmp_path):
    first = weights(run(tmp_path / "a"))
    second = weights(run(tmp_path / "b"))
    assert_same_weights(first, second)
    other = weights(run(tmp_path / "c", replace(RUN, seed=1)))
    assert any(not torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize("stop_after", [2, 4])  # inside stage 1, and at the start of stage 2
def test_resumed_run_equals_an_uninterrupted_run(tmp_path, stop_after):
    full = weights(run(tmp_path / "full"))
    interrupted = run(tmp_path / "cut", stop_after=stop_after)
    assert interrupted.step == stop_after + 1
    checkpoint = latest_checkpoint(tmp_path / "cut")
    torch.manual_seed(123)  # resume must not depend on the caller's RNG
    resumed = Trainer(build_model(CFG), source(RUN.seed), RUN, tmp_path / "cut", progress=False)
    resumed.resume_from(checkpoint)
    assert resumed.step == stop_after
    resumed.run()
    assert_same_weights(full, weights(resumed))
    logged = [json.loads(line)["step"] for line in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert logged == list(range(1, RUN.total_steps + 1))  # each step logged once


def test_checkpoints_load_with_weights_only_and_carry_the_official_keys(tmp_path):
    run(tmp_path)
    checkpoint = torch.load(latest_checkpoint(tmp_path), map_location="cpu", weights_only=True)
    assert {"net", "epoch", "step", "optimizer", "net_type", "actor_type", "model_config"} <= set(checkpoint)
    assert checkpoint["step"] == RUN.total_steps
    assert not any(k.startswith("module.") for k in checkpoint["net"])


def test_stage2_replays_the_init_template_at_the_box_the_tracker_cropped():
    """A ground-truth box crossing the image border is clipped by the tracker before its crop."""
    from fartrack_ros.data.synthetic import generate_sequence
    from fartrack_ros.training.rollout import track_clip

    seq = generate_sequence(3, SMALL_SEQUENCES)
    x, y, w, h = seq.boxes[0]
    seq.boxes[0] = [-w / 2, y, w, h]  # half of it left of the image
    torch.manual_seed(0)
    records, _ = track_clip(build_model(CFG).eval(), seq, 0, 4)
    assert records and records[0].slot_templates[0] == (0, (0.0, float(y), float(w / 2), float(h)))


def test_a_share_of_the_training_sequences_is_grey_and_the_choice_is_a_function_of_the_seed():
    greyed = source().with_grey(0.25, seed=3)
    picks = [greyed(k).grey for k in range(200)]
    assert 0.15 < np.mean(picks) < 0.35
    assert picks == [source().with_grey(0.25, seed=3)(k).grey for k in range(200)]
    grey_index = picks.index(True)
    frame = greyed(grey_index).frame(0)
    assert np.array_equal(frame[..., 0], frame[..., 1]) and np.array_equal(frame[..., 0], frame[..., 2])
    # a grey sequence is its seed's scene drawn for a mono camera, not the colour one greyed
    colour = source()(grey_index)
    assert np.array_equal(greyed(grey_index).boxes, colour.boxes)
    assert not np.array_equal(frame, colour.as_grey().frame(0))
    colour_index = picks.index(False)
    assert np.array_equal(greyed(colour_index).frame(0), source()(colour_index).frame(0))
    # without luma contrast (a run stored before it) the colour scene is only turned grey
    assert np.array_equal(source().with_grey(0.25, seed=3, luma_contrast=False)(grey_index).frame(0),
                          colour.as_grey().frame(0))
    assert not any(greyed.with_grey(0.0, seed=3)(k).grey for k in range(20))
    assert greyed.with_grey(0.0, seed=3).description == source().description
    with pytest.raises(ValueError, match="grey fraction"):
        source().with_grey(1.5, seed=3)


def test_a_run_stored_before_grey_training_resumes_without_grey():
    stored = RUN.to_dict()
    del stored["grey_fraction"]
    assert TrainConfig.from_dict(stored).grey_fraction == 0.0


def test_a_run_stored_before_mono_scenes_resumes_with_its_grey_sequences_as_they_were():
    stored = replace(RUN, grey_fraction=0.3).to_dict()
    del stored["grey_luma_contrast"]
    assert TrainConfig.from_dict(stored).grey_luma_contrast is False
    assert TrainConfig.from_dict(replace(RUN, grey_fraction=0.3).to_dict()).grey_luma_contrast is True
    assert TrainConfig.from_dict(RUN.to_dict()) == RUN


def test_the_trainer_samples_grey_sequences_in_both_stages(tmp_path):
    trainer = Trainer(build_model(CFG), source(), replace(RUN, grey_fraction=1.0), tmp_path, progress=False)
    templates = trainer.sampler.batch(0, 2)["templates"]
    rgb = templates * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]
    for channel in (1, 2):
        assert torch.allclose(rgb[:, :, 0], rgb[:, :, channel], atol=1e-5)
    assert trainer.source(12345).grey  # what stage 2 draws its clips from


def test_a_step_whose_pool_holds_no_usable_sequence_samples_the_nearest_usable_one_ahead():
    usable = source(0)
    first = usable(0)
    blank = replace(first, absent=np.ones(len(first), dtype=bool))  # no visible target anywhere

    def get(index: int, grey: bool, luma_contrast: bool):
        return blank if index < 2 else usable(index)

    sampler = PairSampler(SequenceSource(get, "the first two sequences unusable"), CFG, seed=0, config=SAMPLER)
    batch = sampler.batch(0, 2)  # the pool at step 0 holds sequence 0 alone
    assert batch["search"].shape[0] == 2 and torch.isfinite(batch["target_xyxy"]).all()

    never = PairSampler(SequenceSource(lambda index, grey, luma: blank, "none usable"), CFG, seed=0, config=SAMPLER)
    with pytest.raises(RuntimeError, match="no sequence with a visible target in frame 0 and a later frame"):
        never.batch(0, 2)
