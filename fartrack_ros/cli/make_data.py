"""fartrack-make-data: write a set of generated tracking sequences in the GOT-10k or LaSOT layout.

Sequence k has seed ``seed-base + k``; the same seeds always give the same frames. Training
sets use seeds below 1,000,000, held-out sets start at 1,000,000 (``EVAL_SEED_BASE``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fartrack_ros.cli.messages import CliError, command, warn
from fartrack_ros.cli.options import non_negative_int, positive_int
from fartrack_ros.data.got10k import write_got10k
from fartrack_ros.data.lasot import check_class_name, write_lasot
from fartrack_ros.data.synthetic import EVAL_SEED_BASE, SyntheticConfig, generate_sequence

PROG = "fartrack-make-data"


def build_parser() -> argparse.ArgumentParser:
    """fartrack-make-data's options: output folder, count, seeds and layout, and the scene settings
    (defaults from `SyntheticConfig`)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="output folder (a GOT-10k split folder or a LaSOT root)")
    parser.add_argument("--count", type=positive_int, required=True, help="number of sequences")
    parser.add_argument("--seed-base", type=non_negative_int, default=EVAL_SEED_BASE,
                        help=f"seed of the first sequence (default {EVAL_SEED_BASE}, the held-out set)")
    parser.add_argument("--layout", choices=("got10k", "lasot"), default="got10k", help="default got10k")
    parser.add_argument("--img-subfolder", action="store_true",
                        help="GOT-10k: put frames in <seq>/img/ instead of <seq>/ (the official layout)")
    parser.add_argument("--class-name", default="synthetic", help="LaSOT: class folder name")
    parser.add_argument("--width", type=int, default=SyntheticConfig.width,
                        help=f"frame width (default {SyntheticConfig.width})")
    parser.add_argument("--height", type=int, default=SyntheticConfig.height,
                        help=f"frame height (default {SyntheticConfig.height})")
    parser.add_argument("--min-length", type=int, default=SyntheticConfig.min_length,
                        help=f"fewest frames per sequence (default {SyntheticConfig.min_length})")
    parser.add_argument("--max-length", type=int, default=SyntheticConfig.max_length,
                        help=f"most frames per sequence (default {SyntheticConfig.max_length}; at least --min-length)")
    parser.add_argument("--difficulty", type=float, default=None,
                        help="fix the difficulty in [0, 1] (default: drawn per sequence from its seed)")
    parser.add_argument("--luma-contrast", action="store_true",
                        help="draw the scenes for a mono camera: objects differ in brightness as well as hue "
                             "(for grey training, fartrack-train --grey-fraction, or fartrack-eval --grey)")
    parser.add_argument("--jpeg-quality", type=int, default=95, choices=range(101), metavar="0..100",
                        help="JPEG quality of the frames (default 95)")
    return parser


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    """Write ``--count`` generated sequences into ``out``; exit 1 when it cannot write, 2 for bad
    settings."""
    args = build_parser().parse_args(argv)
    if args.layout == "lasot":
        try:
            check_class_name(args.class_name)
        except ValueError as exc:
            raise CliError(f"--class-name: {exc}", code=2) from None
    try:
        config = SyntheticConfig(width=args.width, height=args.height, min_length=args.min_length,
                                 max_length=args.max_length, difficulty=args.difficulty,
                                 luma_contrast=args.luma_contrast)
    except ValueError as exc:
        raise CliError(exc, code=2) from None
    out = Path(args.out)
    if out.is_dir() and any(child.is_dir() for child in out.iterdir()):
        warn(PROG, f"{out} already holds folders; the new sequences are added among them (a sequence of "
                   "the same name is rewritten)")
    started, frames = time.perf_counter(), 0
    try:
        out.mkdir(parents=True, exist_ok=True)
        for k in range(args.count):
            sequence = generate_sequence(args.seed_base + k, config)
            frames += len(sequence)
            if args.layout == "got10k":
                write_got10k(sequence, out, img_subfolder=args.img_subfolder, jpeg_quality=args.jpeg_quality)
            else:
                # numbered by seed, as the GOT-10k names are: a later set with other seeds adds to it
                write_lasot(sequence, out, class_name=args.class_name, index=args.seed_base + k,
                            jpeg_quality=args.jpeg_quality)
    except OSError as exc:
        raise CliError(f"cannot write to {out}: {exc}") from None
    print(f"wrote {args.count} sequences ({frames} frames, {args.layout} layout) to {out} "
          f"in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
