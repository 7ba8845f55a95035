"""The executor parameter: executor:=events spins rclpy's EventsExecutor where rclpy has it (else
the node says why not and runs the single-threaded one), and the node tracks either way.

A module of its own: its node must not share the run's ROS domain with another test module's node.
"""

import pytest

from node_helpers import assert_tracks_as_the_library, running_node, weights_for_tests
from robustness_helpers import wait_for_log

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_the_events_executor_tracks_as_the_library():
    from fartrack_ros.executors import has_events_executor

    with running_node({"device": "cpu", "weights": str(weights_for_tests()), "executor": "events"}) as (node, probe):
        assert_tracks_as_the_library(probe, 4_000_000_000_000)

        log = node.log_text()
        assert ("spinning rclpy's EventsExecutor" in log) == has_events_executor()
        assert ("running single_threaded" in log) != has_events_executor()
        since = len(log)
        (result,) = probe.set_parameters(executor="single_threaded")
        assert not result.successful and "read-only" in result.reason
        assert wait_for_log(node, since, "parameter change rejected: executor is read once when the node's "
                                         "process starts")
