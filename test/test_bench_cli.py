"""fartrack-bench prints one table with every section asked for and writes the plot.

No timing is asserted here (speed is read from the table, on a quiet machine); this checks that
the rows are there and well-formed, the node rows included (a real node process over rclpy).
"""

from __future__ import annotations

import re

import pytest
import torch

from fartrack_ros.cli import bench
from tracker_helpers import one_torch_thread  # noqa: F401 - autouse fixture


def test_bench_prints_model_tracker_scaling_rows_and_writes_the_plot(tmp_path, capsys):
    plot = tmp_path / "bench.png"
    assert bench.main(["--variants", "bundled", "--skip", "node,opencv", "--threads", "1", "--repeats", "1",
                       "--frames", "8", "--targets", "1,2", "--plot", str(plot)]) == 0
    table = capsys.readouterr().out
    for mode in ("masked", "dropped"):
        for runtime in ("torch-eager", "torch-fused", "torch-bf16", "onnxruntime"):
            assert re.search(rf"^model +bundled {runtime} {mode} +\d+\.\d+ +\d+\.\d", table, re.M), table
    assert re.search(r"^tracker +bundled baseline \(masked eager\) .* speedup: 1\.00x$", table, re.M), table
    assert re.search(r"^tracker +bundled baseline \(masked eager bfloat16\) .* speedup: \d+\.\d\dx$", table, re.M), table
    for runtime in ("torch", "torch-bf16", "onnxruntime"):
        assert re.search(rf"^tracker +bundled fast {runtime} .* speedup: \d+\.\d\dx +same precision: \d+\.\d\dx +"
                         rf"stages ms: crop [\d.]+ model [\d.]+ decode [\d.]+$", table, re.M), table
    for precision in ("float32", "bfloat16"):
        assert re.search(rf"^scaling +bundled {precision} 2 targets .* vs 1 target: \d+\.\d\dx", table, re.M), table
    assert plot.stat().st_size > 1000


def _node_rows_table(capsys, *args: str) -> str:
    """The table of a bench run with only the node rows (1 thread, no plot), then its stderr."""
    pytest.importorskip("rclpy")
    assert bench.main(["--skip", "model,tracker,scaling,opencv", "--variants", "bundled", "--threads", "1",
                       "--node-threads", "1", "--frames", "8", "--plot", "", "--node-rounds", "1", *args]) == 0
    captured = capsys.readouterr()
    return captured.out + captured.err


@pytest.mark.ros
@pytest.mark.slow
def test_bench_node_rows_pair_the_node_with_the_in_process_tracker_at_each_rate(capsys):
    table = _node_rows_table(capsys, "--node-frames", "24", "--node-variant", "pico", "--node-rates", "0,40")
    for pace in ("back to back", "at 40 Hz"):
        assert re.search(rf"^node +pico tracker in-process {pace} +\d+\.\d+ .*role: reference +rounds: 1$", table,
                         re.M), table
        row = re.search(rf"^node +pico publish->detections {pace} +\d+\.\d+ +\d+\.\d +p95 ms: [\d.]+ +p99 ms: [\d.]+ +"
                        rf"frames: 24 +lost: (\d+) +rounds: 1 +overhead: [+-]\d+% \([+-][\d.]+ ms over [\d.]+\) +in-node stages ms: "
                        rf"convert [\d.]+ crop [\d.]+ model [\d.]+ decode [\d.]+ publish [\d.]+ total [\d.]+$",
                        table, re.M)
        assert row, table
        assert int(row.group(1)) <= 5, table  # of 24 frames sent (best effort, like a camera)


