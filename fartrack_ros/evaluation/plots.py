"""Success plot (OTB/LaSOT style): one curve per tracker, AUC in the legend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fartrack_ros.evaluation.metrics import SUCCESS_THRESHOLDS, TrackerScores


def figure_path(path: str | Path) -> Path:
    """The file a plot asked for at ``path`` goes to: ``.png`` added when the name has no extension,
    as matplotlib adds it; ValueError for an extension matplotlib cannot write, so that a tool can
    refuse it before the work that makes the plot."""
    from matplotlib.backend_bases import FigureCanvasBase

    path = Path(path)
    if not path.suffix:
        return path.with_name(path.name + ".png")
    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    if path.suffix[1:].lower() not in formats:
        raise ValueError(f"cannot write a plot as {path.suffix} ({path}): end the name with one of "
                         f"{', '.join('.' + f for f in formats)}")
    return path


def plot_success(scores: dict[str, TrackerScores], path: str | Path, title: str = "Success plot") -> Path:
    """Write each tracker's success curve (a PNG unless ``path`` names another format), best AUC
    first in the legend; returns the file written (`figure_path`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = figure_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(5.0, 4.0), dpi=120)
    for name, score in sorted(scores.items(), key=lambda item: -item[1].success_auc):
        axes.plot(SUCCESS_THRESHOLDS, np.asarray(score.success_curve), linewidth=2,
                  label=f"{name} [AUC {score.success_auc:.3f}, AO {score.ao:.3f}]")
    axes.set(xlabel="Overlap threshold", ylabel="Success rate", xlim=(0, 1), ylim=(0, 1), title=title)
    axes.grid(True, alpha=0.4)
    axes.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
