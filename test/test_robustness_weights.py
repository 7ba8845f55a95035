"""Faults at configure: weights missing, corrupt, of the wrong layout or the wrong variant, a
checkpoint carrying a pickle payload, CUDA asked for where there is none, bad start parameters.

A managed node (one process for the module) must refuse each bad configure, say why in its log and
stay unconfigured; after all of them, good weights still configure, activate and track. The plain
executable must exit non-zero with a one-line reason (no traceback, no hang). Checkpoints are
untrusted: the payload's os.mkdir must never run (its marker folder must not appear).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import torch
from lifecycle_msgs.msg import State, Transition

from node_helpers import (
    NODE_NAME,
    NodeProcess,
    node_executable,
    pick_domain_id,
    ros_env,
    running_node,
    start_targets,
    weights_for_tests,
)
from robustness_helpers import ANCHOR_BOX, Stamps, scene, wait_for_log

pytestmark = [pytest.mark.ros, pytest.mark.slow]
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
CUDA_WARNING = "device 'cuda' requested but no CUDA device is available: running on CPU"


class Payload:
    """Unpickling this calls os.mkdir(marker): the shape of every pickle exploit."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.fixture(scope="module")
def bad_weights(tmp_path_factory):
    """name -> (weights path, variant, text the refusal must contain); plus the payload's marker."""
    from fartrack_ros.model import build_model, save_checkpoint, variant_config

    folder = tmp_path_factory.mktemp("weights")
    good = weights_for_tests()
    state = torch.load(good, map_location="cpu", weights_only=True)
    corrupt = folder / "truncated.pth"
    corrupt.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    layout = folder / "no_net.pth"
    torch.save({"state_dict": state["net"], "epoch": 3}, layout)
    pico = folder / "pico6.pth"
    save_checkpoint(build_model(variant_config("pico")), pico)  # 6 layers, random weights
    marker = folder / "payload_ran"
    evil = folder / "evil.pth"
    torch.save({"net": state["net"], "settings": Payload(str(marker))}, evil)
    cases = {
        "missing": (folder / "missing.pth", "", f"weights file not found: {folder / 'missing.pth'}"),
        "corrupt": (corrupt, "", f"weights file {corrupt} is cut short or damaged"),
        "wrong-layout": (layout, "", "is not in the FARTrack checkpoint layout: expected a dict with the "
                                     "weights under 'net' (or a bare state dict of tensors), found keys "
                                     "['epoch', 'state_dict']"),
        "wrong-variant": (pico, "tiny", "variant 'tiny' needs 15 layers but the checkpoint has only 6"),
        "pickle-payload": (evil, "", f"refusing to load {evil}: checkpoint tries to call posix.mkdir"),
    }
    yield cases, marker
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def managed():
    with running_node({"weights": "/nonexistent/start.pth", "device": "cpu"}, extra_args=["--managed"],
                      connect=None) as pair:
        yield pair


def _configure_refused(node, probe, reason: str, **parameters) -> None:
    """Set ``parameters``, ask to configure: refused, the reason logged, still unconfigured."""
    assert probe.lifecycle_state() == State.PRIMARY_STATE_UNCONFIGURED
    assert all(result.successful for result in probe.set_parameters(**parameters))
    since = len(node.log_text())

    assert not probe.transition(Transition.TRANSITION_CONFIGURE)

    assert wait_for_log(node, since, "configure failed: "), node.log_text()[-3000:]
    assert reason in node.log_text()[since:], node.log_text()[since:]
    assert probe.lifecycle_state() == State.PRIMARY_STATE_UNCONFIGURED
    assert node.alive() and "Traceback" not in node.log_text()


@pytest.mark.parametrize("case", ["missing", "corrupt", "wrong-layout", "wrong-variant", "pickle-payload"])
def test_bad_weights_are_refused_at_configure_and_the_node_stays_unconfigured(managed, bad_weights, case):
    node, probe = managed
    cases, marker = bad_weights
    path, variant, reason = cases[case]

    _configure_refused(node, probe, reason, weights=str(path), variant=variant, device="cpu")

    assert not marker.exists(), "the checkpoint's pickled code ran"


@no_cuda
def test_cuda_with_device_strict_is_refused_at_configure(managed):
    node, probe = managed

    _configure_refused(node, probe, "device 'cuda' requested but no CUDA device is available "
                       "(device_strict is set)", weights=str(weights_for_tests()), variant="",
                       device="cuda", device_strict=True)


