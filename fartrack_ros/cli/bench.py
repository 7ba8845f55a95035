"""fartrack-bench: one table of speeds (model, tracker, many targets, OpenCV, node) and a PNG plot."""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Optional

import torch

from .. import benchmark as bm
from ..heap import keep_freed_memory
from ..model import load_checkpoint, precision_for_device, resolve_device, save_checkpoint, with_backend
from ..model.device import cuda_unavailable_reason
from ..evaluation.plots import figure_path
from ..params import BY_NAME as PARAMETERS
from .messages import CliError, command
from .options import (PRECISIONS, comma_choices, comma_non_negative_floats, comma_positive_ints, frame_size,
                      int_at_least, node_parameter, positive_int)

PROG = "fartrack-bench"
VARIANTS = ("tiny", "nano", "pico", "bundled")
EXTRA_VARIANTS = ("bundled-3L",)  # the bundled model's first 3 layers (self-distilled): on request
SECTIONS = ("model", "tracker", "scaling", "opencv", "node")


def _node_variant_name(text: str) -> str:
    """argparse type for --node-variant: bundled, or a variant as the node's parameter takes it."""
    return text if text == "bundled" else node_parameter("variant")(text)


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    """fartrack-bench's command line; combinations that would fail only after minutes of benching
    (a --scaling-variant not among --variants) are refused here, with argparse's exit 2."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument("--variants", default=",".join(VARIANTS), type=comma_choices(VARIANTS + EXTRA_VARIANTS),
                        help="comma list of tiny, nano, pico (official sizes, random weights), bundled and "
                             "bundled-3L (its first 3 layers, variant 3; not in the default list) (default "
                             f"{','.join(VARIANTS)})")
    parser.add_argument("--threads", type=positive_int, default=2, help="torch / ONNX Runtime CPU threads (default 2)")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda or cuda:N for the model, tracker and scaling rows (default cpu)")
    parser.add_argument("--repeats", type=positive_int, default=10, help="timed repeats per model row (default 10)")
    parser.add_argument("--frames", type=int_at_least(bm.WARMUP_FRAMES + 3), default=40,
                        help=f"frames of the generated sequence for tracker rows (the first {bm.WARMUP_FRAMES} "
                             "tracked are warm-up; default 40)")
    parser.add_argument("--targets", default="1,2,4,8", type=comma_positive_ints,
                        help="target counts for the scaling rows (default 1,2,4,8)")
    parser.add_argument("--rounds", type=positive_int, default=3,
                        help="model, tracker and scaling rows: rounds over all of a table's rows in turn "
                             "(model rows: --repeats calls per round, the median of all; the others: the "
                             "median round), so the machine's drift falls on every row of a ratio alike "
                             "(default 3)")
    parser.add_argument("--scaling-variant", default=None, choices=VARIANTS + EXTRA_VARIANTS,
                        help="variant used for the multi-target rows, one of --variants (default bundled when "
                             "listed, else the first)")
    parser.add_argument("--scaling-precisions", default=None, type=comma_choices(PRECISIONS),
                        help="comma list of precisions for the multi-target rows (default: float32 and the "
                             "device's reduced precision, bfloat16 on CPU, float16 on CUDA)")
    parser.add_argument("--skip", default=[], type=comma_choices(SECTIONS),
                        help=f"comma list of sections to skip: {','.join(SECTIONS)}")
    parser.add_argument("--node-frames", type=int_at_least(bm.WARMUP_FRAMES + 5), default=150,
                        help=f"frames sent through the node (the first {bm.WARMUP_FRAMES} are warm-up; default 150)")
    parser.add_argument("--node-weights", default="", help="checkpoint the node rows run ('' = bundled model)")
    parser.add_argument("--node-variant", default="", type=_node_variant_name,
                        help="variant for the node rows ('' = as the checkpoint); tiny/nano/pico without "
                             "--node-weights run that official size with random weights, as the model rows do")
    parser.add_argument("--node-precision", default="float32", choices=PRECISIONS,
                        help="precision the node rows run at (default float32)")
    parser.add_argument("--node-rates", default="0,30", type=comma_non_negative_floats,
                        help="comma list of frame rates (Hz) for the node rows and their in-process reference; "
                             "0 = back to back (default 0,30: also paced like a 30 Hz camera, as a robot runs it)")
    parser.add_argument("--node-size", default="320x240", type=frame_size,
                        help="WIDTHxHEIGHT of the rgb8 frames sent through the node and of its in-process "
                             "reference (default 320x240; 640x480 is a common camera)")
    parser.add_argument("--node-rounds", type=positive_int, default=3,
                        help="node rows: rounds of the in-process reference and each executor's node in turn "
                             "(the order rotating); a node row reports the round of the median overhead, so the "
                             "machine's drift falls on both sides alike (default 3)")
    parser.add_argument("--node-threads", type=comma_positive_ints, default=None,
                        help="comma list of the node's cpu_threads to run the node rows at, each against its "
                             "in-process reference at as many torch threads (default: --threads, and the "
                             "node's automatic count, one less than the CPUs, where that differs)")
    parser.add_argument("--node-unpinned", action="store_true",
                        help="run the node with pin_cpu_threads false (by default the model's threads are "
                             "pinned one per CPU when the node's threads equal the CPUs)")
    parser.add_argument("--node-executors", default="single_threaded",
                        type=comma_choices(PARAMETERS["executor"].choices),
                        help="comma list of the node's executor parameter values to run the node rows with, "
                             "single_threaded (default) and events; the probe always spins rclpy's "
                             "single-threaded executor")
    parser.add_argument("--plot", default="bench.png",
                        help="PNG plot path ('' for none; .pdf, .svg and matplotlib's other formats work too; "
                             "default bench.png)")
    args = parser.parse_args(argv)
    skip = set(args.skip)
    if skip >= set(SECTIONS):
        parser.error("--skip leaves no section to run")
    if args.scaling_variant is None:
        args.scaling_variant = "bundled" if "bundled" in args.variants else args.variants[0]
    elif "scaling" not in skip and args.scaling_variant not in args.variants:
        parser.error(f"--scaling-variant {args.scaling_variant} is not among --variants {','.join(args.variants)}: "
                     "add it, or skip scaling")
    return args


@command(PROG)
def main(argv: Optional[list[str]] = None) -> int:
    """Bench the sections not skipped, print one table and write --plot; a bad --plot, --device or
    --node-weights ends it with one error line before any benching."""
    args = parse_args(argv)
    device = _device(args.device)
    try:
        plot = figure_path(args.plot) if args.plot else None
    except ValueError as exc:  # refused before the minutes of benching, not after
        raise CliError(exc, code=2) from None
    skip = set(args.skip)
    node_model = None
    if "node" not in skip and args.node_weights:  # the user's file: refused now, not skipped later
        try:
            node_model = load_checkpoint(args.node_weights, variant=_node_variant(args) or None)
        except ValueError as exc:
            raise CliError(f"--node-weights: {exc}") from None
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    rows: list[bm.Row] = []
    frames, boxes = bm.synthetic_frames(args.frames)
    loaded = {}
    for variant in args.variants:
        try:
            loaded[variant] = bm.load_variant(variant, device)
        except Exception as exc:  # a missing bundled model must not stop the other rows
            print(f"skipping variant {variant}: {exc}", file=sys.stderr)

    for variant, model in loaded.items():
        if "model" not in skip:
            rows += bm.model_rows(model, variant, args.repeats, args.rounds)
        if "tracker" not in skip:
            rows += _tracker_rows(model, variant, device.type, frames, boxes, args.rounds)

    if "scaling" not in skip and args.scaling_variant in loaded:
        model = loaded[args.scaling_variant]
        counts = args.targets
        default_precisions = f"float32,{bm.reduced_precision(device.type)}"
        for precision in args.scaling_precisions or default_precisions.split(","):
            runner = with_backend(model, "torch", precision)
            measured = bm.interleaved({count: lambda c=count, r=runner: bm.tracker_ms(r, frames, boxes, "bounded", c)
                                       for count in counts}, args.rounds)
            first_ms = measured[counts[0]][0]
            for count in counts:
                ms = measured[count][0]
                rows.append(bm.Row("scaling", f"{args.scaling_variant} {precision} {_count(count, 'target')}", ms,
                                   {"ms/target": f"{ms / count:.1f}",
                                    f"vs {_count(counts[0], 'target')}": f"{ms / first_ms:.2f}x"}))

    if "opencv" not in skip:
        import cv2

        cv2.setNumThreads(args.threads)  # the CPU threads the model rows had
        for kind in ("csrt", "kcf"):
            ms = bm.opencv_ms(kind, frames, boxes[0])
            if ms is not None:
                rows.append(bm.Row("opencv", kind.upper(), ms))

    if "node" not in skip:  # the node and its in-process reference get the same frames
        rows += _node_rows(args, *bm.synthetic_frames(args.node_frames + 1, size=args.node_size), node_model)

    print(format_table(rows))
    if plot is not None:
        write_plot(rows, plot, str(device))
        print(f"plot written to {plot}")
    return 0


def _device(text: str) -> torch.device:
    """The --device asked for; a CUDA device that is absent is an error, not the CPU's timings under its name."""
    reason = cuda_unavailable_reason(text)
    if reason is not None:
        raise CliError(f"--device {text}: {reason} (use --device cpu)")
    try:
        return resolve_device(text)
    except ValueError as exc:  # not a device name
        raise CliError(exc) from None


