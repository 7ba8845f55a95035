"""fartrack-eval and fartrack-make-data end to end, with the fast OpenCV trackers on short sequences."""

import json

import pytest

from fartrack_ros.cli import evaluate, make_data

SHORT_SEQUENCES = ["--min-length", "12", "--max-length", "12"]


def test_eval_prints_one_table_row_per_tracker_and_writes_the_plot(tmp_path, capsys):
    plot, report = tmp_path / "success.png", tmp_path / "scores.json"
    code = evaluate.main(["--synthetic", "2", "--trackers", "csrt,kcf", "--max-frames", "15",
                          "--plot", str(plot), "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("tracker"))
    assert lines[header].split() == ["tracker", "AO", "SR0.5", "SR0.75", "AUC", "Prec@20", "FPS"]
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


def test_eval_rejects_an_unknown_tracker_with_the_choices(capsys):
    assert evaluate.main(["--synthetic", "1", "--trackers", "siamfc"]) == 2
    assert "unknown tracker 'siamfc'" in capsys.readouterr().err


def test_eval_warns_when_the_synthetic_seeds_are_training_seeds(capsys):
    assert evaluate.main(["--synthetic", "1", "--seed-base", "5", "--trackers", "kcf", "--max-frames", "3"]) == 0
    assert "not held out" in capsys.readouterr().err
