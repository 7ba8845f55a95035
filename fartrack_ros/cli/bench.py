"""fartrack-bench: one table of speeds (model, tracker, many targets, OpenCV, node) and a PNG plot."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import torch

from .. import benchmark as bm
from ..model import load_checkpoint, resolve_device
from .options import PRECISION_CHOICES


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fartrack-bench", description=__doc__)
    parser.add_argument("--variants", default="tiny,nano,pico,bundled",
                        help="comma list of tiny, nano, pico (official sizes, random weights) and bundled")
    parser.add_argument("--threads", type=int, default=2, help="torch / ONNX Runtime CPU threads")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda or cuda:N for the model, tracker and scaling rows (default cpu)")
    parser.add_argument("--repeats", type=int, default=10, help="timed repeats per model row")
    parser.add_argument("--frames", type=int, default=40, help="frames of the generated sequence for tracker rows")
    parser.add_argument("--targets", default="1,2,4,8", help="target counts for the scaling rows")
    parser.add_argument("--scaling-variant", default="bundled", help="variant used for the multi-target rows")
    parser.add_argument("--scaling-precisions", default="",
                        help="comma list of precisions for the multi-target rows (default: float32 and the "
                             "device's reduced precision, bfloat16 on CPU, float16 on CUDA)")
    parser.add_argument("--skip", default="", help="comma list of sections to skip: model,tracker,scaling,opencv,node")
    parser.add_argument("--node-frames", type=int, default=150, help="frames sent through the node")
    parser.add_argument("--node-weights", default="", help="checkpoint the node rows run ('' = bundled model)")
    parser.add_argument("--node-variant", default="", help="variant for the node rows ('' = as the checkpoint)")
    parser.add_argument("--node-precision", default="float32", choices=PRECISION_CHOICES,
                        help="precision the node rows run at (default float32)")
    parser.add_argument("--plot", default="bench.png", help="PNG plot path ('' for none)")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device, strict=True)
    skip = {s for s in args.skip.split(",") if s}
    variants = [v for v in args.variants.split(",") if v]
    rows: list[bm.Row] = []
    frames, boxes = bm.synthetic_frames(args.frames)
    loaded = {}
    for variant in variants:
        try:
            loaded[variant] = bm.load_variant(variant, device)
        except Exception as exc:  # a missing bundled model must not stop the other rows
            print(f"skipping variant {variant}: {exc}", file=sys.stderr)

    for variant, model in loaded.items():
        if "model" not in skip:
            rows += bm.model_rows(model, variant, args.repeats)
        if "tracker" not in skip:
            base_ms, _ = bm.tracker_ms(model, frames, boxes, memory="official")
            rows.append(bm.Row("tracker", f"{variant} baseline (masked eager)", base_ms, {"speedup": "1.00x"}))
            for runtime in bm.tracker_runtimes(device.type):
                ms, stages = bm.tracker_ms(model, frames, boxes, memory="bounded", backend=runtime.backend,
                                           precision=runtime.precision)
                split = " ".join(f"{k} {v:.1f}" for k, v in stages.items())
                rows.append(bm.Row("tracker", f"{variant} {runtime.label}", ms,
                                   {"speedup": f"{base_ms / ms:.2f}x", "stages ms": split}))

    if "scaling" not in skip and args.scaling_variant in loaded:
        model = loaded[args.scaling_variant]
        reduced = "float16" if device.type == "cuda" else "bfloat16"
        for precision in [p for p in (args.scaling_precisions or f"float32,{reduced}").split(",") if p]:
            one_ms = None
            for count in (int(c) for c in args.targets.split(",")):
                ms, _ = bm.tracker_ms(model, frames, boxes, memory="bounded", targets=count, precision=precision)
                one_ms = one_ms or ms
                rows.append(bm.Row("scaling", f"{args.scaling_variant} {precision} {count} targets", ms,
                                   {"ms/target": f"{ms / count:.1f}", "vs 1 target": f"{ms / one_ms:.2f}x"}))

    if "opencv" not in skip:
        for kind in ("csrt", "kcf"):
            ms = bm.opencv_ms(kind, frames, boxes[0])
            if ms is not None:
                rows.append(bm.Row("opencv", kind.upper(), ms))

    if "node" not in skip:
        rows += _node_rows(args, frames, boxes)

    print(format_table(rows))
    if args.plot:
        write_plot(rows, Path(args.plot))
        print(f"plot written to {args.plot}")
    return 0


def _node_rows(args: argparse.Namespace, frames, boxes) -> list[bm.Row]:
    """End-to-end latency through the ROS node next to the same model's in-process tracker time."""
    try:
        from ..node_latency import measure_node_latency
    except ImportError as exc:
        print(f"node rows skipped: ROS 2 is not importable here ({exc})", file=sys.stderr)
        return []
    model = load_checkpoint(args.node_weights or None, variant=args.node_variant or None)
    tracker_ms, _ = bm.tracker_ms(model, frames, boxes, memory="bounded", precision=args.node_precision)
    result = measure_node_latency(frames=args.node_frames, threads=args.threads, weights=args.node_weights,
                                  variant=args.node_variant, precision=args.node_precision)
    label = model.cfg.name if args.node_precision == "float32" else f"{model.cfg.name} {args.node_precision}"
    stages = " ".join(f"{k} {v:.1f}" for k, v in result.stage_p50_ms.items())
    overhead_pct = 100.0 * (result.p50_ms / tracker_ms - 1.0)
    return [
        bm.Row("node", f"{label} tracker in-process (reference)", tracker_ms),
        bm.Row("node", f"{label} publish->detections", result.p50_ms, {
            "p95": f"{result.p95_ms:.1f}", "p99": f"{result.p99_ms:.1f}", "frames": str(result.received),
            "overhead": f"{overhead_pct:+.0f}% ({result.p50_ms - tracker_ms:+.2f} ms)", "in-node stages ms": stages}),
    ]


def format_table(rows: list[bm.Row]) -> str:
    """Plain-text table: section, name, ms, FPS, then the row's extra columns."""
    lines = [f"{'section':<9} {'name':<42} {'ms':>8} {'FPS':>8}  notes", "-" * 100]
    for row in rows:
        notes = "  ".join(f"{k}: {v}" for k, v in row.extra.items())
        lines.append(f"{row.section:<9} {row.name:<42} {row.ms:>8.2f} {row.fps:>8.1f}  {notes}")
    return "\n".join(lines)


def write_plot(rows: list[bm.Row], path: Path) -> None:
    """Horizontal bar chart of FPS per row, one colour per section."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"model": "tab:blue", "tracker": "tab:green", "scaling": "tab:purple", "opencv": "tab:gray",
               "node": "tab:red"}
    fig, ax = plt.subplots(figsize=(10, 0.28 * len(rows) + 1.5))
    names = [f"{r.section}: {r.name}" for r in rows][::-1]
    ax.barh(names, [r.fps for r in rows][::-1], color=[colours.get(r.section, "k") for r in rows][::-1])
    ax.set_xlabel("frames per second (higher is better)")
    ax.set_title(f"fartrack-bench, {torch.get_num_threads()} CPU threads")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