def _tracker_rows(model, variant: str, device: str, frames, boxes, rounds: int) -> list[bm.Row]:
    """The masked eager baseline (float32, as the official code runs, and at the device's reduced
    precision) and each fast runtime, measured round-robin in the same rounds: each fast row's
    speedup over the float32 baseline, and over the baseline of its own precision (what the fast
    path gives apart from the precision)."""
    fast = bm.tracker_runtimes(device)
    runner = functools.cache(lambda backend, precision: with_backend(model, backend, precision))  # one copy each
    baselines = {precision: f"{variant} baseline (masked eager{'' if precision == 'float32' else ' ' + precision})"
                 for precision in ("float32", bm.reduced_precision(device))}
    measures = {name: lambda r=runner("torch", precision): bm.tracker_ms(r, frames, boxes, "official",
                                                                         drop_pruned=False)
                for precision, name in baselines.items()}
    for runtime in fast:
        measures[f"{variant} {runtime.label}"] = lambda r=runner(runtime.backend, runtime.precision): bm.tracker_ms(
            r, frames, boxes, "bounded")
    measured = bm.interleaved(measures, rounds)
    base_ms = measured[baselines["float32"]][0]
    rows = [bm.Row("tracker", name, measured[name][0], {"speedup": f"{base_ms / measured[name][0]:.2f}x"})
            for name in baselines.values()]
    for runtime in fast:
        name = f"{variant} {runtime.label}"
        ms, stages = measured[name]
        split = " ".join(f"{k} {v:.1f}" for k, v in stages.items())
        same = measured[baselines[runtime.precision]][0] / ms
        rows.append(bm.Row("tracker", name, ms, {"speedup": f"{base_ms / ms:.2f}x",
                                                 "same precision": f"{same:.2f}x", "stages ms": split}))
    return rows


