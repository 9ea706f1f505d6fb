"""Checkpoint-evolution plots: score vs training step, one line per run, one colour per run."""

from __future__ import annotations

import logging
import math

import pandas as pd

from rlpipe.analysis.aggregate import domain_scores, with_base_rows
from rlpipe.tracking.io import atomic_path

log = logging.getLogger(__name__)


def run_colors(runs: list[str]) -> dict[str, str]:
    """A stable colour per run (hex), from its position in the experiment's run list.

    The same mapping is used by every plot (and by W&B), so a run looks the same everywhere.
    """
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    palette = colormaps["tab10"].colors + colormaps["Dark2"].colors
    return {run: to_hex(palette[i % len(palette)]) for i, run in enumerate(runs)}


def _grid(frame: pd.DataFrame, facet: str, runs: list[str], title: str, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    facets = sorted(frame[facet].unique())
    cols = min(3, len(facets))
    rows = math.ceil(len(facets) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    colors = run_colors(runs)
    for ax, name in zip(axes.flat, facets, strict=False):
        sub = frame[frame[facet] == name]
        for run in runs:
            line = sub[sub["run"] == run].sort_values("step")
            if line.empty:
                continue
            marker = "s" if len(line) == 1 else "o"
            ax.errorbar(
                line["step"], line["score"], yerr=line["se"].fillna(0), label=run,
                color=colors[run], marker=marker, markersize=4, capsize=2, linewidth=1.5,
            )  # fmt: skip
        ax.set_title(f"{facet}: {name}")
        ax.set_xlabel("training step")
        ax.set_ylabel("score (avg@k)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(facets) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    log.info("wrote %s", out)


def plot_evolution(
    scores_csv: str, runs: list[str], base_of: dict[str, str], tasks_out: str, domains_out: str
) -> None:
    """Per-task and per-domain evolution plots; each run's curve starts at its base model (step 0)."""
    scores = with_base_rows(pd.read_csv(scores_csv), base_of)
    _grid(scores, "task", runs, "Checkpoint evolution per task", tasks_out)
    _grid(domain_scores(scores), "domain", runs, "Checkpoint evolution per domain", domains_out)
