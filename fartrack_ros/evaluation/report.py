"""Run several trackers over the same sequences and print one table of their scores."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from fartrack_ros.data.sequence import TrackingSequence
from fartrack_ros.evaluation.metrics import SequenceResult, TrackerScores, score_results
from fartrack_ros.evaluation.runners import TrackerRunner, track_sequence
from fartrack_ros.evaluation.saved_results import saved_result
from fartrack_ros.tracker.tracker import checked_init_box

COLUMNS = ("tracker", "AO", "SR0.5", "SR0.75", "AUC", "Prec@20", "NPrec@0.2", "FPS")


def unscorable_reason(sequence: TrackingSequence) -> str | None:
    """Why a tracker cannot be scored on ``sequence`` (None when it can): no box to start from in
    frame 1 (none, or one FARTrack's tracker refuses: under a pixel, outside the image), or ground
    truth for the first frame only (a GOT-10k test split's sequence), which would score every later
    frame as a miss by the LaSOT rules."""
    x, y, w, h = sequence.boxes[0]
    if not (np.isfinite(sequence.boxes[0]).all() and w > 0 and h > 0):
        return f"frame 1 has no box to start from ({x:g},{y:g},{w:g},{h:g})"
    width, height = sequence.image_size
    try:
        checked_init_box(sequence.boxes[0], height, width)
    except ValueError as exc:
        return f"frame 1's box cannot start a tracker: {exc}"
    annotated = sequence.attributes.get("annotated_frames", len(sequence))
    if annotated < len(sequence):
        return f"only {annotated} of its {len(sequence)} frames have ground truth (a test split's sequence)"
    return None


def evaluate_trackers(runners: list[TrackerRunner], sequences: Iterable[TrackingSequence],
                      max_frames: int | None = None,
                      progress: Callable[[TrackingSequence, dict[str, SequenceResult]], None] | None = None,
                      saved: dict[str, Path] | None = None,
                      ) -> tuple[dict[str, TrackerScores], dict[str, list[SequenceResult]]]:
    """Track every sequence with every runner (each sequence is read or generated once), and
    score the predictions ``saved`` in results folders (by tracker name) beside them.

    Returns (scores per tracker name, per-sequence results per tracker name). ``progress`` is
    called after each sequence with that sequence's results.
    """
    saved = saved or {}
    results: dict[str, list[SequenceResult]] = {name: [] for name in [runner.name for runner in runners] + list(saved)}
    for sequence in sequences:
        if (reason := unscorable_reason(sequence)) is not None:
            raise ValueError(f"sequence {sequence.name} cannot be scored: {reason}")
        current = {}
        for runner in runners:
            current[runner.name] = track_sequence(runner, sequence, max_frames)
        for name, folder in saved.items():
            current[name] = saved_result(folder, sequence, max_frames)
        for name, result in current.items():
            results[name].append(result)
        if progress is not None:
            progress(sequence, current)
    if not any(results.values()):
        raise ValueError("no sequences to evaluate")
    return {name: score_results(rows) for name, rows in results.items()}, results


def format_table(scores: dict[str, TrackerScores]) -> str:
    """A fixed-width text table, one row per tracker, in the order given (FPS "-" where untimed)."""
    rows = [COLUMNS] + [(name, f"{s.ao:.3f}", f"{s.sr50:.3f}", f"{s.sr75:.3f}", f"{s.success_auc:.3f}",
                         f"{s.precision:.3f}", f"{s.norm_precision:.3f}",
                         f"{s.fps:.1f}" if math.isfinite(s.fps) else "-")
                        for name, s in scores.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
