"""fartrack-eval: AO / SR / success AUC / precision / FPS of trackers on the same sequences.

By default it scores FARTrack, OpenCV CSRT and OpenCV KCF on the held-out synthetic set (50
sequences from seed ``EVAL_SEED_BASE`` = 1,000,000; training uses seeds below that), prints one
table and, with ``--plot``, writes a success plot. ``--dataset ROOT`` scores a GOT-10k split or a
LaSOT root instead. Metric definitions: ``fartrack_ros/evaluation/metrics.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from fartrack_ros.data.readers import LAYOUTS, load_dataset
from fartrack_ros.data.synthetic import EVAL_SEED_BASE, TRAIN_SEED_RANGE, SyntheticConfig, generate_sequence
from fartrack_ros.evaluation.metrics import sequence_ao
from fartrack_ros.evaluation.plots import figure_path, plot_success
from fartrack_ros.evaluation.report import evaluate_trackers, format_table, unscorable_reason
from fartrack_ros.evaluation.runners import RUNNER_NAMES, make_runner
from fartrack_ros.evaluation.saved_results import result_files

from ..heap import keep_freed_memory
from .messages import CliError, command, warn
from .options import add_runtime_options, apply_threads, int_at_least, non_negative_int, positive_int, variant_name

PROG = "fartrack-eval"


def build_parser() -> argparse.ArgumentParser:
    """fartrack-eval's options: the sequences (generated, --dataset or saved --results), the trackers
    and how they run, and where the report goes."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                     epilog="Metrics: AO, SR0.5, SR0.75 by GOT-10k's rules; success AUC, "
                                            "precision at 20 px and normalized precision at 0.2 by LaSOT's, as "
                                            "pytracking computes them. Definitions, and where they differ from "
                                            "the toolkits: fartrack_ros/evaluation/metrics.py")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", metavar="ROOT", help="a GOT-10k split folder or a LaSOT root")
    source.add_argument("--synthetic", metavar="N", type=positive_int, default=None,
                        help="generate N held-out sequences (default 50 when no --dataset)")
    parser.add_argument("--layout", choices=LAYOUTS, default="auto", help="layout of --dataset (default: detect)")
    parser.add_argument("--seed-base", type=non_negative_int, default=EVAL_SEED_BASE,
                        help=f"first seed of the synthetic set (default {EVAL_SEED_BASE}; "
                             f"training uses seeds < {TRAIN_SEED_RANGE.stop})")
    parser.add_argument("--width", type=int, default=SyntheticConfig.width, help="synthetic frame width")
    parser.add_argument("--height", type=int, default=SyntheticConfig.height, help="synthetic frame height")
    parser.add_argument("--grey", action="store_true",
                        help="score on the frames as a grey camera gives them (BT.601 luma in all three channels; "
                             "generated scenes stay those drawn for colour unless --luma-contrast)")
    parser.add_argument("--luma-contrast", action="store_true",
                        help="draw the generated scenes for a mono camera: objects differ in brightness as "
                             "well as hue (with --grey, what a mono camera sees of a scene)")
    parser.add_argument("--trackers", default="fartrack,csrt,kcf",
                        help="comma-separated: fartrack, csrt, kcf (default all three; '' with --results: none)")
    parser.add_argument("--results", metavar="DIR", action="append", default=[], type=Path,
                        help="a folder of predictions another tracker saved, scored beside these as a row named "
                             "after the folder: <seq>.txt (pytracking, LaSOT toolkit) or <seq>/<seq>_001.txt "
                             "(GOT-10k toolkit), x,y,w,h per frame, with <seq>_time.txt for FPS; repeatable")
    parser.add_argument("--weights", default=None, help="FARTrack checkpoint (default: the bundled model)")
    parser.add_argument("--variant", default="", type=variant_name,
                        help="tiny/nano/pico: the first 15/10/6 layers of the checkpoint, or a number N: the "
                             "first N (a self-distilled checkpoint); empty keeps them all")
    parser.add_argument("--device", default="cpu", help="FARTrack device: auto, cpu, cuda, cuda:N (default cpu)")
    add_runtime_options(parser)
    parser.add_argument("--max-frames", type=int_at_least(2), default=None,
                        help="track at most this many frames per sequence (at least 2: the first only "
                             "initialises the trackers, the later ones are scored)")
    parser.add_argument("--max-sequences", type=positive_int, default=None, help="use at most this many dataset sequences")
    parser.add_argument("--plot", metavar="PNG", default=None,
                        help="write a success plot here (.png added to a name without an extension; "
                             ".pdf, .svg and the other formats of matplotlib work too)")
    parser.add_argument("--json", metavar="PATH", default=None, help="write the scores (and per-sequence AO) as JSON")
    parser.add_argument("--verbose", action="store_true", help="print each sequence's AO per tracker to stderr")
    return parser


def _sequences(args):
    if args.dataset:
        sequences = _scorable(load_dataset(args.dataset, args.layout), args.dataset)
        return sequences[:args.max_sequences] if args.max_sequences else sequences, len(sequences)
    count = 50 if args.synthetic is None else args.synthetic
    if args.seed_base in TRAIN_SEED_RANGE:
        warn(PROG, f"seed base {args.seed_base} lies in the training seed range "
                   f"({TRAIN_SEED_RANGE.start}..{TRAIN_SEED_RANGE.stop - 1}); the set is not held out")
    config = SyntheticConfig(width=args.width, height=args.height, luma_contrast=args.luma_contrast)
    return (generate_sequence(args.seed_base + k, config, lazy=True) for k in range(count)), count


