"""Under simulated time with no /clock (a bag not started or paused), the node's timers keep
going: diagnostics still say that no images arrive."""

from __future__ import annotations

import time


def test_diagnostics_are_published_under_sim_time_without_a_clock(rclpy_context):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from fartrack_ros.node import FarTrackNode

    node = FarTrackNode(context=rclpy_context, managed=True, parameter_overrides=[
        Parameter("use_sim_time", value=True), Parameter("diagnostics_period", value=0.2)])
    listener = rclpy.create_node("diagnostics_listener", context=rclpy_context)
    received: list[DiagnosticArray] = []
    listener.create_subscription(DiagnosticArray, "/diagnostics", received.append, 10)
    executor = SingleThreadedExecutor(context=rclpy_context)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        executor.add_node(node)
        executor.add_node(listener)
        deadline = time.monotonic() + 10.0  # the warning comes after SILENCE_WARN_S (3 s) without images
        while _no_images_warning(node, received) is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)

        assert len(received) >= 3, f"{len(received)} diagnostics in 10 s"
        statuses = [(s.name, s.level, s.message) for msg in received for s in msg.status]
        assert _no_images_warning(node, received) is not None, \
            f"no WARN 'no images received' from this node in 10 s, the last statuses: {statuses[-5:]}"
        assert node.get_clock().now().nanoseconds == 0  # the ROS clock really stood still
    finally:
        executor.shutdown()
        node.stop()
        node.destroy_node()
        listener.destroy_node()


def _no_images_warning(node, received):
    """The first status of ``node`` among the ``received`` DiagnosticArrays that warns that no
    images arrive (None when there is none)."""
    from diagnostic_msgs.msg import DiagnosticStatus

    for msg in received:
        for status in msg.status:
            if (status.name.startswith(f"{node.get_fully_qualified_name().lstrip('/')}:")
                    and status.level == DiagnosticStatus.WARN and status.message.startswith("no images received for ")):
                return status
    return None
