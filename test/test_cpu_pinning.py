"""The model's threads are pinned one per CPU after loading when they take every CPU (Linux), and
never otherwise or when asked not to."""

from __future__ import annotations

import os
import threading

import pytest
import torch

from fartrack_ros import params, tracker_loading
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


def test_threads_the_model_load_starts_are_not_taken_for_openmp_helpers(monkeypatch):
    """A CUDA context or an ONNX Runtime session starts threads in the compute thread while the
    model loads, and they inherit its name; the CPUs go to the threads that run torch's work."""
    others = named_threads()
    release = threading.Event()
    decoys = []
    load_model = tracker_loading._load_model

    def load_after_starting_a_thread(*args, **kwargs):
        decoy = threading.Thread(target=release.wait)  # started here: it takes the team's name
        decoy.start()
        decoys.append(decoy)
        return load_model(*args, **kwargs)

    monkeypatch.setattr(tracker_loading, "_load_model", load_after_starting_a_thread)
    compute = ComputeThread()
    try:
        loaded = _load(compute, cpu_threads=len(CPUS))
        decoy_tid = decoys[0].native_id
        assert decoy_tid in named_threads()
        busy = compute.run(_threads_busy_in_a_parallel_operation) - {decoy_tid}
        pinned = {tid for tid, cpus in _affinities(named_threads() - others).items() if len(cpus) == 1}

        assert loaded.pinned_cpus == CPUS
        assert sorted(os.sched_getaffinity(decoy_tid)) == CPUS
        assert pinned <= busy and len(pinned) == len(CPUS)
    finally:
        release.set()
        compute.shutdown()


def _threads_busy_in_a_parallel_operation() -> set[int]:
    """The threads whose CPU time grows while the calling thread runs torch's parallel kernels."""
    before = _cpu_ticks()
    matrix = torch.randn(1500, 1500)
    for _ in range(20):
        matrix @ matrix
    after = _cpu_ticks()
    return {tid for tid, ticks in after.items() if ticks > before.get(tid, 0)}


def _cpu_ticks() -> dict[int, int]:
    ticks = {}
    for tid in named_threads() | {threading.get_native_id()}:
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[tid] = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks


def test_with_a_cpu_to_spare_or_onnxruntime_nothing_is_pinned():
    """(more threads than CPUs run one per CPU, so they are pinned as those are)"""
    others = named_threads()
    compute = ComputeThread()
    try:
        assert _load(compute, cpu_threads=len(CPUS) - 1).pinned_cpus == []  # a CPU to spare
        assert _load(compute, cpu_threads=len(CPUS) + 1).pinned_cpus == sorted(CPUS)
        assert _load(compute, cpu_threads=len(CPUS), backend="onnxruntime").pinned_cpus == []
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
