"""A short soak (the long one is ``fartrack-soak``, 10,000 frames): frames through the node with
two targets, closed loop; the node's RSS must grow less than 5 % after warm-up and every target's
template memory must sit at its cap. A second run sends faster than the node can track: frames
are dropped (and counted), memory still holds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fartrack_ros.soak import SoakConfig, main, run_soak, split_warnings
from node_helpers import FIXTURE_WEIGHTS, weights_for_tests

pytestmark = [pytest.mark.ros, pytest.mark.slow]

WEIGHTS = str(weights_for_tests())
VARIANT = "pico" if weights_for_tests() == FIXTURE_WEIGHTS else ""  # the random fixture is slow as tiny


@pytest.mark.timeout(300)
def test_short_soak_holds_memory_and_the_template_cap(tmp_path, capsys):
    figures = tmp_path / "soak.json"

    code = main(["--frames", "600", "--warmup-frames", "200", "--sample-every", "50", "--template-cap", "8",
                 "--node-threads", "1", "--weights", WEIGHTS, "--variant", VARIANT, "--quiet",
                 "--json", str(figures)])

    table = capsys.readouterr().out
    result = json.loads(figures.read_text())
    assert code == 0 and result["passed"], table
    assert result["frames_sent"] == 600 and result["frames_answered"] >= 594, table
    assert result["growth_pct"] < 5.0, table
    assert result["templates_min"] == result["templates_max"] == 8, table
    assert result["dropped_frames"] == 0, "closed loop: nothing to drop"
    assert result["node_warnings"] == 0 and result["node_exit_code"] == 0, table
    startup = result["warning_lines"][:result["startup_warnings"]]
    assert all("init ignored" in line for line in startup), f"only a lost first frame may be warned of: {startup}"
    for label in ("throughput", "RSS after warm-up (frame 200)", "RSS growth after warm-up",
                  "templates held per target", "min 8 / max 8 (cap 8)", "dropped frames", "PASS"):
        assert label in table


@pytest.mark.timeout(300)
def test_a_camera_faster_than_the_node_drops_frames_and_memory_still_holds():
    config = SoakConfig(frames=400, warmup_frames=150, sample_every=50, template_cap=6, weights=WEIGHTS,
                        variant=VARIANT, rate_hz=400.0, node_threads=1)

    result = run_soak(config)

    assert result.frames_answered < result.frames_sent
    assert result.dropped_frames > 0
    assert result.growth_pct < 5.0
    # how many frames the node gets to depends on the machine's speed; the cap must hold whatever it is
    assert 1 <= result.templates_min <= result.templates_max <= 6
    assert result.node_exit_code == 0


def test_warnings_are_split_at_the_start_of_the_soak_by_their_log_time():
    lines = ["[WARN] [100.5] [fartrack_soak]: init ignored: no image received yet",
             "[INFO] [101.0] [fartrack_soak]: target 'target' started",
             "[ERROR] [102.25] [fartrack_soak]: frame 102.2 not tracked",
             "a traceback line mentioning [WARN] with no time"]

    before, after = split_warnings(lines, started_s=101.0)

    assert before == lines[:1]
    assert after == [lines[2], lines[3]]


def test_outside_a_ros_environment_the_soak_says_what_to_do(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "vision_msgs.msg", None)  # as in a venv without the ROS paths
    assert main(["--frames", "50"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fartrack-soak: error: ROS 2 is not set up") and "tools/ros-run" in err


@pytest.mark.timeout(180)
def test_sigterm_stops_the_soak_and_the_node_it_started(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from node_helpers import REPO, pick_domain_id, ros_env

    soak = subprocess.Popen([sys.executable, "-m", "fartrack_ros.soak", "--frames", "100000", "--weights", WEIGHTS,
                             "--variant", VARIANT, "--quiet"], env=ros_env(pick_domain_id()), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, node = time.monotonic() + 90, None
        while node is None and time.monotonic() < deadline and soak.poll() is None:
            children = (Path("/proc") / str(soak.pid) / "task" / str(soak.pid) / "children").read_text().split()
            node = int(children[0]) if children else None
            time.sleep(0.5)
        assert node is not None, "the soak started no node"
        time.sleep(5.0)  # the node loading and frames flowing
        soak.send_signal(signal.SIGTERM)
        _, err = soak.communicate(timeout=60)
    finally:
        if soak.poll() is None:
            soak.kill()
    assert soak.returncode == 143, err
    assert err.rstrip().endswith("fartrack-soak: stopped by SIGTERM") and "Traceback" not in err, err
    deadline = time.monotonic() + 10
    while Path(f"/proc/{node}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{node}").exists() or "Z" in Path(f"/proc/{node}/stat").read_text().split()[2], \
        "the node outlived its soak"


def test_a_start_sent_again_never_goes_back_in_time():
    """A first frame lost to discovery is sent again with later stamps: a stamp sent again after a
    later one reads as a camera clock gone back, which the node warns of."""
    from types import SimpleNamespace

    from fartrack_ros.node_messages import stamp_to_ns
    from fartrack_ros.soak import _start_targets

    sent, inits = [], []
    status = SimpleNamespace(targets=["a", "b"])

    class Watch:  # the node answers only the second try's frame 1
        last, answered, tries = None, set(), 0

        def wait(self, predicate, timeout):
            self.tries += 1
            if self.tries == 2:
                self.last, self.answered = status, {stamp_to_ns(sent[-1])}
            return predicate()

    image_pub = SimpleNamespace(publish=lambda msg: sent.append(msg.header.stamp))
    init_pub = SimpleNamespace(publish=lambda msg: inits.append(stamp_to_ns(msg.header.stamp)))
    messages = [SimpleNamespace(header=SimpleNamespace(stamp=None)) for _ in range(2)]
    child = SimpleNamespace(process=SimpleNamespace(poll=lambda: None), lines=[])

    targets = [("a", (10.0, 10.0, 20.0, 20.0)), ("b", (50.0, 10.0, 20.0, 20.0))]
    base = _start_targets(child, Watch(), image_pub, init_pub, messages, targets, 1_000_000_000, 10)

    stamps = [stamp_to_ns(stamp) for stamp in sent]
    assert stamps == sorted(set(stamps)) and len(stamps) == 4  # frame 0 and 1, twice, always later
    assert inits == [stamps[0], stamps[2]] and base == stamps[2]
