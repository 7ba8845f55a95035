"""fartrack-eval and fartrack-make-data end to end, with the fast OpenCV trackers on short sequences."""

import json
from dataclasses import replace

import numpy as np
import pytest

from fartrack_ros.cli import evaluate, make_data
from fartrack_ros.model import save_checkpoint
from tracker_helpers import MICRO_CONFIG, random_model

SHORT_SEQUENCES = ["--min-length", "12", "--max-length", "12"]


def test_eval_prints_one_table_row_per_tracker_and_writes_the_plot(tmp_path, capsys):
    plot, report = tmp_path / "success.png", tmp_path / "scores.json"
    code = evaluate.main(["--synthetic", "2", "--trackers", "csrt,kcf", "--max-frames", "15",
                          "--plot", str(plot), "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("tracker"))
    assert lines[header].split() == ["tracker", "AO", "SR0.5", "SR0.75", "AUC", "Prec@20", "NPrec@0.2", "FPS"]
    assert [line.split()[0] for line in lines[header + 2:header + 4]] == ["csrt", "kcf"]
    assert "synthetic seeds 1000000..1000001" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scores = json.loads(report.read_text())["trackers"]
    assert set(scores) == {"csrt", "kcf"} and 0.0 <= scores["csrt"]["ao"] <= 1.0
    assert len(scores["kcf"]["sequence_ao"]) == 2


@pytest.mark.parametrize("layout", ["got10k", "lasot"])
def test_make_data_writes_a_set_that_eval_reads_back(tmp_path, capsys, layout):
    root = tmp_path / layout
    assert make_data.main([str(root), "--count", "2", "--seed-base", "40", "--layout", layout] + SHORT_SEQUENCES) == 0
    assert evaluate.main(["--dataset", str(root), "--trackers", "kcf"]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 sequences" in out and f"2 sequences from {root}" in out


def test_make_data_draws_the_scenes_for_a_mono_camera_when_asked(tmp_path, capsys):
    import cv2

    from fartrack_ros.data.synthetic import SyntheticConfig, generate_sequence

    root = tmp_path / "mono"
    assert make_data.main([str(root), "--count", "1", "--seed-base", "40", "--luma-contrast",
                           "--jpeg-quality", "100"] + SHORT_SEQUENCES) == 0

    (first,) = sorted(root.glob("*/00000001.jpg"))
    written = cv2.cvtColor(cv2.imread(str(first)), cv2.COLOR_BGR2RGB).astype(float)
    config = SyntheticConfig(min_length=12, max_length=12)
    mono, colour = generate_sequence(40, replace(config, luma_contrast=True)), generate_sequence(40, config)
    x, y, w, h = (int(round(v)) for v in mono.boxes[0])
    target = (slice(y, y + h), slice(x, x + w))  # where the two scenes differ most
    assert np.abs(written - mono.frame(0))[target].mean() < 5.0
    assert np.abs(written - colour.frame(0))[target].mean() > 20.0


def test_eval_rejects_an_unknown_tracker_with_the_choices(capsys):
    assert evaluate.main(["--synthetic", "1", "--trackers", "kcf,siamfc"]) == 2
    assert "unknown tracker 'siamfc' in --trackers (choose from fartrack, csrt, kcf)" in capsys.readouterr().err


def test_unusable_weights_are_an_error_as_in_fartrack_track(tmp_path, capsys):
    """exit 1, as for any unusable input file; 2 is for a malformed command line"""
    weights = tmp_path / "cut.pth"
    weights.write_bytes(b"PK\x03\x04 not a whole checkpoint")
    assert evaluate.main(["--synthetic", "1", "--trackers", "fartrack", "--weights", str(weights)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fartrack-eval: error: ") and "cut.pth" in err and "Traceback" not in err


def test_eval_warns_when_the_synthetic_seeds_are_training_seeds(capsys):
    assert evaluate.main(["--synthetic", "1", "--seed-base", "5", "--trackers", "kcf", "--max-frames", "3"]) == 0
    assert "not held out" in capsys.readouterr().err


def _got10k_set(tmp_path, capsys):
    root = tmp_path / "got10k"
    assert make_data.main([str(root), "--count", "1", "--seed-base", "40"] + SHORT_SEQUENCES) == 0
    capsys.readouterr()
    return root, next(p for p in root.iterdir() if p.is_dir())


def test_a_set_with_nothing_to_score_is_an_error_not_a_table_of_zeros(tmp_path, capsys):
    root, sequence = _got10k_set(tmp_path, capsys)
    first = (sequence / "groundtruth.txt").read_text().splitlines()[0]
    (sequence / "groundtruth.txt").write_text(first + "\n")  # a test split: the first box only
    for label in sequence.glob("*.label"):
        label.unlink()
    assert evaluate.main(["--dataset", str(root), "--trackers", "kcf", "--json", str(tmp_path / "s.json")]) == 1
    assert "can be scored" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()


def test_an_unreadable_frame_is_a_one_line_error(tmp_path, capsys):
    root, sequence = _got10k_set(tmp_path, capsys)
    (sequence / "00000005.jpg").write_bytes(b"")
    assert evaluate.main(["--dataset", str(root), "--trackers", "kcf"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fartrack-eval: error: ") and "00000005.jpg" in err and "Traceback" not in err


def test_outputs_are_checked_first_and_json_folders_are_made(tmp_path, capsys):
    assert evaluate.main(["--synthetic", "1", "--trackers", "kcf", "--json", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    report = tmp_path / "new" / "deeper" / "s.json"
    assert evaluate.main(["--synthetic", "1", "--trackers", "kcf", "--max-frames", "6", "--json", str(report)]) == 0
    assert json.loads(report.read_text())["trackers"]["kcf"]["ao"] >= 0.0


def test_a_plot_format_matplotlib_cannot_write_is_refused_before_tracking(tmp_path, capsys):
    report = tmp_path / "s.json"
    code = evaluate.main(["--synthetic", "1", "--trackers", "kcf", "--max-frames", "3", "--plot", str(tmp_path / "p.xyz"),
                          "--json", str(report)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.startswith(f"fartrack-eval: error: cannot write a plot as .xyz ({tmp_path / 'p.xyz'}): "
                                   "end the name with one of ") and ".png" in captured.err
    assert not report.exists()


def test_a_plot_name_without_extension_is_reported_as_the_png_written(tmp_path, capsys):
    assert evaluate.main(["--synthetic", "1", "--trackers", "kcf", "--max-frames", "3",
                          "--plot", str(tmp_path / "success")]) == 0
    assert f"success plot: {tmp_path / 'success.png'}\n" in capsys.readouterr().out
    assert (tmp_path / "success.png").read_bytes()[:4] == b"\x89PNG"


def test_fartrack_warnings_carry_the_tool_name(tmp_path, monkeypatch, capsys):
    """The CUDA fallback is logged by the library; it reads like the tool's other warnings."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    weights = tmp_path / "micro.pth"
    save_checkpoint(random_model(MICRO_CONFIG), weights)
    assert evaluate.main(["--synthetic", "1", "--trackers", "fartrack", "--max-frames", "2", "--weights", str(weights),
                          "--device", "cuda"]) == 0
    assert ("fartrack-eval: warning: device 'cuda' requested but no CUDA device is available: running on CPU\n"
            in capsys.readouterr().err)


@pytest.mark.parametrize("subfolder_before", [[], ["--img-subfolder"]])
def test_make_data_rewriting_a_set_leaves_no_frames_of_the_old_one(tmp_path, capsys, subfolder_before):
    root = tmp_path / "set"
    assert make_data.main([str(root), "--count", "1", "--seed-base", "40", "--min-length", "12", "--max-length", "12",
                           *subfolder_before]) == 0
    capsys.readouterr()
    assert make_data.main([str(root), "--count", "1", "--seed-base", "40", "--min-length", "6", "--max-length", "6"]) == 0
    assert "already holds folders; the new sequences are added among them" in capsys.readouterr().err
    assert evaluate.main(["--dataset", str(root), "--trackers", "kcf"]) == 0
    assert "1 sequences from" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--layout", "lasot", "--class-name", "my-class"], "class name 'my-class' must be a folder name without '-'"),
    (["--layout", "lasot", "--class-name", ".."], "class name '..' must be a folder name"),
    (["--layout", "lasot", "--class-name", ""], "class name '' must be a folder name"),
    (["--layout", "got10k"], "cannot write to"),
])
def test_make_data_errors_are_one_line(tmp_path, capsys, args, message):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert make_data.main([str(blocker / "set"), "--count", "1", *args] + SHORT_SEQUENCES) in (1, 2)
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.fixture
def recorded_frames(monkeypatch) -> list:
    """The frames fartrack-eval hands its trackers, in order (a recording tracker stands in for each)."""
    seen = []

    class Recorder:
        name = "recorder"

        def __init__(self, *args, **kwargs):
            pass

        def init(self, frame_rgb, box_xywh):
            seen.append(frame_rgb)

        def update(self, frame_rgb):
            seen.append(frame_rgb)
            return np.array([10.0, 10.0, 20.0, 20.0])

    monkeypatch.setattr(evaluate, "make_runner", Recorder)
    return seen


@pytest.mark.parametrize("luma_contrast", [False, True])
def test_eval_in_grey_gives_every_tracker_the_grey_frames_of_the_scenes_asked_for(recorded_frames, capsys,
                                                                                 luma_contrast):
    from fartrack_ros.data.synthetic import SyntheticConfig, generate_sequence

    options = ["--luma-contrast"] if luma_contrast else []
    assert evaluate.main(["--synthetic", "2", "--trackers", "kcf", "--max-frames", "4", "--grey", *options]) == 0

    scenes = ", scenes drawn for a mono camera" if luma_contrast else ""
    assert f"synthetic seeds 1000000..1000001{scenes}, in grey;" in capsys.readouterr().out
    config = SyntheticConfig(luma_contrast=luma_contrast)
    expected = [generate_sequence(seed, config, lazy=True).as_grey().frame(index)
                for seed in (1_000_000, 1_000_001) for index in range(4)]
    assert len(recorded_frames) == 8
    assert all(np.array_equal(seen, frame) for seen, frame in zip(recorded_frames, expected))

def test_luma_contrast_on_a_dataset_is_said_to_change_nothing(tmp_path, recorded_frames, capsys):
    root = tmp_path / "set"
    assert make_data.main([str(root), "--count", "1", "--seed-base", "40"] + SHORT_SEQUENCES) == 0
    capsys.readouterr()

    assert evaluate.main(["--dataset", str(root), "--trackers", "kcf", "--max-frames", "3", "--luma-contrast"]) == 0

    captured = capsys.readouterr()
    assert "--luma-contrast applies to generated sequences only" in captured.err
    assert "mono camera" not in captured.out and len(recorded_frames) == 3


def test_the_report_names_the_model_file_and_weights_without_fartrack_are_warned(tmp_path, capsys):
    from fartrack_ros.model import build_model, save_checkpoint
    from fartrack_ros.training import model_config

    save_checkpoint(build_model(model_config("test-xs")), tmp_path / "mine.pth")
    assert evaluate.main(["--synthetic", "1", "--max-frames", "4", "--trackers", "fartrack",
                          "--weights", str(tmp_path / "mine.pth"), "--json", str(tmp_path / "r.json")]) == 0
    described = f"{tmp_path / 'mine.pth'} (test-xs, 2 layers, torch float32)"
    assert f"fartrack: {described}" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["trackers"]["fartrack"]["model"] == described

    assert evaluate.main(["--synthetic", "1", "--max-frames", "4", "--trackers", "kcf",
                          "--weights", str(tmp_path / "mine.pth")]) == 0
    assert "--weights and --variant apply to the fartrack tracker" in capsys.readouterr().err


def test_threads_sets_the_models_cpu_threads(monkeypatch, capsys):
    import torch

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)

    assert evaluate.main(["--synthetic", "1", "--trackers", "kcf", "--max-frames", "3", "--threads", "1"]) == 0
    assert evaluate.main(["--synthetic", "1", "--trackers", "kcf", "--max-frames", "3"]) == 0

    assert calls == [1]  # 0, the default, leaves torch's choice alone


def test_saved_results_in_either_layout_are_scored_beside_the_trackers(tmp_path, capsys):
    from fartrack_ros.data.readers import load_dataset
    from fartrack_ros.evaluation.metrics import SequenceResult, score_results

    root = tmp_path / "got10k"
    assert make_data.main([str(root), "--count", "2", "--seed-base", "40"] + SHORT_SEQUENCES) == 0
    sequences = load_dataset(str(root), "auto")
    perfect, shifted = tmp_path / "perfect", tmp_path / "shifted"
    expected, exact = [], []
    for sequence in sequences:  # the ground truth, pytracking's layout; shifted 3 px, GOT-10k's, timed
        perfect.mkdir(exist_ok=True)
        np.savetxt(perfect / f"{sequence.name}.txt", sequence.boxes, delimiter="\t")
        boxes = sequence.boxes + [3.0, 0.0, 0.0, 0.0]
        (shifted / sequence.name).mkdir(parents=True)
        np.savetxt(shifted / sequence.name / f"{sequence.name}_001.txt", np.vstack([boxes, boxes[:2]]), delimiter=",")
        (shifted / sequence.name / f"{sequence.name}_time.txt").write_text(  # 3 repeats, as the toolkit writes
            "\n".join(["0.5,0.6,0.7"] + ["0.01,0.02,0.03"] * 11))
        pred = boxes.copy()
        pred[0] = sequence.boxes[0]
        expected.append(SequenceResult(sequence.name, pred, sequence.boxes, sequence.absent, sequence.image_size, 0.11))
        exact.append(SequenceResult(sequence.name, sequence.boxes, sequence.boxes, sequence.absent, sequence.image_size))

    code = evaluate.main(["--dataset", str(root), "--trackers", "", "--results", str(perfect),
                          "--results", str(shifted), "--json", str(tmp_path / "scores.json")])

    assert code == 0
    scores = json.loads((tmp_path / "scores.json").read_text())["trackers"]
    assert scores["perfect"]["ao"] == pytest.approx(1.0)
    assert scores["perfect"]["precision"] == pytest.approx(score_results(exact).precision)  # absent frames: misses
    want = score_results(expected)
    assert scores["shifted"]["ao"] == pytest.approx(want.ao) and want.ao < 0.95
    assert scores["shifted"]["success_auc"] == pytest.approx(want.success_auc)
    assert scores["shifted"]["fps"] == pytest.approx(100.0)  # 22 updates in 0.22 s: the init's 0.5 s left out
    assert scores["perfect"]["fps"] is None  # not timed: unknown, not a rate
    table = capsys.readouterr().out
    assert next(line for line in table.splitlines() if line.startswith("perfect")).split()[-1] == "-"

    (shifted / sequences[0].name / f"{sequences[0].name}_time.txt").unlink()  # one sequence untimed
    assert evaluate.main(["--dataset", str(root), "--trackers", "", "--results", str(shifted),
                          "--json", str(tmp_path / "scores.json")]) == 0
    assert json.loads((tmp_path / "scores.json").read_text())["trackers"]["shifted"]["fps"] is None


def test_results_missing_for_a_sequence_name_the_file_expected(tmp_path, capsys):
    root = tmp_path / "got10k"
    assert make_data.main([str(root), "--count", "1", "--seed-base", "40"] + SHORT_SEQUENCES) == 0
    (tmp_path / "empty").mkdir()

    assert evaluate.main(["--dataset", str(root), "--trackers", "kcf", "--results", str(tmp_path / "empty")]) == 1
    captured = capsys.readouterr()
    err = captured.err
    assert "AO" not in captured.out  # refused before any tracking
    assert "no results for sequence" in err and "_001.txt (GOT-10k toolkit)" in err, err


def test_sequences_that_cannot_be_scored_are_left_out_for_every_tracker_before_tracking(tmp_path, capsys):
    root = tmp_path / "got10k"
    assert make_data.main([str(root), "--count", "3", "--seed-base", "40"] + SHORT_SEQUENCES) == 0
    capsys.readouterr()
    good, no_start, test_split = sorted(p for p in root.iterdir() if p.is_dir())
    lines = (no_start / "groundtruth.txt").read_text().splitlines()
    (no_start / "groundtruth.txt").write_text("\n".join(["0,0,0,0", *lines[1:]]) + "\n")  # nothing to start from
    (test_split / "groundtruth.txt").write_text(
        (test_split / "groundtruth.txt").read_text().splitlines()[0] + "\n")  # the first box only
    for label in test_split.glob("*.label"):
        label.unlink()
    perfect = tmp_path / "perfect"
    perfect.mkdir()
    for folder in (good, no_start, test_split):
        (perfect / f"{folder.name}.txt").write_text((folder / "groundtruth.txt").read_text())

    code = evaluate.main(["--dataset", str(root), "--trackers", "kcf", "--results", str(perfect),
                          "--json", str(tmp_path / "s.json")])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"2 of the 3 sequences of {root} are left out, e.g. {no_start.name}: frame 1 has no box" in captured.err
    assert f"1 sequences from {root}" in captured.out
    scores = json.loads((tmp_path / "s.json").read_text())["trackers"]
    assert set(scores["kcf"]["sequence_ao"]) == set(scores["perfect"]["sequence_ao"]) == {good.name}
    assert scores["perfect"]["ao"] == pytest.approx(1.0) and scores["perfect"]["success_auc"] > 0.8


def test_the_library_refuses_a_sequence_it_cannot_score_instead_of_scoring_zeros():
    from fartrack_ros.data.synthetic import SyntheticConfig, generate_sequence
    from fartrack_ros.evaluation.report import evaluate_trackers
    from fartrack_ros.evaluation.runners import make_runner

    sequence = generate_sequence(40, SyntheticConfig(min_length=12, max_length=12))
    sequence.boxes[0] = 0.0
    with pytest.raises(ValueError, match=f"sequence {sequence.name} cannot be scored: frame 1 has no box"):
        evaluate_trackers([make_runner("kcf")], [sequence])
    sequence.boxes[0] = (0.2, 0.3, 0.1, 0.1)  # normalized: FARTrack's tracker refuses it, so no tracker is scored
    with pytest.raises(ValueError, match="frame 1's box cannot start a tracker: box size 0.1x0.1 is under a pixel"):
        evaluate_trackers([make_runner("kcf")], [sequence])


def test_make_data_names_lasot_sequences_by_seed_so_a_second_set_adds_to_the_first(tmp_path, capsys):
    from fartrack_ros.data.synthetic import seed_of

    root = tmp_path / "lasot"
    for seed_base in ("40", "100"):
        assert make_data.main([str(root), "--count", "2", "--seed-base", seed_base, "--layout", "lasot"]
                              + SHORT_SEQUENCES) == 0
    names = sorted(p.name for p in (root / "synthetic").iterdir())
    assert names == ["synthetic-100", "synthetic-101", "synthetic-40", "synthetic-41"]
    assert [seed_of(name) for name in names] == [100, 101, 40, 41]
    assert seed_of("car-20240518") is None and seed_of("airplane-1") is None  # a real LaSOT's names
