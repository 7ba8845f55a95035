"""One thread for every model call of a process that also runs other threads (the ROS node).

PyTorch's CPU kernels run on GNU OpenMP, which keeps a pool of helper threads for *each* thread
that starts parallel work. Once the process holds more such threads than it has CPUs, every pool
stops spin-waiting between parallel regions and sleeps instead, and a forward pass (hundreds of
short parallel ops) runs about twice as slowly: measured 3.6 ms per frame for the bundled model
on 2 cores with one computing thread, 7.1-7.5 ms once a second thread had also run the model.
Loading, warm-up, template creation and tracking therefore all go through one thread.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from .cpu_pinning import name_this_thread

T = TypeVar("T")


class ComputeThread:
    """A single long-lived thread that runs the callables given to `run`, one at a time."""

    def __init__(self, name: str = "fartrack_compute") -> None:
        self._ident: int | None = None
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name, initializer=self._remember)

    def _remember(self) -> None:
        self._ident = threading.get_ident()
        name_this_thread()  # before any model call: the OpenMP helpers it starts take the name

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in the compute thread; blocks for its result (or its exception)."""
        if threading.get_ident() == self._ident:  # already there: a nested call must not wait on itself
            return fn(*args, **kwargs)
        return self._pool.submit(fn, *args, **kwargs).result()

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future:
        """Queue ``fn(*args, **kwargs)`` for the compute thread and return at once."""
        return self._pool.submit(fn, *args, **kwargs)

    def wait_idle(self) -> None:
        """Return once every call queued so far has finished (at once after `shutdown`)."""
        if self._closed or threading.get_ident() == self._ident:
            return
        self._pool.submit(lambda: None).result()

    def shutdown(self, wait: bool = True) -> None:
        """Drop queued calls and end the thread once the running call finishes; ``wait`` for that."""
        self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=True)
