"""Managed mode: ``fartrack_node --managed`` driven through the standard lifecycle services
(``~/change_state``, ``~/get_state``) from another process, as a lifecycle manager would.

configure loads the model (parameters read at configure may change only before it), activate
subscribes to images, deactivate unsubscribes (targets are kept), cleanup frees the model.
The transitions run in order in one module-scoped node, so the tests below run in file order.
"""

import time

import numpy as np
import pytest
from lifecycle_msgs.msg import State, Transition

from node_helpers import running_node, start_targets, weights_for_tests

pytestmark = [pytest.mark.ros, pytest.mark.slow]



@pytest.fixture(scope="module")
def ros():
    # Started without usable weights: they are set over the parameter service before configure.
    # a name of its own: in-process managed nodes of earlier modules served the same lifecycle
    # services under the default name, and twice in a full run this node's vanished from the graph
    with running_node({"weights": "/nonexistent/weights.pth", "device": "cpu"}, extra_args=["--managed"],
                      connect=None, node_name="fartrack_lifecycle") as pair:
        yield pair


def _image_subscribers(probe, timeout: float = 3.0, expect: int = 1) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and probe.image_pub.get_subscription_count() != expect:
        time.sleep(0.05)
    return probe.image_pub.get_subscription_count()


def test_a_managed_node_starts_unconfigured_and_not_subscribed(ros):
    node, probe = ros

    assert probe.lifecycle_state() == State.PRIMARY_STATE_UNCONFIGURED, node.log_text()
    assert _image_subscribers(probe, timeout=1.0, expect=0) == 0


def test_configure_fails_with_the_reason_and_stays_unconfigured(ros):
    node, probe = ros

    assert not probe.transition(Transition.TRANSITION_CONFIGURE)

    assert probe.lifecycle_state() == State.PRIMARY_STATE_UNCONFIGURED
    assert "configure failed" in node.log_text() and "/nonexistent/weights.pth" in node.log_text()


def test_model_parameters_may_change_while_unconfigured(ros):
    _, probe = ros

    (result,) = probe.set_parameters(weights=str(weights_for_tests()))

    assert result.successful, result.reason


def test_configure_loads_the_model_without_subscribing(ros):
    node, probe = ros

    assert probe.transition(Transition.TRANSITION_CONFIGURE), node.log_text()

    assert probe.lifecycle_state() == State.PRIMARY_STATE_INACTIVE
    assert "warm-up" in node.log_text()
    assert _image_subscribers(probe, timeout=1.0, expect=0) == 0


def test_model_parameters_are_refused_once_configured(ros):
    _, probe = ros

    (device,) = probe.set_parameters(device="cpu")
    (transport,) = probe.set_parameters(image_transport="compressed")
    (back,) = probe.set_parameters(image_transport="raw")

    assert not device.successful and "clean up" in device.reason
    assert transport.successful and back.successful  # read at activate: fine while inactive


def test_activate_subscribes_and_tracks(ros):
    node, probe = ros

    assert probe.transition(Transition.TRANSITION_ACTIVATE)

    assert probe.lifecycle_state() == State.PRIMARY_STATE_ACTIVE
    assert _image_subscribers(probe, expect=1) == 1
    (transport,) = probe.set_parameters(image_transport="compressed")
    assert not transport.successful and "deactivate" in transport.reason
    probe.wait_until_connected(node)
    frame = np.random.default_rng(0).integers(0, 255, size=(240, 320, 3), dtype=np.uint8)
    detections = start_targets(probe, frame, 5_000_000_000, [("t", (100, 80, 40, 40))], frame,
                               5_033_000_000)
    assert detections is not None and [d.id for d in detections.detections] == ["t"], node.log_text()


def test_deactivate_unsubscribes(ros):
    node, probe = ros

    assert probe.transition(Transition.TRANSITION_DEACTIVATE)

    assert probe.lifecycle_state() == State.PRIMARY_STATE_INACTIVE
    assert _image_subscribers(probe, expect=0) == 0
    assert "deactivated: not subscribed to images; 1 target(s) kept" in node.log_text()


def test_cleanup_returns_to_unconfigured(ros):
    node, probe = ros

    assert probe.transition(Transition.TRANSITION_CLEANUP)

    assert probe.lifecycle_state() == State.PRIMARY_STATE_UNCONFIGURED
    assert "cleanup: released model " in node.log_text() and "; dropped 1 target(s): t" in node.log_text()
    (device,) = probe.set_parameters(device="cpu")
    assert device.successful
    assert node.alive()


def test_cpu_threads_apply_at_the_next_configure(ros):
    node, probe = ros

    (threads,) = probe.set_parameters(cpu_threads=1)
    assert threads.successful, threads.reason
    assert probe.transition(Transition.TRANSITION_CONFIGURE), node.log_text()

    assert probe.lifecycle_state() == State.PRIMARY_STATE_INACTIVE
    assert " on cpu (1 thread): loaded in" in node.log_text(), node.log_text()


def test_a_new_configure_reports_the_new_model_alone_in_diagnostics(ros):
    _, probe = ros
    probe.clear()

    msg = probe.wait_for("diagnostics", lambda m: bool(m.status), timeout=5.0)

    assert msg is not None
    values = {kv.key: kv.value for kv in msg.status[0].values}
    assert values["frames_processed"] == "0" and values["latency_model_p50_ms"] == "nan", values


def test_shutdown_says_what_it_dropped_and_parameters_are_refused_after_it(ros):
    node, probe = ros

    assert probe.transition(Transition.TRANSITION_INACTIVE_SHUTDOWN)

    assert probe.lifecycle_state() == State.PRIMARY_STATE_FINALIZED
    assert "shut down from inactive: released model " in node.log_text()
    (lost_frames,) = probe.set_parameters(lost_frames=4)
    assert not lost_frames.successful and "finalized" in lost_frames.reason