@pytest.mark.ros
@pytest.mark.slow
def test_bench_node_rows_send_frames_larger_than_the_shared_memory_segment_reliably(capsys):
    """Also the events executor's row, where rclpy has it (node and probe both spin it)."""
    from fartrack_ros.executors import has_events_executor

    table = _node_rows_table(capsys, "--node-frames", "16", "--node-rates", "0", "--node-size", "640x480",
                             "--node-unpinned", "--node-executors", "single_threaded,events")
    for executor in ("", " events") if has_events_executor() else ("",):
        row = re.search(rf"^node +\S+ 640x480 unpinned{executor} publish->detections back to back .*frames: 16 +"
                        rf"lost: (\d+) ", table, re.M)
        assert row, table
        assert int(row.group(1)) == 0, table  # reliable: every frame sent (16 after the init frame) comes back


@pytest.mark.ros
@pytest.mark.parametrize("pin", [True, False])
def test_the_node_measured_gets_the_pinning_asked_for(pin):
    from fartrack_ros.node_latency import node_argv

    argv = node_argv(2, pin_cpu_threads=pin)

    assert argv[argv.index("cpu_threads:=2") - 1] == "-p"
    assert f"pin_cpu_threads:={str(pin).lower()}" in argv


def test_bench_refuses_an_unknown_node_executor(capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--node-executors", "events,multi_threaded"])
    assert "--node-executors" in capsys.readouterr().err
    assert bench.parse_args(["--node-executors", "events"]).node_executors == ["events"]


@pytest.mark.parametrize("option", ["--variants", "--skip", "--scaling-variant"])
def test_bench_refuses_an_unknown_variant_or_section(option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args([option, "foo"])
    assert exit_info.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


def test_bench_variants_and_skipped_sections_parse_to_lists():
    args = bench.parse_args(["--variants", "pico,bundled", "--skip", "node,opencv"])
    assert (args.variants, args.skip) == (["pico", "bundled"], ["node", "opencv"])
    assert bench.parse_args([]).skip == []


@pytest.mark.parametrize("device,message", [
    ("gpu", "invalid device 'gpu'"),
    ("cuda", "--device cuda: no CUDA device is available (use --device cpu)"),
])
def test_bench_refuses_a_device_it_cannot_time_in_one_line(device, message, monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert bench.main(["--device", device, "--plot", ""]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"fartrack-bench: error: {message}")


def test_bench_refuses_a_plot_format_before_benching(tmp_path, capsys):
    assert bench.main(["--plot", str(tmp_path / "bench.xyz")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("fartrack-bench: error: cannot write a plot as .xyz")


@pytest.mark.parametrize("size", ["640", "640x", "axb", "32x32"])
def test_bench_refuses_a_bad_node_size(size, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--node-size", size])
    assert "--node-size" in capsys.readouterr().err


def test_the_timed_tracker_adds_a_template_every_frame_even_with_random_weights(monkeypatch):
    """A gated tracker would lose a random-weight target and skip the template step, looking cheaper."""
    from fartrack_ros import benchmark as bm
    from fartrack_ros.model import with_backend
    from fartrack_ros.tracker import Tracker

    model = bm.load_variant("pico")
    frames, boxes = bm.synthetic_frames(8, size=(160, 120))
    trackers = []
    monkeypatch.setattr(bm, "Tracker", lambda *a, **k: trackers.append(Tracker(*a, **k)) or trackers[-1])
    bm.tracker_ms(with_backend(model, "torch"), frames, boxes, "bounded", targets=2)
    for target_id in ("t0", "t1"):
        assert trackers[0].inspect_target(target_id).held_indices[-1] == 7  # the init + one per frame


def test_the_table_is_printed_when_the_node_rows_fail(monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise RuntimeError("only 2 of 24 frames got detections back")

    monkeypatch.setattr("fartrack_ros.node_latency.measure_node_latency", fail)
    assert bench.main(["--skip", "model,scaling,opencv", "--variants", "bundled", "--threads", "1", "--frames", "8",
                       "--rounds", "1", "--node-frames", "10", "--node-rates", "0", "--node-variant", "bundled",
                       "--node-threads", "1",
                       "--node-rounds", "1", "--plot", ""]) == 0
    captured = capsys.readouterr()
    assert "node row with executor single_threaded back to back at 1 thread skipped: only 2 of 24 frames" in captured.err
    assert re.search(r"^tracker +bundled baseline", captured.out, re.M), captured.out
    assert re.search(r"^node +bundled-m tracker in-process back to back", captured.out, re.M), captured.out


@pytest.mark.ros
def test_one_executor_failing_keeps_the_other_executors_node_rows(monkeypatch, capsys):
    from fartrack_ros import node_latency

    pytest.importorskip("rclpy")
    measured = node_latency.NodeLatency(9.0, 11.0, 12.0, {}, 30, 0, [])

    def measure(*args, executor, **kwargs):
        if executor == "events":
            raise RuntimeError("the node did not run executor events")
        return measured

    monkeypatch.setattr(node_latency, "measure_node_latency", measure)
    monkeypatch.setattr("fartrack_ros.executors.has_events_executor", lambda: True)
    assert bench.main(["--skip", "model,tracker,scaling,opencv", "--variants", "bundled", "--threads", "1",
                       "--frames", "8", "--node-frames", "10", "--node-rates", "0", "--plot", "",
                       "--node-threads", "1", "--node-executors", "single_threaded,events"]) == 0
    captured = capsys.readouterr()
    assert "node row with executor events back to back at 1 thread skipped: the node did not run executor events" in captured.err
    assert re.search(r"^node +bundled-m publish->detections back to back +9\.00 ", captured.out, re.M), captured.out
    assert "events publish" not in captured.out


@pytest.mark.ros
def test_node_rows_alternate_reference_and_nodes_over_rounds_and_report_the_median_ratio(monkeypatch, capsys):
    from fartrack_ros import node_latency

    pytest.importorskip("rclpy")
    references = iter([5.0, 6.0, 4.0])
    p50s = iter([9.0, 20.0, 12.0, 20.0, 10.0, 20.0])
    order = []

    def measure(*args, executor, **kwargs):
        order.append(executor)
        return node_latency.NodeLatency(next(p50s), 11.0, 12.0, {}, 30, 0, [])

    monkeypatch.setattr(node_latency, "measure_node_latency", measure)
    monkeypatch.setattr(bench, "_reference_ms", lambda *args: next(references))
    monkeypatch.setattr("fartrack_ros.executors.has_events_executor", lambda: True)
    assert bench.main(["--skip", "model,tracker,scaling,opencv", "--variants", "bundled", "--threads", "1",
                       "--frames", "8", "--node-frames", "10", "--node-rates", "0", "--plot", "",
                       "--node-threads", "1", "--node-executors", "single_threaded,events"]) == 0
    out = capsys.readouterr().out

    # rounds: reference, single, events; single, events, reference; events, reference, single
    assert order == ["single_threaded", "events", "single_threaded", "events", "events", "single_threaded"]
    assert re.search(r"^node +bundled-m tracker in-process back to back +5\.00 .*rounds: 3$", out, re.M), out
    # single_threaded: 9, 12, 20 ms against its rounds' 5, 6, 4 (ratios 1.8, 2.0, 5.0): the median round's
    assert re.search(r"^node +bundled-m publish->detections back to back +12\.00 .*rounds: 3 +overhead: "
                     r"\+100% \(\+6\.00 ms over 6\.00\)", out, re.M), out


@pytest.mark.ros
@pytest.mark.parametrize("cpus,option,expected", [
    (2, [], [2, 1]),  # --threads 2 and the node's automatic count (one CPU left free)
    (3, [], [2]),  # the automatic count is --threads: measured once
    (2, ["--node-threads", "1,4,1"], [1, 4]),
])
def test_node_rows_run_at_threads_and_the_nodes_automatic_count(cpus, option, expected, monkeypatch, capsys):
    from fartrack_ros import node_latency

    pytest.importorskip("rclpy")
    asked, reference_threads = [], []

    def measure(*args, threads, **kwargs):
        asked.append(threads)
        return node_latency.NodeLatency(9.0, 11.0, 12.0, {}, 30, 0, [])

    def reference(*args):
        reference_threads.append(torch.get_num_threads())
        return 5.0

    monkeypatch.setattr(node_latency, "measure_node_latency", measure)
    monkeypatch.setattr(bench, "_reference_ms", reference)
    monkeypatch.setattr("fartrack_ros.tracker_loading.usable_cpus", lambda: cpus)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert bench.main(["--skip", "model,tracker,scaling,opencv", "--variants", "bundled", "--threads", "2",
                       "--frames", "8", "--node-frames", "10", "--node-rates", "0", "--node-rounds", "1",
                       "--plot", "", *option]) == 0
    out = capsys.readouterr().out

    assert asked == reference_threads == expected  # the node's cpu_threads, the reference's torch threads
    assert torch.get_num_threads() == 2  # --threads again after the node rows
    for threads in expected:
        named = "" if expected == [2] else f" {threads} thread{'s' * (threads > 1)}"
        assert re.search(rf"^node +bundled-m{named} tracker in-process back to back ", out, re.M), out
        assert re.search(rf"^node +bundled-m{named} publish->detections back to back +9\.00 ", out, re.M), out


@pytest.mark.parametrize("text", ["0", "1,x", ",", "2,-1"])
def test_bench_refuses_bad_node_threads(text, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--node-threads", text])
    assert "--node-threads" in capsys.readouterr().err


def test_outside_a_ros_environment_the_node_rows_are_skipped_saying_what_to_do(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "vision_msgs.msg", None)  # as in a venv without the ROS paths
    assert bench.main(["--skip", "model,tracker,scaling,opencv", "--variants", "bundled", "--threads", "1",
                       "--frames", "8", "--plot", ""]) == 0
    assert "node rows skipped: ROS 2 is not set up in this environment" in capsys.readouterr().err


def test_node_weights_that_cannot_be_used_are_an_error_before_any_measurement(tmp_path, capsys):
    assert bench.main(["--variants", "pico", "--skip", "model,tracker,scaling,opencv", "--plot", "",
                       "--node-weights", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fartrack-bench: error: --node-weights: weights file ") and "is a folder" in err


def test_each_fast_tracker_row_is_compared_with_the_baseline_of_its_own_precision_too(monkeypatch):
    times = {"baseline (masked eager)": 10.0, "baseline (masked eager bfloat16)": 6.0, "fast torch": 8.0,
             "fast torch-bf16": 3.0, "fast onnxruntime": 7.0}
    monkeypatch.setattr(bench.bm, "interleaved",
                        lambda measures, rounds: {name: (times[name.removeprefix("pico ")], {}) for name in measures})

    rows = {row.name: row.extra for row in bench._tracker_rows(bench.bm.load_variant("pico"), "pico", "cpu", [], [], 1)}

    assert rows["pico baseline (masked eager bfloat16)"]["speedup"] == "1.67x"
    assert rows["pico fast torch-bf16"]["speedup"] == "3.33x" and rows["pico fast torch-bf16"]["same precision"] == "2.00x"
    assert rows["pico fast torch"]["same precision"] == "1.25x" and rows["pico fast onnxruntime"]["same precision"] == "1.43x"


def test_model_rows_take_turns_over_the_rounds(monkeypatch):
    calls = []
    monkeypatch.setattr(bench.bm, "_timed_ms", lambda fn, repeats, warmup, sync: calls.append(warmup) or [1.0] * repeats)

    rows = bench.bm.model_rows(bench.bm.load_variant("bundled"), "bundled", repeats=2, rounds=3)

    per_round = len(rows)  # every runtime x masked/dropped row, once a round
    assert calls == [2] * per_round + [1] * (2 * per_round)  # a full warm-up first, one call per block after
    assert all(row.ms == 1.0 for row in rows)
