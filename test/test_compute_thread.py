"""ComputeThread runs every call in one long-lived thread, returns results and passes errors on."""

from __future__ import annotations

import os
import threading

import pytest
import torch

from fartrack_ros import params
from fartrack_ros.compute_thread import ComputeThread
from fartrack_ros.tracker_loading import STARTUP_CPU_THREADS, auto_cpu_threads, load_tracker, usable_cpus
from node_helpers import weights_for_tests


def test_calls_from_several_threads_all_run_in_the_same_other_thread():
    compute = ComputeThread()
    seen: list[int] = []
    callers = [threading.Thread(target=lambda: seen.append(compute.run(threading.get_ident))) for _ in range(4)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    seen.append(compute.run(threading.get_ident))
    compute.shutdown()
    assert len(set(seen)) == 1 and seen[0] != threading.get_ident()


def test_result_and_exception_reach_the_caller_and_nested_calls_do_not_deadlock():
    compute = ComputeThread()
    assert compute.run(lambda a, b=0: a + b, 2, b=3) == 5
    assert compute.run(lambda: compute.run(lambda: "inner")) == "inner"
    with pytest.raises(KeyError, match="missing"):
        compute.run(lambda: {}["missing"])
    compute.shutdown()
    compute.wait_idle()  # returns at once once shut down
    with pytest.raises(RuntimeError):
        compute.run(lambda: None)


def test_wait_idle_returns_after_the_queued_calls_finished():
    compute = ComputeThread()
    gate, done = threading.Event(), []
    compute.submit(gate.wait, 5.0)
    compute.submit(done.append, "second")
    threading.Timer(0.05, gate.set).start()
    compute.wait_idle()
    assert done == ["second"]
    compute.shutdown()


def test_the_loader_sets_cpu_threads_in_the_thread_that_runs_the_model_and_0_picks_the_automatic_count():
    compute = ComputeThread()
    values = {**params.defaults(), "weights": str(weights_for_tests()), "device": "cpu"}
    try:
        one = compute.run(load_tracker, {**values, "cpu_threads": 1})
        threads_with_one = compute.run(torch.get_num_threads)
        default = compute.run(load_tracker, values)
        threads_with_default = compute.run(torch.get_num_threads)
    finally:
        compute.run(torch.set_num_threads, STARTUP_CPU_THREADS)
        compute.shutdown()
    assert (one.cpu_threads, threads_with_one) == (1, 1)
    assert default.cpu_threads == threads_with_default == auto_cpu_threads()
    assert f" on cpu ({auto_cpu_threads()} thread" in default.describe()


def test_more_cpu_threads_than_usable_cpus_run_as_many_as_the_cpus_with_a_warning():
    compute = ComputeThread()
    warnings: list[str] = []
    log = type("Log", (), {"warning": lambda self, text: warnings.append(text)})()
    too_many = usable_cpus() + 1
    values = {**params.defaults(), "weights": str(weights_for_tests()), "device": "cpu", "cpu_threads": too_many}
    try:
        loaded = compute.run(load_tracker, values, log)
        quiet = compute.run(load_tracker, {**values, "cpu_threads": 0}, log)
    finally:
        compute.run(torch.set_num_threads, STARTUP_CPU_THREADS)
        compute.shutdown()
    assert loaded.cpu_threads == usable_cpus() and quiet.cpu_threads == auto_cpu_threads()
    assert len(warnings) == 1 and f"cpu_threads={too_many}" in warnings[0], warnings
    assert f"may use {usable_cpus()} CPUs: running {usable_cpus()} model threads" in warnings[0]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux affinity and 2 CPUs")
def test_usable_cpus_are_the_process_s_in_a_thread_pinned_to_one():
    """An earlier configure pins the compute thread to one CPU; the next must still see them all."""
    everyone = len(os.sched_getaffinity(os.getpid()))
    seen = []

    def pinned() -> None:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        seen.append(usable_cpus())

    thread = threading.Thread(target=pinned)
    thread.start()
    thread.join()
    assert seen == [everyone]


def test_automatic_cpu_threads_leave_a_core_unless_omp_num_threads_is_set(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert auto_cpu_threads() == max(1, usable_cpus() - 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert auto_cpu_threads() == STARTUP_CPU_THREADS  # torch read OMP_NUM_THREADS at start
