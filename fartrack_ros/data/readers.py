"""Open a tracking dataset folder in either layout, detecting which one it is."""

from __future__ import annotations

from pathlib import Path

from fartrack_ros.data.got10k import is_got10k_sequence, load_got10k
from fartrack_ros.data.lasot import is_lasot_sequence, load_lasot
from fartrack_ros.data.sequence import TrackingSequence

LAYOUTS = ("auto", "got10k", "lasot")


def detect_layout(root: str | Path) -> str:
    """``"got10k"`` or ``"lasot"`` for a dataset folder; ValueError saying what was found otherwise.

    GOT-10k: ``list.txt`` or sequence folders (groundtruth.txt + frames) directly under the root.
    LaSOT: class folders whose sequence folders hold ``img/`` and groundtruth.txt. A LaSOT class
    folder given as the root is refused (as a GOT-10k split its full-occlusion flags would go unread).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    children = sorted(p for p in root.iterdir() if p.is_dir())
    lasot_sequences = [c for c in children if is_lasot_sequence(c) and (c / "full_occlusion.txt").is_file()]
    if lasot_sequences and not (root / "list.txt").is_file():  # read as GOT-10k, its occlusion flags go unread
        raise ValueError(f"{root} is a LaSOT class folder (it holds {lasot_sequences[0].name}): give the LaSOT "
                         f"root, {root.parent}")
    if (root / "list.txt").is_file() or any(is_got10k_sequence(c) for c in children):
        return "got10k"
    if any(is_lasot_sequence(s) for c in children for s in c.iterdir() if s.is_dir()):
        return "lasot"
    splits = [c.name for c in children if c.name in ("train", "val", "test")]
    hint = f" (it has {', '.join(splits)}: point at one split, e.g. {root / splits[0]})" if splits else ""
    raise ValueError(f"{root} is neither a GOT-10k split nor a LaSOT root{hint}")


def load_dataset(root: str | Path, layout: str = "auto") -> list[TrackingSequence]:
    """Every sequence under ``root`` (frames load lazily), in the given or detected layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r} (choose one of {LAYOUTS})")
    if layout == "auto":
        layout = detect_layout(root)
    return load_got10k(root) if layout == "got10k" else load_lasot(root)
