"""Parameter changes are checked, logged and put into effect alike on every rclpy: with the pre-,
on- and post-set hooks of Iron and later, and with the on-set hook alone, as Humble's rclpy has."""

from __future__ import annotations

import pytest


class _RecordingLogger:
    """Stands in for the node's logger: keeps what the node says."""

    def __init__(self):
        self.lines: list[str] = []

    def __getattr__(self, level: str):
        return lambda message, **_: self.lines.append(f"{level}: {message}")


@pytest.fixture(params=[True, False], ids=["pre-on-post-set-hooks", "on-set-hook-only"])
def node(request, rclpy_context):
    from rclpy.lifecycle import TransitionCallbackReturn

    from fartrack_ros.node import FarTrackNode

    hooks = request.param

    class Node(FarTrackNode):
        PRE_POST_SET_HOOKS = hooks

        if not hooks:  # as on Humble: these hooks do not exist
            def add_pre_set_parameters_callback(self, callback):
                raise AttributeError("add_pre_set_parameters_callback")

            def add_post_set_parameters_callback(self, callback):
                raise AttributeError("add_post_set_parameters_callback")

    node = Node(context=rclpy_context, managed=True)
    log = _RecordingLogger()
    node.get_logger = lambda: log
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    yield node, log
    node.stop()
    node.destroy_node()


def test_an_accepted_change_takes_effect_with_the_new_values(node):
    from rclpy.parameter import Parameter

    node, _ = node
    results = node.set_parameters([
        Parameter("lost_threshold", value=0.3),
        Parameter("frame_cache_size", value=7),
        Parameter("diagnostics_period", value=0.25),
    ])

    assert [r.successful for r in results] == [True, True, True], [r.reason for r in results]
    assert node._loaded.tracker.config.lost_threshold == 0.3
    assert node._loaded.tracker.config.lost_frames == node.get_parameter("lost_frames").value
    assert node._cache.size == 7
    assert node._diagnostics_timer.timer_period_ns == 250_000_000


def test_a_refused_change_is_logged_with_its_reason_and_changes_nothing(node):
    from rclpy.parameter import Parameter

    node, log = node
    before = node.get_parameter("device").value

    (result,) = node.set_parameters([Parameter("device", value="cuda")])

    assert not result.successful
    assert "device is read when the model is configured" in result.reason
    assert any(line.startswith("warning: parameter change rejected: device is read when the model is "
                               "configured") for line in log.lines), log.lines
    assert node.get_parameter("device").value == before


def test_an_integer_for_a_float_parameter_is_taken_as_that_number(node):
    from rclpy.parameter import Parameter

    node, log = node
    if not node.PRE_POST_SET_HOOKS:
        pytest.skip("Humble's rclpy refuses the type before any hook of the node runs")
    (result,) = node.set_parameters([Parameter("lost_threshold", value=1)])

    assert result.successful, result.reason
    assert node.get_parameter("lost_threshold").value == 1.0
    assert node._loaded.tracker.config.lost_threshold == 1.0
    assert not [line for line in log.lines if line.startswith("warning")], log.lines


def test_integers_given_at_start_for_float_and_string_parameters_start_the_node(rclpy_context):
    from rclpy.parameter import Parameter

    from fartrack_ros.node import FarTrackNode

    node = FarTrackNode(context=rclpy_context, managed=True, parameter_overrides=[
        Parameter("diagnostics_period", value=2), Parameter("lost_threshold", value=0),
        Parameter("variant", value=3)])  # -p variant:=3 reaches the node as an integer
    try:
        assert node.get_parameter("diagnostics_period").value == 2.0
        assert isinstance(node.get_parameter("lost_threshold").value, float)
        assert node.get_parameter("variant").value == "3"
    finally:
        node.stop()
        node.destroy_node()


def test_a_misspelt_start_up_parameter_is_warned_of_with_the_likely_name_and_others_are_not(rclpy_context):
    from rclpy.parameter import Parameter

    from fartrack_ros.node import FarTrackNode

    log = _RecordingLogger()

    class Node(FarTrackNode):
        def get_logger(self):
            return log

    node = Node(context=rclpy_context, managed=True, parameter_overrides=[
        Parameter("lost_treshold", value=0.3), Parameter("lost_frames", value=4), Parameter("camera_frame", value=1),
        Parameter("image_width", value=640), Parameter("image", value="/camera/image_raw")])
    try:
        assert ("warning: parameter 'lost_treshold' given at start is not one of this node's and is ignored "
                "(did you mean 'lost_threshold'?)") in log.lines
        assert not any("'camera_frame'" in line or "'image_width'" in line for line in log.lines)  # other nodes'
        assert ("warning: parameter 'image' given at start is not one of this node's and is ignored: the image "
                "topic is chosen by a remap (-r image:=/camera/image_raw)") in log.lines  # another node's, in a shared /** section
        assert not any("'lost_frames'" in line for line in log.lines)
        assert node.get_parameter("lost_frames").value == 4
    finally:
        node.stop()
        node.destroy_node()
