"""A running node exits cleanly, with status 0 and no traceback, on one SIGINT (Ctrl-C, the first
signal ros2 launch sends) or one SIGTERM (launch's and systemd's next one), and promptly.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from node_helpers import REPO, pick_domain_id, ros_env, weights_for_tests

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _start() -> subprocess.Popen:
    args = ["--ros-args", "-p", f"weights:={weights_for_tests()}", "-p", "device:=cpu"]
    return subprocess.Popen([sys.executable, "-m", "fartrack_ros.node", *args], env=ros_env(pick_domain_id()),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_line(process: subprocess.Popen, text: str, timeout: float = 60.0) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if text in line:
            return lines
    process.kill()
    raise AssertionError(f"no {text!r} from the node:\n" + "\n".join(lines))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_running_node_exits_zero_promptly_on_one_signal(signum):
    process = _start()
    _wait_for_line(process, "subscribed to ")
    time.sleep(1.0)  # spinning by now

    started = time.monotonic()
    process.send_signal(signum)
    try:
        code = process.wait(timeout=10.0)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"the node was still running 10 s after {signal.Signals(signum).name}")
    exit_s = time.monotonic() - started
    output = process.stdout.read()

    assert code == 0, output
    assert "Traceback" not in output, output
    assert exit_s < 3.0, f"{exit_s:.1f} s to exit"