def _node_rows(args: argparse.Namespace, frames, boxes, model=None) -> list[bm.Row]:
    """End-to-end latency through the ROS node next to the same model's in-process tracker time,
    both at each of ``--node-rates``: the node's overhead is their ratio at the same frame pacing.
    ``model``: the --node-weights network, loaded already when main checked the file."""
    from ..demo import ros_missing

    missing = ros_missing()
    if missing is not None:
        print(f"node rows skipped: {missing}", file=sys.stderr)
        return []
    with tempfile.TemporaryDirectory(prefix="fartrack_bench_") as folder:
        weights, variant = args.node_weights, _node_variant(args)
        try:
            if not weights and variant:  # an official size: random weights
                model = bm.load_variant(variant)
                weights, variant = str(Path(folder) / f"{variant}_random.pth"), ""
                save_checkpoint(model, weights)
            else:
                model = model if model is not None else load_checkpoint(weights or None, variant=variant or None)
            return _node_rows_for(args, model, weights, variant, frames, boxes)
        except (RuntimeError, TimeoutError, ValueError) as exc:  # the other rows still get printed
            print(f"node rows skipped: {exc}", file=sys.stderr)
            return []


def _node_variant(args: argparse.Namespace) -> str:
    """--node-variant as the node's variant parameter takes it ('bundled' names no variant)."""
    return "" if args.node_variant == "bundled" else args.node_variant


