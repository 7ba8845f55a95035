"""The executable's executor: which one runs the node, and how it spins so that signals get through."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable

from rclpy.executors import Executor, ExternalShutdownException, ShutdownException, SingleThreadedExecutor

if TYPE_CHECKING:
    from rclpy.impl.rcutils_logger import RcutilsLogger
    from rclpy.node import Node

# Longest wait of the executable's executor. rclpy wakes a waiting executor on SIGINT/SIGTERM
# through a guard condition; under load that wake-up was seen lost (6 of about 60 stress runs left
# the node waiting after SIGINT until a second one, none of 14 with this). rclpy calls Python's
# handler before its own, so returning to Python this often lets the pending KeyboardInterrupt
# (or the shut-down context, on SIGTERM) end the spin.
SIGNAL_CHECK_S = 0.5


def has_events_executor() -> bool:
    """Whether this rclpy has the EventsExecutor (rclpy 7.1.4 of Jazzy and later)."""
    try:
        from rclpy.experimental import EventsExecutor  # noqa: F401
    except ImportError:
        return False
    return True


def make_executor(kind: str, log: RcutilsLogger | None = None) -> Executor:
    """The executor for ``kind`` (the ``executor`` parameter): rclpy's EventsExecutor for events
    where this rclpy has it, else the SingleThreadedExecutor (saying so to ``log``)."""
    if kind == "events":
        why = "this rclpy has no EventsExecutor (rclpy 7.1.4 of Jazzy and later have it)"
        if has_events_executor():
            from rclpy.experimental import EventsExecutor

            try:
                executor = EventsExecutor()
            except Exception as exc:  # noqa: BLE001 - e.g. its faulthandler.enable() wants a real stderr
                why = f"the EventsExecutor failed to start ({type(exc).__name__}: {exc})"
            else:
                if log is not None:
                    log.info("executor events: spinning rclpy's EventsExecutor")
                return executor
        if log is not None:
            log.warning(f"executor events: {why}; running single_threaded")
    return SingleThreadedExecutor()


def spin_while(executor: Executor, keep_going: Callable[[], bool], wait_s: float = SIGNAL_CHECK_S) -> None:
    """Spin ``executor`` while ``keep_going()``, never waiting longer than ``wait_s`` at a time: that
    lets signals through (see SIGNAL_CHECK_S), and rclpy 9.1's EventsExecutor, waiting with no
    timeout (its ``spin()``), keeps a core busy and runs no callback."""
    while keep_going():
        executor.spin_once(timeout_sec=wait_s)


class SpinThread:
    """A tool's node spun by rclpy's single-threaded executor in a daemon thread until `stop`, which
    ends the thread before it destroys the node: a node destroyed while another thread waits on
    its entities can end that thread with an error."""

    def __init__(self, node: Node, name: str) -> None:
        self.executor = SingleThreadedExecutor(context=node.context)
        self.executor.add_node(node)
        self._node = node
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._spin, name=name, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            spin_while(self.executor, lambda: not self._done.is_set() and self._node.context.ok())
        except (ExternalShutdownException, ShutdownException):
            pass  # Ctrl-C shut ROS down under it: the main thread reports it

    def stop(self) -> None:
        """End the spinning, then destroy the node (unless the thread is stuck)."""
        self._done.set()
        self._thread.join(timeout=2.0)
        self.executor.shutdown(timeout_sec=1.0)
        if not self._thread.is_alive():
            self._node.destroy_node()
