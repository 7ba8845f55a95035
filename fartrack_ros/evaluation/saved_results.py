"""Predictions saved by any tracker, scored as `fartrack-eval` scores the ones it makes.

A results folder holds one box file per sequence, in either common layout:

- pytracking's (and the LaSOT toolkit's): ``<folder>/<sequence>.txt``, with per-frame seconds in
  ``<folder>/<sequence>_time.txt`` (the got10k toolkit's OTB/LaSOT experiments: in
  ``<folder>/times/<sequence>_time.txt``) when timed;
- the GOT-10k toolkit's: ``<folder>/<sequence>/<sequence>_001.txt`` (the first of its repeats),
  with ``<sequence>_time.txt`` beside it, one comma-separated column per repeat (the first read).

FPS needs every sequence timed for every frame scored: otherwise it is unknown (NaN), not a rate
over the timed part.

Boxes are ``x,y,w,h`` per line, separated by commas, tabs or spaces. The first row is replaced by
the ground truth's first box (the initialisation, as pytracking does); rows beyond the sequence
are ignored, and a file with fewer rows than the frames scored is an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fartrack_ros.data.files import read_boxes
from fartrack_ros.data.sequence import TrackingSequence
from fartrack_ros.evaluation.metrics import SequenceResult


def result_files(folder: Path, sequence_name: str) -> tuple[Path, Path]:
    """(boxes file, time file) of ``sequence_name`` in a results ``folder`` (the time file may
    not exist); FileNotFoundError naming both layouts when neither holds the boxes."""
    flat = folder / f"{sequence_name}.txt"
    if flat.is_file():
        times = folder / f"{sequence_name}_time.txt"
        return flat, times if times.is_file() else folder / "times" / f"{sequence_name}_time.txt"
    nested = folder / sequence_name / f"{sequence_name}_001.txt"
    if nested.is_file():
        return nested, folder / sequence_name / f"{sequence_name}_time.txt"
    raise FileNotFoundError(f"no results for sequence {sequence_name!r} in {folder}: expected {flat.name} "
                            f"(pytracking) or {sequence_name}/{nested.name} (GOT-10k toolkit)")


def saved_result(folder: Path, sequence: TrackingSequence, max_frames: int | None = None) -> SequenceResult:
    """The `SequenceResult` of the boxes saved for ``sequence`` in ``folder`` (its first
    ``max_frames`` frames, all when None)."""
    boxes_path, time_path = result_files(folder, sequence.name)
    count = SequenceResult.frame_count(sequence, max_frames)
    pred = read_boxes(boxes_path)
    if len(pred) < count:
        raise ValueError(f"{boxes_path} has {len(pred)} boxes for the {count} frames of {sequence.name!r}")
    pred = pred[:count]
    pred[0] = sequence.boxes[0]
    track_time_s = float("nan")  # not timed: FPS unknown
    if time_path.is_file():
        seconds = _first_column(time_path)
        if len(seconds) >= count:
            track_time_s = float(seconds[1:count].sum())  # the updates: the initialisation is not tracking
    return SequenceResult.of(sequence, pred, sequence.image_size, track_time_s)


def _first_column(path: Path) -> np.ndarray:
    """Seconds per frame from a time file: one number per line, or one comma-separated column per
    repeat (the GOT-10k toolkit's), of which the first."""
    try:
        return np.array([float(line.split(",")[0]) for line in path.read_text().splitlines() if line.strip()],
                        dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: not seconds per frame ({exc})") from None
