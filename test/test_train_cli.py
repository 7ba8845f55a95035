"""fartrack-train end to end: a few steps write loadable checkpoints; --resume continues; datasets."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import torch

from fartrack_ros.cli.train import main
from fartrack_ros.data.got10k import write_got10k
from fartrack_ros.data.synthetic import SyntheticConfig, generate_sequence
from fartrack_ros.model import load_checkpoint
from fartrack_ros.training import TrainConfig, latest_checkpoint

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


def test_keep_checkpoints_keeps_the_newest_n(tmp_path):
    argv = ["--out", str(tmp_path), "--stage2-steps", "0", "--keep-checkpoints", "2", *SMOKE]
    assert main([*argv, "--steps", "5"]) == 0
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["FARTrackSparse_ep0002.pth.tar", "FARTrackSparse_ep0003.pth.tar"]
    assert torch.load(latest_checkpoint(tmp_path), weights_only=True)["step"] == 5


def test_a_folder_that_existed_is_kept_when_the_run_cannot_start(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["--out", str(tmp_path / "run"), *SMOKE, "--device", "gpu"]) == 1
    assert (tmp_path / "run").is_dir()


def test_the_grey_fraction_is_a_setting_of_the_run(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "a"), "--steps", "1", "--stage2-steps", "0", "--grey-fraction", "0.5",
                 *SMOKE]) == 0
    stored = torch.load(tmp_path / "a" / "final.pth", weights_only=True)["train_config"]
    assert stored["grey_fraction"] == 0.5
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "b"), "--grey-fraction", "1.5", *SMOKE])
    assert "expected a number in [0, 1], got '1.5'" in capsys.readouterr().err


def test_self_distillation_is_a_setting_of_the_run_and_logs_its_layer_to_layer_divergence(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "a"), "--steps", "2", "--stage2-steps", "1", "--self-distill-from", "1",
                 *SMOKE]) == 0
    stored = torch.load(tmp_path / "a" / "final.pth", weights_only=True)["train_config"]
    assert stored["self_distill_from"] == 1
    log = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert all(entry["distill_kl"] >= 0 and 0 <= entry["shallowest_iou"] <= 1 for entry in log)  # both stages

    assert main(["--out", str(tmp_path / "b"), "--self-distill-from", "2", *SMOKE]) == 1
    assert "self_distill_from 2 must be below the model's 2 layers" in capsys.readouterr().err


def test_cli_resume_continues_from_the_latest_checkpoint(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--steps", "2", "--stage2-steps", "0", *SMOKE]) == 0
    capsys.readouterr()
    # the stored settings win: the resumed run is already complete and adds no step
    assert main(["--out", str(tmp_path), "--resume", "--steps", "9", *SMOKE]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 2
    err = capsys.readouterr().err
    assert "ignored: --steps 9 (the run has 2)" in err and "--config" not in err  # the run's own model
    assert main(["--out", str(tmp_path), "--resume", "--config", "bundled-s", "--seed", "3", *SMOKE[2:]]) == 0
    err = capsys.readouterr().err
    assert "--config bundled-s (the run's model is test-xs)" in err and "--seed 3 (the run has 0)" in err
    assert main(["--out", str(tmp_path / "s5"), "--seed", "5", "--steps", "1", "--stage2-steps", "0", *SMOKE]) == 0
    capsys.readouterr()
    assert main(["--out", str(tmp_path / "s5"), "--resume", *SMOKE]) == 0
    assert "--seed" not in capsys.readouterr().err  # not given: nothing ignored
    (resume,) = torch.load(tmp_path / "final.pth", weights_only=True)["metadata"]["resumes"]
    assert resume["at_step"] == 2 and "--resume" in resume["command"] and "torch threads" in resume["hardware"]


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
    digest = hashlib.sha256((first / "final.pth").read_bytes()).hexdigest()
    origin = torch.load(out / "final.pth", weights_only=True)["metadata"]["origin"]
    assert origin == f"init {first / 'final.pth'} (sha256 {digest})"


def test_training_on_generated_held_out_sequences_is_warned(tmp_path, capsys):
    data = tmp_path / "got10k"
    for seed in (7, 1_000_000):  # a training seed and the first of fartrack-eval's default set
        write_got10k(generate_sequence(seed, SyntheticConfig(width=96, height=80, min_length=6, max_length=8)), data)
    argv = ["--out", str(tmp_path / "run"), "--dataset", str(data), "--steps", "1", "--stage2-steps", "0", *SMOKE]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "fartrack-train: warning: 1 of the 2 sequences in " in err and "e.g. synthetic_01000000" in err


def _error_line(capsys) -> str:
    """The one line a failed run printed on stderr (no traceback)."""
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fartrack-train: error: "), lines
    return lines[0]


def test_a_new_run_refuses_a_folder_that_holds_one(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--steps", "2", "--stage2-steps", "0", *SMOKE]) == 0
    before = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    capsys.readouterr()
    assert main(["--out", str(tmp_path), "--steps", "1", "--stage2-steps", "0", *SMOKE]) == 1
    assert re.search("already holds a run .* continue it with --resume", _error_line(capsys))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == before


def test_a_dataset_without_later_visible_frames_is_a_clear_error(tmp_path, capsys):
    data = tmp_path / "got10k_test_split"
    sequence = generate_sequence(5, SyntheticConfig(width=96, height=80, min_length=6, max_length=6))
    write_got10k(sequence, data)
    for folder in data.iterdir():  # a test split: the first box only, no labels
        if folder.is_dir():
            (folder / "groundtruth.txt").write_text((folder / "groundtruth.txt").read_text().splitlines()[0] + "\n")
            for label in folder.glob("*.label"):
                label.unlink()
    assert main(["--out", str(tmp_path / "run"), "--dataset", str(data), "--steps", "1", "--stage2-steps", "0",
                 *SMOKE]) == 1
    assert "nothing to train on" in _error_line(capsys)
    assert not (tmp_path / "run").exists()  # a run that never started leaves no empty folder behind
    assert main(["--out", str(tmp_path / "runs" / "a" / "run"), "--dataset", str(data), "--steps", "1",
                 "--stage2-steps", "0", *SMOKE]) == 1
    assert not (tmp_path / "runs").exists()  # nor the parents it made for it


def test_stage_two_alone_trains_and_no_steps_at_all_is_refused(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "s2"), "--steps", "0", "--stage2-steps", "1", *SMOKE]) == 0
    assert load_checkpoint(tmp_path / "s2" / "final.pth").cfg.name == "test-xs"
    capsys.readouterr()
    for resume in ([], ["--resume"]):  # --resume with no checkpoint starts a new run: the same rule
        assert main(["--out", str(tmp_path / "none"), "--steps", "0", "--stage2-steps", "0", *resume, *SMOKE]) == 1
        assert "nothing to train" in capsys.readouterr().err
        assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("init", ["missing.pth", "truncated.pth"])
def test_an_unusable_init_checkpoint_is_a_one_line_error(tmp_path, capsys, init):
    torch.save({"net": {"w": torch.zeros(1000)}}, tmp_path / "whole.pth")
    (tmp_path / "truncated.pth").write_bytes((tmp_path / "whole.pth").read_bytes()[:500])

    code = main(["--out", str(tmp_path / "run"), "--init", str(tmp_path / init), *SMOKE[2:]])

    assert code == 1
    assert f"{tmp_path / init}" in _error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_an_unknown_device_is_a_one_line_error(tmp_path, capsys):
    assert main(["--out", str(tmp_path), *SMOKE, "--device", "gpu"]) == 1
    assert "invalid device 'gpu'" in _error_line(capsys)


def test_resuming_from_a_truncated_checkpoint_says_which_and_what_to_do(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--steps", "2", "--stage2-steps", "0", *SMOKE]) == 0
    latest = latest_checkpoint(tmp_path)
    latest.write_bytes(latest.read_bytes()[:4096])
    capsys.readouterr()

    assert main(["--out", str(tmp_path), "--resume", *SMOKE]) == 1
    line = _error_line(capsys)
    assert str(latest) in line and "delete it to resume from the checkpoint before it" in line


@pytest.mark.parametrize("out", ["a_file", "a_file/run"])
def test_an_out_that_cannot_be_a_folder_is_a_one_line_error(tmp_path, capsys, out):
    (tmp_path / "a_file").write_text("not a folder")

    assert main(["--out", str(tmp_path / out), *SMOKE]) == 1
    assert f"cannot make the run folder --out {tmp_path / out}" in _error_line(capsys)


def test_ctrl_c_stops_after_the_current_step_with_a_checkpoint_of_it_and_says_how_to_resume(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "fartrack_ros.cli.train", "--out", str(tmp_path), "--steps", "100000",
               "--stage2-steps", "0", *SMOKE[:4], "--checkpoint-every", "100000", "--no-progress", "--device", "cpu"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "train_log.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (log.is_file() and log.stat().st_size > 0):
        time.sleep(0.2)  # the log is written line by line
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)

    assert process.returncode == 130, err
    assert "Traceback" not in err and f"continue with fartrack-train --out {tmp_path} --resume" in err
    checkpoint = torch.load(latest_checkpoint(tmp_path), map_location="cpu", weights_only=True)
    logged = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert checkpoint["step"] == logged[-1] > 0 and f"step {logged[-1]} saved" in err


def test_an_empty_init_fine_tunes_the_bundled_model_at_the_fine_tuning_lr(tmp_path):
    from fartrack_ros.cli.train import FINE_TUNE_LR
    from fartrack_ros.model import DEFAULT_WEIGHTS_PATH

    assert main(["--out", str(tmp_path / "ft"), "--init", "", "--steps", "1", "--stage2-steps", "0",
                 "--batch-size", "2", "--no-progress", "--device", "cpu"]) == 0
    stored = torch.load(tmp_path / "ft" / "final.pth", weights_only=True)
    assert stored["train_config"]["lr"] == FINE_TUNE_LR < TrainConfig().lr
    assert stored["train_config"]["self_distill_from"] == 3  # the bundled model's: its 3-layer cut keeps tracking
    assert stored["metadata"]["origin"].startswith(f"init {DEFAULT_WEIGHTS_PATH} (sha256 ")
    assert main(["--out", str(tmp_path / "lr"), "--init", "", "--lr", "3e-4", "--steps", "1", "--stage2-steps", "0",
                 "--batch-size", "2", "--no-progress", "--device", "cpu"]) == 0
    assert torch.load(tmp_path / "lr" / "final.pth", weights_only=True)["train_config"]["lr"] == 3e-4


def _got10k_data(folder, seeds=(5, 6)):
    for seed in seeds:
        write_got10k(generate_sequence(seed, SyntheticConfig(width=96, height=80, min_length=6, max_length=8)), folder)
    return sorted(p for p in folder.iterdir() if p.is_dir())


def test_sequences_that_cannot_give_a_sample_are_left_out_whatever_the_seed(tmp_path, capsys):
    _, unusable = _got10k_data(tmp_path / "got10k")
    lines = (unusable / "groundtruth.txt").read_text().splitlines()
    (unusable / "groundtruth.txt").write_text("\n".join(["0,0,0,0", *lines[1:]]) + "\n")  # no target in frame 1

    for seed in range(4):  # the sequence each seed draws first differs
        argv = ["--out", str(tmp_path / f"run{seed}"), "--dataset", str(tmp_path / "got10k"), "--seed", str(seed),
                "--steps", "2", "--stage2-steps", "0", *SMOKE]
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert f"1 of the 2 sequences in {tmp_path / 'got10k'} are left out, e.g. {unusable.name}" in err


def test_a_resumed_run_reads_its_dataset_where_it_moved(tmp_path, capsys):
    _got10k_data(tmp_path / "data")
    out = tmp_path / "run"
    assert main(["--out", str(out), "--dataset", str(tmp_path / "data"), "--steps", "4", "--stage2-steps", "0",
                 "--checkpoint-every", "2", *SMOKE[:4], "--no-progress", "--device", "cpu"]) == 0
    uninterrupted = torch.load(out / "final.pth", weights_only=True)["net"]
    (out / "final.pth").unlink()
    (out / "checkpoints" / "FARTrackSparse_ep0002.pth.tar").unlink()  # back to step 2
    (tmp_path / "data").rename(tmp_path / "moved")
    capsys.readouterr()

    assert main(["--out", str(out), "--resume", *SMOKE]) == 1
    assert f"the run's dataset folder {tmp_path / 'data'} is gone; if it moved, give its new place with " \
           "--dataset" in _error_line(capsys)
    assert main(["--out", str(out), "--resume", "--dataset", str(tmp_path / "moved"), *SMOKE]) == 0
    assert f"reading the run's dataset from {tmp_path / 'moved'}" in capsys.readouterr().err
    resumed = torch.load(out / "final.pth", weights_only=True)
    assert resumed["metadata"]["data"] == str(tmp_path / "moved")
    for key, value in uninterrupted.items():  # the same data moved: the same batches, the same weights
        assert torch.equal(resumed["net"][key], value), key


def test_a_run_that_fails_before_its_first_checkpoint_can_be_started_again(tmp_path, capsys):
    folders = _got10k_data(tmp_path / "got10k")
    frames = {frame: frame.read_bytes() for folder in folders for frame in folder.glob("*.jpg")}
    for frame in frames:
        frame.write_bytes(b"")  # unreadable: the first batch fails
    argv = ["--out", str(tmp_path / "run"), "--dataset", str(tmp_path / "got10k"), "--steps", "2",
            "--stage2-steps", "0", *SMOKE]
    assert main(argv) == 1
    assert "cannot read image" in _error_line(capsys)
    assert not (tmp_path / "run").exists()
    for frame, data in frames.items():
        frame.write_bytes(data)
    assert main(argv) == 0


def test_a_full_disk_at_the_first_checkpoint_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    """torch reports a full disk as a RuntimeError of its zip writer, after a part of the file."""
    def full_disk(payload, path):
        with open(path, "wb") as part:
            part.write(b"PK\x03\x04 part of a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 601088 vs 600976")

    monkeypatch.setattr(torch, "save", full_disk)
    argv = ["--out", str(tmp_path / "run"), "--steps", "2", "--stage2-steps", "0", *SMOKE]
    assert main(argv) == 1
    line = _error_line(capsys)
    assert "cannot write checkpoint " in line and "unexpected pos 601088" in line
    assert not (tmp_path / "run").exists()  # no .tmp left: the run's folders go, as for any failed start


def test_a_read_only_out_that_exists_is_one_line(tmp_path, capsys, monkeypatch):
    import pathlib

    out = tmp_path / "run"
    out.mkdir()
    real_open = pathlib.Path.open

    def read_only(self, *args, **kwargs):
        if self.parent == out and self.name == "train_log.jsonl":
            raise OSError(30, "Read-only file system", str(self))
        return real_open(self, *args, **kwargs)

    real_unlink = pathlib.Path.unlink

    def unlink(self, *args, **kwargs):
        if self.parent == out:
            raise OSError(30, "Read-only file system", str(self))
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", read_only)
    monkeypatch.setattr(pathlib.Path, "unlink", unlink)
    assert main(["--out", str(out), "--steps", "2", "--stage2-steps", "0", *SMOKE]) == 1
    assert "Read-only file system" in _error_line(capsys)
