"""A running node exits cleanly, with status 0 and no traceback, on one SIGINT (Ctrl-C, the first
signal ros2 launch sends) or one SIGTERM (launch's and systemd's next one), and promptly.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from node_helpers import NodeProcess, pick_domain_id, weights_for_tests
from robustness_helpers import wait_for_log

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _signal_and_wait(node: NodeProcess, signum: int) -> tuple[int, float, str]:
    """Send ``signum`` to the node; (exit status, seconds to exit, its output)."""
    started = time.monotonic()
    node.process.send_signal(signum)
    try:
        code = node.process.wait(timeout=10.0)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the node was still running 10 s after {signal.Signals(signum).name}")
    return code, time.monotonic() - started, node.log_text()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_running_node_exits_zero_promptly_on_one_signal(signum):
    node = NodeProcess(pick_domain_id(), parameters={"weights": str(weights_for_tests()), "device": "cpu"})
    try:
        assert wait_for_log(node, 0, "subscribed to ", timeout=60.0), node.log_text()
        time.sleep(1.0)  # spinning by now

        code, exit_s, output = _signal_and_wait(node, signum)

        assert code == 0, output
        assert "Traceback" not in output, output
        assert exit_s < 3.0, f"{exit_s:.1f} s to exit"
    finally:
        node.stop()


@pytest.mark.parametrize("when", ["importing", "loading the model", "loading + 0.3 s"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_node_starts_is_a_clean_stop(signum, when):
    """A signal at any moment of the start (imports, model loading, configure) exits 0 with no
    traceback: launch and systemd would report anything else as a crash."""
    node = NodeProcess(pick_domain_id(), parameters={"weights": str(weights_for_tests()), "device": "cpu"})
    try:
        if when == "importing":
            time.sleep(0.3)
        else:
            assert wait_for_log(node, 0, "configuring: loading", timeout=60.0), node.log_text()
            time.sleep(0.3 if when.endswith("0.3 s") else 0.0)
        node.process.send_signal(signum)
        code = node.process.wait(timeout=15.0)
        output = node.log_text()
        assert code == 0, output
        assert "Traceback" not in output, output  # (rclpy may log that the transition was cut short)
    finally:
        node.stop()


# The node's main with a model load that takes 60 s and, like CUDA's start-up, ignores signals.
_SLOW_LOAD_NODE = """
import sys, time
import fartrack_ros.node as node
from fartrack_ros.node_main import main
load = node.load_tracker
def slow_load(*args, **kwargs):
    time.sleep(60.0)
    return load(*args, **kwargs)
node.load_tracker = slow_load
sys.exit(main(sys.argv))
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_slow_model_load_exits_without_waiting_for_it(signum):
    """launch sends SIGINT, then SIGTERM after 5 s, then SIGKILL: a node that waited for a slow
    (CUDA) load before exiting would be killed, not stopped."""
    node = NodeProcess(pick_domain_id(), parameters={"weights": str(weights_for_tests()), "device": "cpu"},
                       program=[sys.executable, "-c", _SLOW_LOAD_NODE])
    try:
        assert wait_for_log(node, 0, "configuring: loading", timeout=60.0), node.log_text()
        time.sleep(0.5)
        code, exit_s, output = _signal_and_wait(node, signum)

        assert code == 0, output
        assert "Traceback" not in output, output
        assert "stopped while the model was loading" in output, output
        assert exit_s < 3.0, f"{exit_s:.1f} s to exit"
    finally:
        node.stop()