def _scorable(sequences: list, dataset: Path) -> list:
    """The sequences a tracker can be scored on; the others left out with a warning (before any
    tracking: all of them left out is an error)."""
    reasons = {s.name: reason for s in sequences if (reason := unscorable_reason(s)) is not None}
    kept = [s for s in sequences if s.name not in reasons]
    if reasons:
        name, reason = next(iter(reasons.items()))
        if not kept:
            raise CliError(f"no sequence of {dataset} can be scored, e.g. {name}: {reason}")
        warn(PROG, f"{len(reasons)} of the {len(sequences)} sequences of {dataset} are left out, "
                   f"e.g. {name}: {reason}")
    return kept


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    """Score the trackers on the sequences and print the table (and --plot, --json); exit 1 for
    unusable weights, datasets or results, 2 for a malformed command line."""
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    apply_threads(args.threads)
    names = [n.strip().lower() for n in args.trackers.split(",") if n.strip()]
    if not names and not args.results:
        raise CliError("--trackers is empty (give e.g. fartrack,csrt,kcf, or --results DIR)", code=2)
    unknown = [n for n in names if n not in RUNNER_NAMES]
    if unknown:
        raise CliError(f"unknown tracker {unknown[0]!r} in --trackers (choose from {', '.join(RUNNER_NAMES)})", code=2)
    saved = _saved_results(args.results, names)
    if "fartrack" not in names and (args.weights or args.variant):
        warn(PROG, "--weights and --variant apply to the fartrack tracker, which --trackers leaves out")
    if not args.dataset and (args.max_sequences or args.layout != "auto"):
        warn(PROG, "--max-sequences and --layout apply to --dataset only (--synthetic N sets the count)")
    if args.dataset and args.luma_contrast:
        warn(PROG, "--luma-contrast applies to generated sequences only; --dataset's frames are scored as they are")
    for output in (args.json, args.plot):  # before minutes of tracking, not after
        if output and Path(output).is_dir():
            raise CliError(f"{output} is a folder; give a file path", code=2)
    try:
        plot = figure_path(args.plot) if args.plot else None
    except ValueError as exc:  # a format matplotlib cannot write
        raise CliError(exc, code=2) from None
    try:
        runners = [make_runner(n, weights=args.weights, variant=args.variant or None, device=args.device,
                               backend=args.backend, precision=args.precision) for n in names]
        sequences, count = _sequences(args)
        if saved:  # every results file found before hours of tracking, not after
            sequences = list(sequences)
            for folder in saved.values():
                for sequence in sequences:
                    result_files(folder, sequence.name)
        if args.grey:
            sequences = (sequence.as_grey() for sequence in sequences)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:  # unusable weights, dataset or results
        raise CliError(exc) from None

    def progress(sequence, current):
        if args.verbose:
            aos = "  ".join(f"{name} {sequence_ao(result):.3f}" for name, result in current.items())
            print(f"{sequence.name}: {aos}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    try:
        scores, results = evaluate_trackers(runners, sequences, args.max_frames, progress, saved)
    except (ValueError, OSError, RuntimeError) as exc:  # an unreadable frame, an unusable first box
        raise CliError(exc) from None
    source = args.dataset or f"synthetic seeds {args.seed_base}..{args.seed_base + count - 1}"
    if args.luma_contrast and not args.dataset:
        source += ", scenes drawn for a mono camera"
    if args.grey:
        source += ", in grey"
    scored = next(iter(scores.values())).frames
    used = len(next(iter(results.values())))
    if scored == 0:
        raise CliError(f"no frame of {source} can be scored: none after the first shows the target "
                       "(a GOT-10k test split has only first-frame boxes)")
    print(f"{used} sequences from {source}; {scored} frames scored per tracker "
          f"({time.perf_counter() - started:.0f} s)")
    models = {runner.name: runner.description for runner in runners if hasattr(runner, "description")}
    for name, description in models.items():
        print(f"{name}: {description}")
    print(format_table(scores))
    print("AO, SR: GOT-10k rules (frames after the first, pooled; frames without the target left out); "
          "AUC, Prec@20, NPrec@0.2: LaSOT rules as pytracking's (every frame, per-sequence mean; frames "
          "without the target count as misses); definitions: fartrack_ros/evaluation/metrics.py")
    try:
        if plot is not None:
            print(f"success plot: {plot_success(scores, plot, title=f'Success plot ({used} sequences)')}")
        if args.json:
            report = {name: {"ao": s.ao, "sr50": s.sr50, "sr75": s.sr75, "success_auc": s.success_auc,
                             "precision": s.precision, "norm_precision": s.norm_precision,
                             "fps": _finite_or_none(s.fps),
                             "success_curve": s.success_curve.tolist(),
                             "sequence_ao": {r.name: _finite_or_none(sequence_ao(r)) for r in results[name]}}
                      for name, s in scores.items()}
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            for name, description in models.items():
                report[name]["model"] = description
            Path(args.json).write_text(json.dumps({"source": source, "trackers": report}, indent=2,
                                                  allow_nan=False))
    except OSError as exc:
        raise CliError(exc) from None
    return 0


def _saved_results(folders: list[Path], tracker_names: list[str]) -> dict[str, Path]:
    """``--results`` folders by the row name each gets: the folder's name, made unique."""
    saved: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            raise CliError(f"--results {folder}: not a folder", code=2)
        name = folder.resolve().name or str(folder)
        while name in saved or name in tracker_names:
            name += "'"
        saved[name] = folder
    return saved


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: a figure that could not be computed (no frame timed or scored) is null."""
    return value if math.isfinite(value) else None


if __name__ == "__main__":
    sys.exit(main())
