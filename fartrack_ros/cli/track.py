"""fartrack-track: track one object through a video file or a folder of frames, offline.

    fartrack-track INPUT --init x,y,w,h [--weights P] [--variant V] [--device D] [--backend B] [--precision P]
                   [--memory bounded|official] [--out boxes.txt] [--save annotated.mp4]

INPUT is a video file or a folder of images (read in name order). The output has one
``x,y,w,h`` line per frame with 4 decimals (GOT-10k style), the first line being the init box;
it goes to ``--out`` or, without it, to stdout. A progress bar runs on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, Iterator, Optional

import cv2
import numpy as np
from tqdm import tqdm

from ..data.files import IMAGE_SUFFIXES, image_files
from ..heap import keep_freed_memory
from .messages import CliError, command, warn
from .options import add_runtime_options, apply_threads, box_xywh, variant_name

PROG = "fartrack-track"
FOLDER_FPS = 30.0  # frame rate written to --save for a folder of images
COLOURS_BGR = {"TRACKING": (0, 220, 0), "LOST": (0, 0, 255)}


class InputError(ValueError):
    """INPUT cannot be read as a video or a folder of frames."""


def format_box(box: Iterable[float]) -> str:
    """One output line: x,y,w,h with 4 decimals (GOT-10k style)."""
    return ",".join(f"{v:.4f}" for v in box)


def open_frames(path: Path) -> tuple[Iterator[np.ndarray], Optional[int], float]:
    """RGB uint8 frames of a video file or an image folder, their count (if known) and fps."""
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {path}")
        return _read_images(files), len(files), FOLDER_FPS
    if not path.is_file():
        raise InputError(f"input not found: {path} (give a video file or a folder of frames)")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InputError(f"cannot open {path} as a video (OpenCV could not decode it)")
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    fps = capture.get(cv2.CAP_PROP_FPS) or FOLDER_FPS
    return _read_video(capture), count, fps


def _read_images(files: list[Path]) -> Iterator[np.ndarray]:
    for file in files:
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"cannot read image {file}")
        yield cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _read_video(capture) -> Iterator[np.ndarray]:
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def annotate(frame_rgb: np.ndarray, box: Iterable[float], state: str, score: Optional[float]) -> np.ndarray:
    """BGR copy of the frame with the box drawn (green while tracking, red when lost)."""
    image = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
    x, y, w, h = (int(round(v)) for v in box)
    colour = COLOURS_BGR.get(state, (255, 255, 255))
    cv2.rectangle(image, (x, y), (x + w, y + h), colour, 2)
    label = state if score is None else f"{state} {score:.2f}"
    cv2.putText(image, label, (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return image


class AnnotatedVideo:
    """The ``--save`` video: every frame at the first one's size, since OpenCV's writer silently
    drops a frame of any other size."""

    def __init__(self, path: Path, fps: float, first_rgb: np.ndarray) -> None:
        height, width = first_rgb.shape[:2]
        self.path = path
        self.size = (width, height)
        self.resized: list[int] = []  # indices of the frames of another size
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(f"cannot write video {path}: {exc.strerror}") from None
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, self.size)
        if not self.writer.isOpened():
            raise CliError(f"cannot write video {path}")

    def write(self, image_bgr: np.ndarray, index: int) -> None:
        """Add frame ``index``, resized to the first frame's size when it has another."""
        height, width = image_bgr.shape[:2]
        if (width, height) != self.size:
            self.resized.append(index)
            image_bgr = cv2.resize(image_bgr, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(image_bgr)

    def release(self) -> None:
        """Close the file, with one warning (after the progress bar) if frames were resized."""
        self.writer.release()
        if self.resized:
            warn(PROG, f"{len(self.resized)} frame(s) from frame {self.resized[0]} on differ in size from the first "
                       f"({self.size[0]}x{self.size[1]}): resized in {self.path} (the boxes are for the frames "
                       "as read)")


def build_parser() -> argparse.ArgumentParser:
    """fartrack-track's options: input and init box, the model and how it runs, the memory mode and
    the outputs."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Track one object through a video or a folder of frames with FARTrack; "
                    "writes one x,y,w,h line per frame (the first is the init box).")
    parser.add_argument("input", type=Path, help="video file, or folder of frames read in name order")
    parser.add_argument("--init", required=True, type=box_xywh, metavar="x,y,w,h",
                        help="the target's box in the first frame, in pixels "
                             "(write --init=-5,10,40,30 when x starts with a minus)")
    parser.add_argument("--weights", default="",
                        help="FARTrack checkpoint (.pth/.pth.tar); empty means the bundled default model")
    parser.add_argument("--variant", default="", type=variant_name,
                        help="tiny/nano/pico: the first 15/10/6 layers of the checkpoint, or a number N: the "
                             "first N (a self-distilled checkpoint); empty keeps them all")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    add_runtime_options(parser)
    parser.add_argument("--memory", default="bounded", choices=["bounded", "official"],
                        help="bounded: capped template memory with a confidence gate (default); "
                             "official: a template every frame, as the official tracker")
    parser.add_argument("--out", type=Path, help="write the boxes here instead of stdout")
    parser.add_argument("--save", type=Path, help="write an annotated video (mp4) here")
    return parser


@command(PROG)
def main(argv: Optional[list[str]] = None) -> int:
    """Track the init box through INPUT and write one box line per frame; the boxes tracked so far are
    written also when a frame is unreadable or the run is stopped."""
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    apply_threads(args.threads)
    # imported here so that --help stays fast
    from ..model import device_for_backend, load_checkpoint, with_backend_for_device
    from ..tracker import Tracker, TrackerConfig

    for output in (args.out, args.save):  # before the tracking, not after it
        if output is not None and output.is_dir():
            raise CliError(f"{output} is a folder; give a file path")
    try:
        frames, count, fps = open_frames(args.input)
        first = next(frames, None)
        if first is None:
            raise InputError(f"{args.input} holds no frames")
        model = load_checkpoint(args.weights or None, variant=args.variant or None,
                                device=device_for_backend(args.device, args.backend))
        model, _, warning = with_backend_for_device(model, args.backend, args.precision)
        if warning:
            warn(PROG, warning)
        tracker = Tracker(model, TrackerConfig(memory=args.memory))
        tracker.add_target(first, args.init)
    except (ValueError, RuntimeError) as exc:  # InputError, CheckpointError, a bad device or backend
        raise CliError(exc) from None

    lines = [format_box(args.init)]
    video = None if args.save is None else AnnotatedVideo(args.save, fps, first)
    if video is not None:
        video.write(annotate(first, args.init, "INIT", None), 0)
    failure = stopped = None
    try:
        with tqdm(total=count, initial=1, unit="frame", file=sys.stderr, desc=PROG) as bar:
            for frame in frames:
                (result,) = tracker.track(frame)
                if video is not None:
                    video.write(annotate(frame, result.box_xywh, result.state.value, result.score), len(lines))
                lines.append(format_box(result.box_xywh))
                bar.update(1)
    except ValueError as exc:  # InputError: an unreadable image; the boxes so far are still written
        failure = f"{exc} (the boxes of the {len(lines)} frames before it are written)"
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the boxes so far too, then the stop
        stopped = exc
        warn(PROG, f"stopped: the boxes of the {len(lines)} frames tracked so far are written")
    finally:
        if video is not None:
            video.release()
    if failure is None and stopped is None and count is not None and len(lines) < count:
        warn(PROG, f"the video ended after {len(lines)} frames; its header says {count} (a damaged or "
                   "truncated file?)")

    text = "\n".join(lines) + "\n"
    if args.out is not None:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
        except OSError as exc:  # the boxes still reach the user
            sys.stdout.write(text)
            raise CliError(f"cannot write {args.out} ({exc}); the boxes went to stdout") from None
    else:
        sys.stdout.write(text)
    if failure is not None:
        raise CliError(failure)
    if stopped is not None:
        raise stopped
    return 0


if __name__ == "__main__":
    sys.exit(main())