def _node_rows_for(args: argparse.Namespace, model, weights: str, variant: str, frames, boxes) -> list[bm.Row]:
    """The node rows of one model (``weights``/``variant`` as the node is given them)."""
    from ..executors import has_events_executor

    executors = args.node_executors
    if "events" in executors and not has_events_executor():
        print("node rows with executor events skipped: this rclpy has no EventsExecutor", file=sys.stderr)
        executors = [kind for kind in executors if kind != "events"]
    runs_at, warning = precision_for_device(args.node_precision, "cpu")  # what the node runs (it warns)
    if warning:
        print(f"{PROG}: warning: node rows: {warning}", file=sys.stderr)
    label = model.cfg.name if runs_at == "float32" else f"{model.cfg.name} {runs_at}"
    if args.node_size != (320, 240):
        label += " {}x{}".format(*args.node_size)
    if args.node_unpinned:
        label += " unpinned"
    rows = []
    runner = with_backend(model, "torch", runs_at)
    thread_counts = _node_thread_counts(args)
    for threads in thread_counts:
        named = label if thread_counts == [args.threads] else f"{label} {_count(threads, 'thread')}"
        torch.set_num_threads(threads)  # the reference's, as many as the node's cpu_threads
        try:
            for rate_hz in args.node_rates:
                rows += _node_rows_at(args, runner, weights, variant, frames, boxes, executors, threads,
                                      rate_hz, named)
        finally:
            torch.set_num_threads(args.threads)
    return rows


def _count(number: int, noun: str) -> str:
    """'1 thread', '2 threads'."""
    return f"{number} {noun}{'s' * (number != 1)}"


def _node_thread_counts(args: argparse.Namespace) -> list[int]:
    """The node's cpu_threads values the node rows run at: --node-threads, else --threads and the
    node's automatic count where that differs (its default: one CPU left to rclpy and Fast DDS)."""
    if args.node_threads:
        return args.node_threads
    from ..tracker_loading import auto_cpu_threads

    return list(dict.fromkeys([args.threads, auto_cpu_threads()]))


