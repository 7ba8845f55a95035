"""How the command-line tools report to the user: one line ``prog: error: message`` or
``prog: warning: message`` on stderr, as argparse does, never a traceback for an expected failure."""

from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
from typing import Callable, Optional

Main = Callable[[Optional[list[str]]], int]


class CliError(Exception):
    """An expected failure (an unusable input, file or device): one error line and exit ``code``
    (1, or 2 for a usage error, as argparse gives)."""

    def __init__(self, message: object, code: int = 1) -> None:
        super().__init__(str(message))
        self.code = code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the tool is as Ctrl-C's KeyboardInterrupt is, so that the same
    clean-up runs (children stopped, partial results written) and the tool exits 143."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def stopped_exit_code(terminated: bool) -> int:
    """The exit code of a tool stopped by SIGTERM (143) or Ctrl-C (130): 128 + the signal, as a shell's."""
    return 128 + int(signal.SIGTERM if terminated else signal.SIGINT)


def warn(prog: str, message: object) -> None:
    """Print ``prog: warning: message`` on stderr."""
    print(f"{prog}: warning: {message}", file=sys.stderr)


class _PrefixedStderr(logging.Handler):
    """The library's log records as the tool's own lines (``prog: warning: ...``) on the current stderr."""

    def __init__(self, prog: str) -> None:
        super().__init__(logging.WARNING)
        self.prog = prog

    def emit(self, record: logging.LogRecord) -> None:
        print(f"{self.prog}: {record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)


def command(prog: str) -> Callable[[Main], Main]:
    """Decorate a tool's ``main(argv) -> int``: a `CliError` ends it with ``prog: error: message``
    and its exit code; Ctrl-C and SIGTERM (`Terminated`) with one line and 130 or 143, after the
    tool's own clean-up; meanwhile the library's warnings (a CUDA device that is absent) print like
    the tool's own instead of through logging's bare fallback."""

    def decorate(main: Main) -> Main:
        @functools.wraps(main)
        def run(argv: Optional[list[str]] = None) -> int:
            handler = _PrefixedStderr(prog)
            library = logging.getLogger("fartrack_ros")
            library.addHandler(handler)
            # rclpy, once initialised, shuts ROS down on SIGTERM and then calls this handler
            previous = (signal.signal(signal.SIGTERM, _raise_terminated)
                        if threading.current_thread() is threading.main_thread()
                        and signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN else None)
            try:
                return main(argv)
            except CliError as exc:
                print(f"{prog}: error: {exc}", file=sys.stderr)
                return exc.code
            except KeyboardInterrupt as exc:
                terminated = isinstance(exc, Terminated)
                print(f"{prog}: stopped by {'SIGTERM' if terminated else 'Ctrl-C'}", file=sys.stderr)
                return stopped_exit_code(terminated)
            finally:
                library.removeHandler(handler)
                if previous is not None:
                    signal.signal(signal.SIGTERM, previous)

        return run

    return decorate
