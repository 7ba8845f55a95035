"""Pin the model's threads one per CPU when they take every CPU, so none waits for a busy one.

PyTorch runs its CPU kernels on a team of OpenMP threads: the thread that calls the model and the
helpers it started. Between frames the helpers sleep; at the next frame's first parallel operation
the caller wakes them and spins until they arrive. When the team has as many threads as the
process has CPUs, a woken helper is sometimes queued on the CPU where its caller spins, and waits
there for the kernel's load balancing, about 10 ms: in the node on 2 cores with 2 model threads at
30 Hz, 8-12 % of the frames took 10-30 ms longer (p95 19 ms against a p50 of 10 ms). Pinned one per
CPU, each wakes on its own CPU. With a CPU to spare the kernel wakes a helper on the idle CPU, and
nothing is pinned: several nodes on one computer then never pin onto the same CPUs.

The helpers are found by name and by when they appear: a thread started by the compute thread
inherits its name (Linux copies it at thread creation), and the OpenMP helpers are the named
threads that appear during one parallel operation the compute thread runs before anything else
(`start_model_team`). Threads it starts later take the name too (a CUDA context's driver threads,
ONNX Runtime's pool) and are not helpers; ``torch.set_num_threads`` starts an idle pool of its own
before that, also left alone. Other threads (rclpy, Fast DDS) are never pinned. Linux only
(``/proc`` and ``sched_setaffinity``); elsewhere nothing happens.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import torch

TEAM_NAME = "fartrack_model"  # at most 15 characters: Linux thread names are 16 bytes with the NUL
_TASKS = Path("/proc/self/task")
_helpers: dict[int, set[int]] = {}  # compute thread -> its OpenMP helpers (they live as long as it)
# Elements per thread of `start_model_team`'s fill: above ATen's grain (32768), so no thread idles.
_PARALLEL_ELEMENTS = 1 << 16


def name_this_thread(name: str = TEAM_NAME) -> None:
    """Give the calling thread ``name`` (as ``top -H`` shows it); threads it starts inherit it."""
    try:
        (_TASKS / str(threading.get_native_id()) / "comm").write_text(name)
    except OSError:
        pass  # not Linux, or /proc not mounted: the team is just not pinned


def named_threads(name: str = TEAM_NAME) -> set[int]:
    """Native ids of this process's threads called ``name`` (empty where /proc cannot tell)."""
    try:
        return {int(task.name) for task in _TASKS.iterdir() if _thread_name(task) == name}
    except OSError:
        return set()


def start_model_team() -> None:
    """Start the calling thread's OpenMP helpers (one parallel operation over all its threads) and
    remember them as its team. Call it after ``torch.set_num_threads`` and before loading a model,
    whose CUDA context or ONNX Runtime session starts threads that inherit the name as well."""
    me = threading.get_native_id()
    before = named_threads()
    torch.zeros(_PARALLEL_ELEMENTS * max(torch.get_num_threads(), 1))  # the fill runs on every thread
    _helpers.setdefault(me, set()).update(named_threads() - before - {me})


def pin_model_team(threads: int) -> list[int]:
    """Pin the calling (compute) thread and its OpenMP helpers (found by `start_model_team`) one
    per CPU when they are as many as the process's CPUs (2 or more); returns the CPUs used. Called
    from the main thread it does nothing.

    ``threads``: the model's thread count, 1 or less to pin nothing. Where nothing is pinned (one
    thread, fewer or more threads than CPUs, helpers not found, not Linux) the result is [] and any
    earlier pinning of the team is undone.
    """
    me = threading.get_native_id()
    if not hasattr(os, "sched_setaffinity") or me == os.getpid():
        return []  # the main thread is the process's CPU set: it is never pinned
    named = named_threads()
    helpers = _helpers.setdefault(me, set())
    helpers.intersection_update(named)
    everyone = [me, *sorted(helpers)]
    team = everyone[:max(threads, 1)]
    try:
        cpus = sorted(os.sched_getaffinity(os.getpid()))  # the main thread's: never pinned here
    except OSError:
        return []
    chosen = cpus if 1 < len(team) == threads == len(cpus) else []
    masks = {tid: {cpu} for tid, cpu in zip(team, chosen)}
    try:
        for tid in everyone:
            os.sched_setaffinity(tid, masks.get(tid, cpus))
    except OSError:  # a thread ended meanwhile, or the OS refused: leave the team unpinned
        for tid in everyone:
            _try_unpin(tid, cpus)
        return []
    return chosen


def _thread_name(task: Path) -> str:
    try:
        return (task / "comm").read_text().strip()
    except OSError:
        return ""


def _try_unpin(tid: int, cpus: list[int]) -> None:
    try:
        os.sched_setaffinity(tid, cpus)
    except OSError:
        pass
