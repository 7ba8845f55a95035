"""fartrack-train end to end: a few steps write loadable checkpoints; --resume continues; datasets."""

from __future__ import annotations

import json

import pytest
import torch

from fartrack_ros.cli.train import main
from fartrack_ros.data.got10k import write_got10k
from fartrack_ros.data.synthetic import SyntheticConfig, generate_sequence
from fartrack_ros.model import load_checkpoint
from fartrack_ros.training import latest_checkpoint

SMOKE = ["--config", "test-xs", "--batch-size", "2", "--checkpoint-every", "2", "--no-progress", "--device", "cpu"]


def test_cli_writes_a_loadable_model_and_official_layout_checkpoints(tmp_path):
    assert main(["--out", str(tmp_path), "--steps", "3", "--stage2-steps", "1", *SMOKE]) == 0
    model = load_checkpoint(tmp_path / "final.pth")
    assert model.cfg.name == "test-xs"
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["FARTrackSparse_ep0001.pth.tar", "FARTrackSparse_ep0002.pth.tar"]
    checkpoint = torch.load(latest_checkpoint(tmp_path), map_location="cpu", weights_only=True)
    assert checkpoint["step"] == 4 and checkpoint["epoch"] == 2
    assert checkpoint["metadata"]["command"].startswith("fartrack-train --out")
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [entry["stage"] for entry in log] == [1, 1, 1, 2]


def test_cli_resume_continues_from_the_latest_checkpoint(tmp_path):
    assert main(["--out", str(tmp_path), "--steps", "2", "--stage2-steps", "0", *SMOKE]) == 0
    # the stored settings win: the resumed run is already complete and adds no step
    assert main(["--out", str(tmp_path), "--resume", "--steps", "9", *SMOKE]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 2


def test_cli_trains_from_a_checkpoint_on_a_got10k_folder(tmp_path):
    first = tmp_path / "first"
    assert main(["--out", str(first), "--steps", "1", "--stage2-steps", "0", *SMOKE]) == 0
    data = tmp_path / "got10k"
    for seed in (5, 6):
        write_got10k(generate_sequence(seed, SyntheticConfig(width=96, height=80, min_length=6, max_length=8)), data)
    out = tmp_path / "second"
    argv = ["--out", str(out), "--init", str(first / "final.pth"), "--dataset", str(data), "--steps", "2",
            "--stage2-steps", "0", "--batch-size", "2", "--no-progress"]
    assert main(argv) == 0
    assert load_checkpoint(out / "final.pth").cfg.name == "test-xs"


def test_a_new_run_refuses_a_folder_that_holds_one(tmp_path):
    assert main(["--out", str(tmp_path), "--steps", "2", "--stage2-steps", "0", *SMOKE]) == 0
    before = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    with pytest.raises(SystemExit, match="already holds a run .* continue it with --resume"):
        main(["--out", str(tmp_path), "--steps", "1", "--stage2-steps", "0", *SMOKE])
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == before


def test_a_dataset_without_later_visible_frames_is_a_clear_error(tmp_path):
    data = tmp_path / "got10k_test_split"
    sequence = generate_sequence(5, SyntheticConfig(width=96, height=80, min_length=6, max_length=6))
    write_got10k(sequence, data)
    for folder in data.iterdir():  # a test split: the first box only, no labels
        if folder.is_dir():
            (folder / "groundtruth.txt").write_text((folder / "groundtruth.txt").read_text().splitlines()[0] + "\n")
            for label in folder.glob("*.label"):
                label.unlink()
    with pytest.raises(SystemExit, match="nothing to train on"):
        main(["--out", str(tmp_path / "run"), "--dataset", str(data), "--steps", "1", "--stage2-steps", "0", *SMOKE])


def test_stage_two_alone_trains_and_no_steps_at_all_is_refused(tmp_path):
    assert main(["--out", str(tmp_path / "s2"), "--steps", "0", "--stage2-steps", "1", *SMOKE]) == 0
    assert load_checkpoint(tmp_path / "s2" / "final.pth").cfg.name == "test-xs"
    for resume in ([], ["--resume"]):  # --resume with no checkpoint starts a new run: the same rule
        with pytest.raises(SystemExit, match="nothing to train"):
            main(["--out", str(tmp_path / "none"), "--steps", "0", "--stage2-steps", "0", *resume, *SMOKE])
