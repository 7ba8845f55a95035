"""make demo's driver: frame numbering from the init stamp, and a short end-to-end run."""

import re
import subprocess
import sys

import pytest

from node_helpers import REPO, needs_bundled_model, pick_domain_id, ros_env, weights_for_tests

from fartrack_ros.demo import DemoRecorder, _index_of, _published


def _recorder(first, later):
    recorder = DemoRecorder(first_stamp=first)
    recorder.later_stamps = sorted(later)
    return recorder


def test_frames_are_numbered_from_the_init_stamp():
    recorder = _recorder(100, [100, 110, 120, 130])

    assert [_index_of(recorder, s) for s in (100, 110, 120, 130)] == [0, 1, 2, 3]
    assert _published(recorder) == 4


def test_a_missed_first_frame_does_not_shift_the_numbering():
    recorder = _recorder(100, [110, 120])

    assert _index_of(recorder, 100) == 0 and _index_of(recorder, 120) == 2


def test_numbers_are_unknown_before_the_init_or_for_unseen_stamps():
    assert _index_of(DemoRecorder(), 110) is None
    assert _index_of(_recorder(100, [110]), 115) is None
    assert _index_of(_recorder(100, [110]), 90) is None


def _run_demo(*options: str) -> subprocess.CompletedProcess:
    """A 12-frame demo in processes of its own (run once per module: `demo_run`, `mono_demo_run`)."""
    return subprocess.run(
        [sys.executable, "-m", "fartrack_ros.demo", "--frames", "12", "--rate", "10", "--device", "cpu",
         "--weights", str(weights_for_tests()), "--timeout", "90", *options],
        env=ros_env(pick_domain_id()), cwd=REPO, capture_output=True, text=True, timeout=150)


def _output(result: subprocess.CompletedProcess) -> str:
    """The output of a demo that must have succeeded."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


@pytest.fixture(scope="module")
def demo_run() -> subprocess.CompletedProcess:
    return _run_demo()


@pytest.fixture(scope="module")
def mono_demo_run() -> subprocess.CompletedProcess:
    return _run_demo("--mono")


def _summary_ao(output: str) -> float:
    """The summary's AO, checked against the mean of the per-frame IoUs the demo printed (a frame
    with the target visible but no box counts 0)."""
    ao = float(re.search(r"accuracy +AO ([\d.]+)", output).group(1))
    ious = [0.0 if lost else float(value) for lost, value in
            re.findall(r"^frame +\d+ +(\(lost: no detection\))?.*IoU +([\d.]+|--)", output, re.M) if value != "--"
            or lost]
    assert ious and abs(ao - sum(ious) / len(ious)) <= 0.006, (ao, ious)
    return ao


@pytest.mark.ros
@pytest.mark.slow
def test_the_demo_runs_node_and_publisher_and_prints_a_summary(demo_run):
    output = _output(demo_run)

    assert "[node]" in output and "[publisher]" in output  # separate processes
    # Images travel best-effort (as from a camera driver), so a loaded machine may lose one or two
    # of the 11 frames after the init; most must come back as boxes with a latency.
    tracked = re.findall(r"^frame +\d+ +x= .* latency +[\d.]+ ms", output, re.M)
    assert len(tracked) >= 8, output
    summary = output[output.index("=== FARTrack demo summary ==="):]
    assert re.search(r"frames +published 1[012] ", summary), summary
    for field in ("rate", "p50", "p95", "AO", "model"):
        assert field in summary, field
    _summary_ao(output)


@pytest.mark.ros
@pytest.mark.slow
@needs_bundled_model
def test_the_bundled_model_tracks_the_demo_target(demo_run):
    output = _output(demo_run)

    assert _summary_ao(output) >= 0.6, output


@pytest.mark.ros
@pytest.mark.slow
def test_the_demo_plays_a_mono_camera(mono_demo_run):
    output = _output(mono_demo_run)

    assert "mono8 images of a scene drawn for a mono camera" in output
    _summary_ao(output)


@pytest.mark.ros
@pytest.mark.slow
@needs_bundled_model
def test_the_bundled_model_tracks_the_mono_demo_target(mono_demo_run):
    output = _output(mono_demo_run)  # the bundled model learned grey

    assert _summary_ao(output) >= 0.6, output


def test_the_mono_demo_refuses_compressed_transport(capsys):
    from fartrack_ros.demo import main

    with pytest.raises(SystemExit):
        main(["--mono", "--transport", "compressed"])
    assert "--mono publishes raw mono8 images" in capsys.readouterr().err


@pytest.mark.ros
def test_a_node_that_cannot_start_fails_the_demo_with_its_reason_and_no_traceback(tmp_path):
    (tmp_path / "cut.pth").write_bytes(weights_for_tests().read_bytes()[:4096])
    result = subprocess.run(
        [sys.executable, "-m", "fartrack_ros.demo", "--frames", "12", "--device", "cpu",
         "--weights", str(tmp_path / "cut.pth"), "--timeout", "90"],
        env=ros_env(pick_domain_id()), cwd=REPO, capture_output=True, text=True, timeout=150)
    output = result.stdout + result.stderr

    assert result.returncode == 1, output
    assert f"weights file {tmp_path / 'cut.pth'} is cut short or damaged" in output
    assert "demo: fartrack_node exited early" in output
    assert "Traceback" not in output and "[publisher]" not in output, output
