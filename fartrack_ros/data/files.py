"""Plain-text annotations and numbered frame files shared by the GOT-10k and LaSOT layouts."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from fartrack_ros.data.sequence import TrackingSequence

FRAME_PATTERN = re.compile(r"^\d+\.(jpg|jpeg|png)$", re.IGNORECASE)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def natural_key(path: Path) -> tuple:
    """Sort key comparing the digit runs of a file name as numbers: frame_2 before frame_10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name))


def image_files(folder: Path) -> list[Path]:
    """The images of a folder (``IMAGE_SUFFIXES``), in natural order of their names."""
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)


def read_boxes(path: Path) -> np.ndarray:
    """An (N, 4) array from a text file of boxes separated by commas, tabs or spaces."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        values = [v for v in re.split(r"[,\s]+", line) if v]
        if len(values) != 4:
            raise ValueError(f"{path}:{number}: expected 4 numbers x,y,w,h, got {line!r}")
        rows.append([_number(v, path, number) for v in values])
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def read_flags(path: Path) -> np.ndarray:
    """Integers from a label file: one per line (GOT-10k) or comma-separated (LaSOT)."""
    flags = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        for value in re.split(r"[,\s]+", line.strip()):
            if value:
                flag = _number(value, path, number)
                if not np.isfinite(flag):
                    raise ValueError(f"{path}:{number}: expected an integer label, got {value!r}")
                flags.append(int(flag))
    return np.array(flags, dtype=np.int64)


def _number(text: str, path: Path, line_number: int) -> float:
    """``text`` as a float ("nan" included); ValueError naming the file and line otherwise."""
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}:{line_number}: {text!r} is not a number") from None


def frame_files(folder: Path) -> list[Path]:
    """Numbered image files of a sequence, in ``img/`` if that exists, else in the folder itself;
    ValueError when the numbers are not 1, 2, ... n (a missing frame would shift the boxes)."""
    image_dir = folder / "img" if (folder / "img").is_dir() else folder
    files = sorted((p for p in image_dir.iterdir() if FRAME_PATTERN.match(p.name)), key=lambda p: int(p.stem))
    for expected, path in enumerate(files, start=1):
        if int(path.stem) != expected:
            raise ValueError(f"{image_dir}: frame {expected} is missing (frames are numbered from 1 with no "
                             f"gap; found {path.name} next)")
    return files


def remove_frames(folder: Path) -> None:
    """Delete the numbered frame files (``00000001.jpg`` ...) of a folder, if it exists."""
    if folder.is_dir():
        for stale in folder.iterdir():
            if FRAME_PATTERN.match(stale.name):
                stale.unlink()


def write_frames(sequence: TrackingSequence, image_dir: Path, jpeg_quality: int) -> None:
    """Every frame of ``sequence`` as ``image_dir/00000001.jpg, ...``; numbered frames already
    there (an earlier, longer sequence written to the same place) are removed first."""
    image_dir.mkdir(parents=True, exist_ok=True)
    remove_frames(image_dir)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    for index in range(len(sequence)):
        bgr = cv2.cvtColor(sequence.frame(index), cv2.COLOR_RGB2BGR)
        path = image_dir / f"{index + 1:08d}.jpg"
        if not cv2.imwrite(str(path), bgr, params):
            raise OSError(f"could not write {path}")


def write_boxes(path: Path, boxes: np.ndarray) -> None:
    """One ``x,y,w,h`` line per box (4 decimals)."""
    path.write_text("".join(f"{x:.4f},{y:.4f},{w:.4f},{h:.4f}\n" for x, y, w, h in boxes))