def _node_rows_at(args: argparse.Namespace, runner, weights: str, variant: str, frames, boxes,
                  executors: list[str], threads: int, rate_hz: float, label: str) -> list[bm.Row]:
    """The node rows at one thread count and frame rate: the in-process reference and each executor's
    node in turn over --node-rounds rounds."""
    from ..node_latency import measure_node_latency

    rows = []
    period_s = 1.0 / rate_hz if rate_hz > 0 else 0.0
    pace = f"at {rate_hz:g} Hz" if rate_hz > 0 else "back to back"
    references: list[float] = []
    runs: dict[str, list[tuple]] = {executor: [] for executor in executors}  # (NodeLatency, round's reference)
    for round_index in range(args.node_rounds):
        # the reference and each executor's node in turn, the order rotating each round, so the
        # machine's drift over a round falls on every side alike
        turn = round_index % (len(executors) + 1)
        order = (["reference", *executors] * 2)[turn:turn + len(executors) + 1]
        reference_ms, measured = None, {}
        for item in order:
            if item == "reference":
                # frame -> boxes in process, the span the node's latency ends at (detections sent)
                reference_ms = _reference_ms(runner, frames, boxes, period_s)
                continue
            known_ms = reference_ms if reference_ms is not None else references[-1]
            try:
                measured[item] = measure_node_latency(
                    frames, boxes[0], threads=threads, weights=weights, variant=variant,
                    precision=args.node_precision, period_s=period_s,
                    frame_timeout_s=max(1.0, 20 * known_ms / 1000),
                    pin_cpu_threads=not args.node_unpinned, executor=item)
            except (RuntimeError, TimeoutError) as exc:  # the rows measured so far still count
                print(f"node row with executor {item} {pace} at {_count(threads, 'thread')} skipped: {exc}",
                      file=sys.stderr)
        references.append(reference_ms)
        for executor, result in measured.items():
            runs[executor].append((result, reference_ms))
    tracker_ms = statistics.median_low(references)
    rows.append(bm.Row("node", f"{label} tracker in-process {pace}", tracker_ms,
                       {"role": "reference", "rounds": str(len(references))}))
    for executor in executors:
        if not runs[executor]:
            continue
        # the round of the median overhead: its latency, its reference, its ratio, all of one round
        ranked = sorted(runs[executor], key=lambda run: run[0].p50_ms / run[1])
        result, reference = ranked[(len(ranked) - 1) // 2]
        stages = " ".join(f"{k} {v:.1f}" for k, v in result.stage_p50_ms.items())
        name = label if executor == "single_threaded" else f"{label} {executor}"
        rows.append(bm.Row("node", f"{name} publish->detections {pace}", result.p50_ms, {
            "p95 ms": f"{result.p95_ms:.1f}", "p99 ms": f"{result.p99_ms:.1f}", "frames": str(result.sent),
            "lost": str(result.lost), "rounds": str(len(ranked)),
            "overhead": f"{100.0 * (result.p50_ms / reference - 1.0):+.0f}% ({result.p50_ms - reference:+.2f} ms "
                        f"over {reference:.2f})",
            "in-node stages ms": stages}))
    return rows


def _reference_ms(runner, frames, boxes, period_s: float) -> float:
    """The node rows' in-process reference: frame -> boxes (detections handed out), in this
    process's main thread, the one thread of it that runs torch: a worker thread would share the
    CPUs with the main thread's OpenMP team (the model rows ran there) and ran the bundled model
    2.3x slower (5.4 against 2.3 ms) as libgomp stops spin-waiting when its threads outnumber
    the CPUs; the node's compute thread is its only team too (2.4 ms in a process set up as the
    node, pinned or not)."""
    return bm.tracker_ms(runner, frames, boxes, "bounded", period_s=period_s, to_results=True)[0]


def format_table(rows: list[bm.Row]) -> str:
    """Plain-text table: section, name, ms, FPS, then the row's extra columns."""
    width = max([48, *(len(row.name) for row in rows)])  # the node rows' names are long
    lines = [f"{'section':<9} {'name':<{width}} {'ms':>8} {'FPS':>8}  notes", "-" * (width + 52)]
    for row in rows:
        notes = "  ".join(f"{k}: {v}" for k, v in row.extra.items())
        lines.append(f"{row.section:<9} {row.name:<{width}} {row.ms:>8.2f} {row.fps:>8.1f}  {notes}")
    return "\n".join(lines)


def write_plot(rows: list[bm.Row], path: Path, device: str = "cpu") -> None:
    """Horizontal bar chart of milliseconds per row, one colour per section: one unit for every
    row, throughput and latency alike (a paced latency has no meaningful FPS); a log scale when
    the rows span more than 20x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"model": "tab:blue", "tracker": "tab:green", "scaling": "tab:purple", "opencv": "tab:gray",
               "node": "tab:red"}
    fig, ax = plt.subplots(figsize=(10, 0.28 * len(rows) + 1.5))
    names = [f"{r.section}: {r.name}" for r in rows][::-1]
    ax.barh(names, [r.ms for r in rows][::-1], color=[colours.get(r.section, "k") for r in rows][::-1])
    shortest, longest = min((r.ms for r in rows), default=1.0), max((r.ms for r in rows), default=1.0)
    if longest > 20 * shortest:
        ax.set_xscale("log")
        ax.set_xlim(left=shortest / 2)
    ax.set_xlabel("milliseconds per frame; node rows: p50 latency (lower is better)")
    ax.set_title(f"fartrack-bench on {device}, {torch.get_num_threads()} CPU threads")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