@no_cuda
def test_cuda_without_cuda_warns_once_then_configures_on_cpu_and_tracks(managed):
    node, probe = managed
    since = len(node.log_text())
    assert all(r.successful for r in probe.set_parameters(
        weights=str(weights_for_tests()), variant="", device="cuda", device_strict=False))

    assert probe.transition(Transition.TRANSITION_CONFIGURE), node.log_text()[-3000:]
    assert probe.transition(Transition.TRANSITION_ACTIVATE)
    probe.wait_until_connected(node)
    stamps = Stamps()
    detections = start_targets(probe, scene(0), stamps(), [("anchor", ANCHOR_BOX)], scene(2), stamps())

    log = node.log_text()[since:]
    assert log.count("CUDA") == 1 and CUDA_WARNING in log, log
    assert "[WARN]" in next(line for line in log.splitlines() if CUDA_WARNING in line)
    assert re.search(r" on cpu \(\d+ threads?\): loaded in", log), log
    assert detections is not None and [d.id for d in detections.detections] == ["anchor"]
    status = probe.wait_for("status", lambda m: m.targets, timeout=5.0)
    assert status is not None and status.device == "cpu"
    assert probe.transition(Transition.TRANSITION_DEACTIVATE)
    assert probe.transition(Transition.TRANSITION_CLEANUP)
    assert probe.lifecycle_state() == State.PRIMARY_STATE_UNCONFIGURED


# --- the plain executable -----------------------------------------------------------------------


def _run_plain(parameters: dict, timeout: float = 90.0, remaps: dict | None = None) -> tuple[int, str]:
    node = NodeProcess(pick_domain_id(), parameters=parameters, remaps=remaps)
    try:
        code = node.process.wait(timeout)
    except subprocess.TimeoutExpired:
        node.stop()
        pytest.fail(f"fartrack_node did not exit within {timeout} s:\n{node.log_text()}")
    text = node.log_text()
    node.stop()
    return code, text


@pytest.mark.parametrize("case, expected_code", [
    ("missing", 1), ("pickle-payload", 1), ("invalid-parameter", 2), ("out-of-range", 2), ("cuda-strict", 1),
])
def test_plain_executable_exits_non_zero_with_the_reason(bad_weights, case, expected_code):
    cases, marker = bad_weights
    if case == "cuda-strict":
        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
        parameters = {"device": "cuda", "device_strict": True, "weights": str(weights_for_tests())}
        reason = "configure failed: device 'cuda' requested but no CUDA device is available"
    elif case == "invalid-parameter":
        parameters = {"device": "gpu", "weights": str(weights_for_tests())}
        reason = "not started: invalid parameter: "
    elif case == "out-of-range":  # refused by rclpy's own range check, which repeats the name at the end
        parameters = {"lost_threshold": 2.5, "weights": str(weights_for_tests())}
        reason = "Parameter lost_threshold out of range Min: 0.0, Max: 1.0, value: 2.5\n"
    else:
        path, _, refusal = cases[case]
        parameters = {"device": "cpu", "weights": str(path)}
        reason = "configure failed: " + refusal

    started = time.monotonic()
    code, output = _run_plain(parameters, remaps={"__ns": "/cam_left"})

    assert code == expected_code, output
    assert reason in output, output
    assert "Traceback" not in output, output
    assert time.monotonic() - started < 60.0
    assert not marker.exists()
    if case == "invalid-parameter":
        assert "device='gpu' is not valid: use auto, cpu, cuda or cuda:N" in output
        # the node's own name, which tells one of several nodes apart, although the node never existed
        assert f"[cam_left.{NODE_NAME}]: not started: invalid parameter" in output, output


def test_a_missing_params_file_stops_the_start_with_one_line_not_a_traceback(tmp_path):
    done = subprocess.run([sys.executable, str(node_executable()), "--ros-args", "-r", "__ns:=/cam_left",
                           "--params-file", str(tmp_path / "missing.yaml")],
                          env=ros_env(pick_domain_id()), capture_output=True, text=True, timeout=60)

    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "[cam_left.fartrack]: not started: invalid ROS arguments: " in output and "missing.yaml" in output, output
    assert "Traceback" not in output, output
