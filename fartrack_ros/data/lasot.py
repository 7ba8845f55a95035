"""LaSOT folder layout: read a dataset, write a sequence.

``<root>/<class>/<class>-<n>/`` holds ``img/00000001.jpg, ...``, ``groundtruth.txt`` (one
``x,y,w,h`` line per frame, comma-separated), ``full_occlusion.txt`` and ``out_of_view.txt``
(one line of comma-separated 0/1 flags, one per frame) and optionally ``nlp.txt``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from fartrack_ros.data.files import frame_files, read_boxes, read_flags, write_boxes, write_frames
from fartrack_ros.data.sequence import TrackingSequence

SEQUENCE_PATTERN = re.compile(r"^(?P<cls>.+)-(?P<index>\d+)$")


def is_lasot_sequence(folder: Path) -> bool:
    """Whether ``folder`` looks like a LaSOT sequence (``groundtruth.txt`` beside ``img/``), for layout detection."""
    return (folder / "groundtruth.txt").is_file() and (folder / "img").is_dir()


def read_lasot_sequence(folder: str | Path) -> TrackingSequence:
    """One LaSOT sequence folder as a lazily loaded `TrackingSequence`."""
    folder = Path(folder)
    paths = frame_files(folder)
    if not paths:
        raise FileNotFoundError(f"no numbered frames (00000001.jpg ...) in {folder / 'img'}")
    boxes = np.nan_to_num(read_boxes(folder / "groundtruth.txt"), nan=0.0)
    n = len(paths)
    if len(boxes) != n:
        raise ValueError(f"{folder}: groundtruth.txt has {len(boxes)} boxes for {n} frames")
    flags = {}
    for name in ("full_occlusion", "out_of_view"):
        path = folder / f"{name}.txt"
        values = read_flags(path) if path.is_file() else np.zeros(n, np.int64)
        if len(values) != n:
            raise ValueError(f"{path}: {len(values)} flags for {n} frames")
        flags[name] = values > 0
    absent = flags["full_occlusion"] | flags["out_of_view"] | (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0)
    attributes = {}
    if (folder / "nlp.txt").is_file():
        attributes["description"] = (folder / "nlp.txt").read_text().strip()
    return TrackingSequence(name=folder.name, boxes=boxes, absent=absent, frame_paths=paths,
                            full_occlusion=flags["full_occlusion"], out_of_view=flags["out_of_view"],
                            attributes=attributes)


def _sort_key(folder: Path):
    match = SEQUENCE_PATTERN.match(folder.name)
    return (match["cls"], int(match["index"])) if match else (folder.name, 0)


def load_lasot(root: str | Path) -> list[TrackingSequence]:
    """All sequences under a LaSOT root (``<root>/<class>/<class>-<n>``), by class then number."""
    root = Path(root)
    # a sequence folder with ground truth and no img/ is one that reading says is incomplete
    folders = [seq for cls in sorted(p for p in root.iterdir() if p.is_dir())
               for seq in cls.iterdir() if seq.is_dir() and (seq / "groundtruth.txt").is_file()]
    if not folders:
        raise FileNotFoundError(f"no LaSOT sequences in {root} (expected <class>/<class>-<n>/img and groundtruth.txt)")
    return [read_lasot_sequence(folder) for folder in sorted(folders, key=_sort_key)]


def check_class_name(class_name: str) -> None:
    """ValueError unless ``class_name`` can name a LaSOT class folder inside the root: not empty,
    no '-' (LaSOT names are <class>-<n>), no path separator, not '.' or '..'."""
    if not class_name or class_name in (".", "..") or any(c in class_name for c in "-/\\"):
        raise ValueError(f"class name {class_name!r} must be a folder name without '-', '/' or '\\' and not "
                         "'.' or '..' (LaSOT names are <class>-<n>)")


def write_lasot(sequence: TrackingSequence, root: str | Path, class_name: str = "synthetic",
                index: int = 1, jpeg_quality: int = 95) -> Path:
    """Write ``sequence`` as ``root/<class_name>/<class_name>-<index>/`` in the LaSOT layout.

    Writes img/*.jpg, groundtruth.txt, full_occlusion.txt and out_of_view.txt; returns the folder.
    """
    check_class_name(class_name)
    folder = Path(root) / class_name / f"{class_name}-{index}"
    write_frames(sequence, folder / "img", jpeg_quality)
    write_boxes(folder / "groundtruth.txt", sequence.boxes)
    for name, flags in (("full_occlusion", sequence.full_occlusion), ("out_of_view", sequence.out_of_view)):
        (folder / f"{name}.txt").write_text(",".join(str(int(f)) for f in flags) + "\n")
    (folder / "nlp.txt").write_text(f"generated sequence {sequence.name}\n")
    return folder
