"""GOT-10k folder layout: read a split, write a sequence.

A split folder holds one folder per sequence and usually ``list.txt`` (their names, one per line).
A sequence folder holds the frames ``00000001.jpg, 00000002.jpg, ...`` (the official layout) or
``img/00000001.jpg, ...`` (also read), ``groundtruth.txt`` (one ``x,y,w,h`` line per frame; the
official test split has only the first), and optionally ``absence.label`` (1 = target absent),
``cover.label`` (visible ratio level 0..8, 0 = fully occluded), ``cut_by_image.label`` and
``meta_info.ini``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fartrack_ros.data.files import frame_files, read_boxes, read_flags, remove_frames, write_boxes, write_frames
from fartrack_ros.data.sequence import TrackingSequence, cover_to_ratio


def is_got10k_sequence(folder: Path) -> bool:
    """Whether ``folder`` looks like a GOT-10k sequence (``groundtruth.txt`` and numbered frames), for
    layout detection; frames with a gap count, so that reading it names the missing one."""
    if not (folder / "groundtruth.txt").is_file():
        return False
    try:
        return bool(frame_files(folder))
    except ValueError:  # numbered frames with a gap: reading the sequence says which is missing
        return True


def read_got10k_sequence(folder: str | Path) -> TrackingSequence:
    """One GOT-10k sequence folder as a lazily loaded `TrackingSequence`."""
    folder = Path(folder)
    paths = frame_files(folder)
    if not paths:
        raise FileNotFoundError(f"no numbered frames (00000001.jpg ...) in {folder} or {folder / 'img'}")
    boxes = read_boxes(folder / "groundtruth.txt")
    n = len(paths)
    attributes = {"annotated_frames": len(boxes)}
    test_split = len(boxes) == 1 and not any((folder / name).is_file() for name in ("absence.label", "cover.label"))
    if len(boxes) < n and test_split:  # the official test split annotates only the first frame
        boxes = np.vstack([boxes, np.zeros((n - len(boxes), 4))])
    elif len(boxes) != n:
        raise ValueError(f"{folder}: groundtruth.txt has {len(boxes)} boxes for {n} frames"
                         + (" (only a test split's sequences have just the first box, and no absence/cover labels)"
                            if len(boxes) < n else ""))
    boxes = np.nan_to_num(boxes, nan=0.0)
    absent = (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0)
    absent[attributes["annotated_frames"]:] = True
    visible = None
    if (folder / "absence.label").is_file():
        absent |= _per_frame(read_flags(folder / "absence.label"), n, folder / "absence.label") > 0
    if (folder / "cover.label").is_file():
        cover = _per_frame(read_flags(folder / "cover.label"), n, folder / "cover.label")
        absent |= cover == 0
        visible = cover_to_ratio(cover)
    cut = folder / "cut_by_image.label"
    if cut.is_file():
        attributes["cut_by_image"] = _per_frame(read_flags(cut), n, cut) > 0
    return TrackingSequence(name=folder.name, boxes=boxes, absent=absent, frame_paths=paths,
                            visible_ratio=visible, attributes=attributes)


def _per_frame(values: np.ndarray, n: int, path: Path) -> np.ndarray:
    if len(values) != n:
        raise ValueError(f"{path}: {len(values)} values for {n} frames")
    return values


def load_got10k(root: str | Path) -> list[TrackingSequence]:
    """All sequences of a GOT-10k split folder, in ``list.txt`` order when it exists."""
    root = Path(root)
    listing = root / "list.txt"
    if listing.is_file():
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        missing = [name for name in names if not (root / name).is_dir()]
        if missing:
            raise FileNotFoundError(f"{listing} names {len(missing)} missing folders, e.g. {missing[0]}")
        folders = [root / name for name in names]
    else:
        # a folder with ground truth and no frames is a sequence that reading says is incomplete
        folders = sorted(p for p in root.iterdir() if p.is_dir() and (p / "groundtruth.txt").is_file())
    if not folders:
        raise FileNotFoundError(f"no GOT-10k sequences in {root} (expected <seq>/groundtruth.txt and frames)")
    return [read_got10k_sequence(folder) for folder in folders]


def write_got10k(sequence: TrackingSequence, root: str | Path, img_subfolder: bool = False,
                 jpeg_quality: int = 95) -> Path:
    """Write ``sequence`` as ``root/<name>/`` in the GOT-10k layout and add it to ``root/list.txt``.

    Frames go into the sequence folder (the official layout) or, with ``img_subfolder``, into
    ``img/``. Writes groundtruth.txt, absence.label, cover.label, cut_by_image.label and
    meta_info.ini. Returns the sequence folder.
    """
    root = Path(root)
    folder = root / sequence.name
    other = folder if img_subfolder else folder / "img"  # frames of a rewrite in the other layout
    remove_frames(other)
    if other.name == "img" and other.is_dir() and not any(other.iterdir()):
        other.rmdir()  # readers take frames from img/ when it exists
    write_frames(sequence, folder / "img" if img_subfolder else folder, jpeg_quality)
    write_boxes(folder / "groundtruth.txt", sequence.boxes)
    (folder / "absence.label").write_text("".join(f"{int(a)}\n" for a in sequence.absent))
    (folder / "cover.label").write_text("".join(f"{int(c)}\n" for c in sequence.cover))
    width, height = sequence.image_size
    cut = _cut_by_image(sequence.boxes, sequence.absent, width, height)
    (folder / "cut_by_image.label").write_text("".join(f"{int(c)}\n" for c in cut))
    meta = {"resolution": f"({width}, {height})", "frames": str(len(sequence))}
    meta.update({k: str(v) for k, v in sequence.attributes.items() if np.isscalar(v)})
    (folder / "meta_info.ini").write_text("[METAINFO]\n" + "".join(f"{k}: {v}\n" for k, v in meta.items()))
    _add_to_list(root / "list.txt", sequence.name)
    return folder


def _cut_by_image(boxes: np.ndarray, absent: np.ndarray, width: int, height: int) -> np.ndarray:
    """1 where a present target's box touches the image border (it is probably cut)."""
    touches = ((boxes[:, 0] <= 0.5) | (boxes[:, 1] <= 0.5) | (boxes[:, 0] + boxes[:, 2] >= width - 0.5)
               | (boxes[:, 1] + boxes[:, 3] >= height - 0.5))
    return touches & ~absent


def _add_to_list(listing: Path, name: str) -> None:
    names = listing.read_text().split() if listing.is_file() else []
    if name not in names:
        names.append(name)
        listing.write_text("".join(f"{n}\n" for n in sorted(names)))

