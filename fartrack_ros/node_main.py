"""``fartrack_node``: the executable that runs one `FarTrackNode`, plain (configured and
activated at start) or managed (``--managed``: waits for lifecycle transitions), and stops it
cleanly on SIGINT or SIGTERM, also while the model loads."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import TransitionCallbackReturn

from .executors import make_executor, spin_while
from .heap import keep_freed_memory
from .node import DEFAULT_NODE_NAME, FarTrackNode


def main(argv: list[str] | None = None) -> int:
    """``fartrack_node [--managed] [--ros-args ...]``."""
    argv = sys.argv if argv is None else argv
    parser = argparse.ArgumentParser(prog="fartrack_node",
                                     description="FARTrack ROS 2 node: images in, vision_msgs/Detection2DArray out")
    parser.add_argument("--managed", action="store_true",
                        help="start unconfigured as a lifecycle node and wait for transitions")
    try:
        options = parser.parse_args(rclpy.utilities.remove_ros_args(argv)[1:])
    except (_rclpy.RCLInvalidROSArgsError, _rclpy.UnknownROSArgsError) as exc:  # a missing or broken params file
        reason = re.sub(r",? at \S+:\d+", "", str(exc)).strip()  # rcl's source locations
        rclpy.logging.get_logger(_logger_name(argv)).error(f"not started: invalid ROS arguments: {reason}")
        return 2
    keep_freed_memory()
    # the executable's start-up handlers (see scripts/fartrack_node) give way to Python's and rclpy's
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    rclpy.init(args=argv)
    node = None
    # Kept until ROS is shut down: rclpy's signal thread triggers the executor's guard condition,
    # and an executor freed while a signal is being handled crashed the exit (2 exits in 70).
    executor = None
    code = 0
    left_behind = False  # a model load cut short by a signal still runs
    try:
        try:
            node = FarTrackNode(managed=options.managed)
        except ParameterException as exc:  # a bad -p value or params file: say which, no traceback
            # rclpy repeats the name at the end ("'name' ...: name", "... Parameter name out of range ...: name")
            reason = re.sub(r"^(.*\b([\w.]+)\b.*): \2$", r"\1", str(exc))
            rclpy.logging.get_logger(_logger_name(argv)).error(f"not started: invalid parameter: {reason}")
            return 2
        not_started = None if options.managed else _start_plain(node)
        if not_started is not None:
            code = not_started
        else:
            executor = make_executor(node.get_parameter("executor").value, node.get_logger())
            executor.add_node(node)
            spin_while(executor, node.context.ok)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except _rclpy.RCLError:
        if rclpy.ok():
            raise
        # a signal shut ROS down while starting (before the executor existed): a clean stop
    finally:
        if node is not None:
            left_behind = not node.stop()
            if left_behind:  # the process's logger: ROS is shut down, the node's would try rosout
                rclpy.logging.get_logger("fartrack_node").info(
                    "stopped while the model was loading: exiting without waiting for the load")
            node.destroy_node()
        rclpy.try_shutdown()  # also ends rclpy's signal thread
        del executor
    if left_behind:  # the load cannot be interrupted, and the interpreter would wait for its thread
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _logger_name(argv: list[str]) -> str:
    """The node's logger name (``cam_left.fartrack``), from the ``__ns`` and ``__node`` remaps of
    ``argv``: for errors logged before the node exists, so that one of several nodes is told apart."""
    namespace, name = "", DEFAULT_NODE_NAME
    for flag, rule in zip(argv, argv[1:]):
        if flag in ("-r", "--remap"):
            target, _, value = rule.partition(":=")
            node, _, key = target.rpartition(":")
            if node not in ("", DEFAULT_NODE_NAME):  # a rule for another node of the process
                continue
            if key == "__ns":
                namespace = value
            elif key in ("__node", "__name"):
                name = value
    return ".".join([part for part in namespace.split("/") if part] + [name])


def _start_plain(node: FarTrackNode) -> int | None:
    """Configure and activate a plain (not managed) node; the exit status when it cannot run
    (None: it runs)."""
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        return 1 if rclpy.ok() else 0  # a signal while the model loaded: a clean stop
    if not rclpy.ok():
        return 0
    node.trigger_activate()
    return None


if __name__ == "__main__":
    sys.exit(main())
