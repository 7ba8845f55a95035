"""The model's threads are pinned one per CPU after loading (Linux), and unpinned on request."""

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


def test_two_model_threads_get_a_cpu_each_and_the_rest_of_the_process_stays_free():
    compute = ComputeThread()
    try:
        loaded = _load(compute, cpu_threads=2)
        compute_tid = compute.run(threading.get_native_id)
        team = named_threads()  # the compute thread, its OpenMP helper and torch's idle pool

        assert loaded.pinned_cpus == CPUS[-2:]
        assert f"(2 threads, pinned to CPUs {CPUS[-2]},{CPUS[-1]})" in loaded.describe()
        pinned = {tid: cpus for tid, cpus in _affinities(team).items() if len(cpus) == 1}
        assert pinned[compute_tid] == [CPUS[-2]] and sorted(pinned.values()) == [[CPUS[-2]], [CPUS[-1]]]
        assert sorted(os.sched_getaffinity(os.getpid())) == CPUS  # the main thread is not touched
        assert all(cpus == CPUS for tid, cpus in _affinities(team).items() if tid not in pinned)

        unpinned = _load(compute, cpu_threads=2, pin_cpu_threads=False)

        assert unpinned.pinned_cpus == [] and "pinned" not in unpinned.describe()
        assert all(cpus == CPUS for cpus in _affinities(named_threads()).values())
    finally:
        compute.shutdown()


def test_one_thread_or_more_threads_than_cpus_are_not_pinned():
    compute = ComputeThread()
    try:
        assert _load(compute, cpu_threads=1).pinned_cpus == []
        assert _load(compute, cpu_threads=len(CPUS) + 1).pinned_cpus == []
        assert all(cpus == CPUS for cpus in _affinities(named_threads()).values())
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
