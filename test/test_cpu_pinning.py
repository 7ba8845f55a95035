"""The model's threads are pinned one per CPU after loading when they take every CPU (Linux), and
never otherwise or when asked not to."""

from __future__ import annotations

import os
import threading

import pytest

from fartrack_ros import params
from fartrack_ros.compute_thread import ComputeThread
from fartrack_ros.cpu_pinning import TEAM_NAME, named_threads
from fartrack_ros.tracker_loading import load_tracker
from node_helpers import weights_for_tests

CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
pytestmark = pytest.mark.skipif(len(CPUS) < 2 or not os.path.isdir("/proc/self/task"),
                                reason="needs Linux and 2 or more CPUs")


def _affinities(tids):
    return {tid: sorted(os.sched_getaffinity(tid)) for tid in tids}


def _load(compute: ComputeThread, **overrides):
    values = {**params.defaults(), "weights": str(weights_for_tests()), "device": "cpu", **overrides}
    return compute.run(load_tracker, values)


def test_a_thread_per_cpu_gets_a_cpu_each_and_the_rest_of_the_process_stays_free():
    others = named_threads()  # compute threads of other tests, if any are still alive
    compute = ComputeThread()
    try:
        loaded = _load(compute, cpu_threads=len(CPUS))
        compute_tid = compute.run(threading.get_native_id)
        team = named_threads() - others  # the compute thread, its OpenMP helpers, torch's idle pool

        assert loaded.pinned_cpus == CPUS
        assert f"({len(CPUS)} threads, pinned to CPUs {','.join(map(str, CPUS))})" in loaded.describe()
        pinned = {tid: cpus for tid, cpus in _affinities(team).items() if len(cpus) == 1}
        assert pinned[compute_tid] == [CPUS[0]] and sorted(pinned.values()) == [[cpu] for cpu in CPUS]
        assert sorted(os.sched_getaffinity(os.getpid())) == CPUS  # the main thread is not touched
        assert all(cpus == CPUS for tid, cpus in _affinities(team).items() if tid not in pinned)

        unpinned = _load(compute, cpu_threads=len(CPUS), pin_cpu_threads=False)

        assert unpinned.pinned_cpus == [] and "pinned" not in unpinned.describe()
        assert all(cpus == CPUS for cpus in _affinities(named_threads() - others).values())
    finally:
        compute.shutdown()


def test_with_a_cpu_to_spare_or_too_many_threads_nothing_is_pinned():
    others = named_threads()
    compute = ComputeThread()
    try:
        assert _load(compute, cpu_threads=len(CPUS) - 1).pinned_cpus == []  # a CPU to spare
        assert _load(compute, cpu_threads=len(CPUS) + 1).pinned_cpus == []
        assert all(cpus == CPUS for cpus in _affinities(named_threads() - others).values())
    finally:
        compute.shutdown()


def test_threads_started_by_the_compute_thread_take_its_name():
    compute = ComputeThread()
    try:
        child_name = compute.run(lambda: _name_of_a_thread_started_here())
    finally:
        compute.shutdown()
    assert child_name == TEAM_NAME


def _name_of_a_thread_started_here() -> str:
    names = []

    def read_own_name():
        with open(f"/proc/self/task/{threading.get_native_id()}/comm") as comm:
            names.append(comm.read().strip())

    thread = threading.Thread(target=read_own_name)
    thread.start()
    thread.join()
    return names[0]
