"""Plots: checkpoint evolution with bootstrap bands, training curves, deltas vs the baseline.

One colour per run everywhere (:func:`run_colors`), shared with W&B's run config.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from rlpipe.analysis.aggregate import domain_scores, item_matrix, with_base_rows
from rlpipe.analysis.stats import macro_average
from rlpipe.tracking.io import atomic_path

log = logging.getLogger(__name__)


def run_colors(runs: Sequence[str]) -> dict[str, str]:
    """A stable colour per run (hex), from its position in the experiment's run list.

    The same mapping is used by every plot (and by W&B), so a run looks the same everywhere.
    """
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    palette = colormaps["tab10"].colors + colormaps["Dark2"].colors
    return {run: to_hex(palette[i % len(palette)]) for i, run in enumerate(runs)}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: str) -> None:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    _pyplot().close(fig)
    log.info("wrote %s", out)


def _band(ax: Any, line: pd.DataFrame, color: str, label: str) -> None:
    """Score vs step with its 95 % bootstrap CI as a shaded band (a point with a bar if one step)."""
    x, y = line["step"].to_numpy(), line["score"].to_numpy()
    lo, hi = line["lo"].to_numpy(), line["hi"].to_numpy()
    if len(line) == 1:
        ax.errorbar(x, y, yerr=[[y[0] - lo[0]], [hi[0] - y[0]]], fmt="s", color=color, label=label, capsize=3)
        return
    ax.plot(x, y, marker="o", markersize=4, linewidth=1.6, color=color, label=label)
    ax.fill_between(x, lo, hi, color=color, alpha=0.18, linewidth=0)


def _grid(frame: pd.DataFrame, facet: str, runs: Sequence[str], title: str, out: str) -> None:
    plt = _pyplot()
    facets = sorted(frame[facet].unique())
    cols = min(3, len(facets))
    rows = math.ceil(len(facets) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    colors = run_colors(runs)
    for ax, name in zip(axes.flat, facets, strict=False):
        sub = frame[frame[facet] == name]
        for run in runs:
            line = sub[sub["run"] == run].sort_values("step")
            if not line.empty:
                _band(ax, line, colors[run], run)
        ax.set_title(f"{facet}: {name}")
        ax.set_xlabel("training step")
        ax.set_ylabel("score (avg@k)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(facets) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), frameon=False)
    fig.suptitle(f"{title} (bands: 95 % bootstrap CI over items)")
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    _save(fig, out)


def domain_frame(
    scores: pd.DataFrame, sample_scores: Mapping[tuple[str, int], str], n_boot: int = 1000
) -> pd.DataFrame:
    """Per (run, step, domain): the domain score with a stratified bootstrap CI over its items."""
    task_domain = dict(zip(scores["task"], scores["domain"], strict=False))
    rows = []
    for (run, step), path in sorted(sample_scores.items()):
        tree: dict[str, dict[str, list[float]]] = {}
        for task, items in item_matrix(path).items():
            tree.setdefault(task_domain[task], {})[task] = list(items.values())
        ci = macro_average(tree, n_boot=n_boot, seed=0)
        for domain, d in ci.domains.items():
            rows.append({"run": run, "step": step, "domain": domain, "score": d.mean, "lo": d.lo, "hi": d.hi})
    return pd.DataFrame(rows, columns=["run", "step", "domain", "score", "lo", "hi"])


def plot_evolution(
    scores_csv: str,
    runs: Sequence[str],
    base_of: Mapping[str, str],
    tasks_out: str,
    domains_out: str,
    sample_scores: Mapping[tuple[str, int], str] | None = None,
    per_task: Mapping[str, str] | None = None,
) -> None:
    """Per-task and per-domain evolution plots; each run's curve starts at its base model (step 0).

    Task bands are the summaries' percentile bootstrap CIs; domain bands a stratified bootstrap
    over the domain's items (from ``sample_scores``; without them, mean +- 1.96 combined SE).
    ``per_task`` (task -> path) also writes one plot per task.
    """
    raw = pd.read_csv(scores_csv)
    scores = with_base_rows(raw, base_of).rename(columns={"ci_lo": "lo", "ci_hi": "hi"})
    _grid(scores, "task", runs, "Checkpoint evolution per task", tasks_out)
    if sample_scores:
        domains = domain_frame(raw, sample_scores)
        starts = [
            domains[(domains["run"] == b) & (domains["step"] == 0)].assign(run=r) for r, b in base_of.items()
        ]
        domains = pd.concat([domains, *starts], ignore_index=True)
    else:
        domains = domain_scores(with_base_rows(raw, base_of))
        domains["lo"], domains["hi"] = (
            domains["score"] - 1.96 * domains["se"],
            domains["score"] + 1.96 * domains["se"],
        )
    _grid(domains, "domain", runs, "Checkpoint evolution per domain", domains_out)
    for task, out in (per_task or {}).items():
        _grid(scores[scores["task"] == task], "task", runs, f"Checkpoint evolution: {task}", out)


# ----------------------------------------------------------------------------------------------
# training curves

#: (title, metric keys drawn in that panel); panels whose metrics were never logged are skipped.
TRAINING_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("reward", ("reward", "objective/scores")),
    ("reward per domain", ("reward/*",)),
    ("groups with zero reward std", ("frac_reward_zero_std",)),
    ("entropy", ("entropy", "objective/entropy")),
    ("KL to reference", ("kl", "objective/kl", "approx_kl")),
    ("grad norm", ("grad_norm",)),
    ("clip ratio", ("clip_ratio/region_mean", "clip_ratio", "clip_ratio/low_mean", "clip_ratio/high_mean")),
    ("completion length", ("completions/mean_length",)),
    ("truncated completions", ("completions/clipped_ratio",)),
    ("validation reward", ("validation_reward",)),
)


def _series(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), int | float) and "step" in r]
    pts = [(s, v) for s, v in pts if math.isfinite(v)]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_training(
    rows: Sequence[Mapping[str, Any]], run: str, color: str, verdict: str, out: str
) -> list[str]:
    """A grid of the run's training metrics against step; returns the panels drawn."""
    plt = _pyplot()
    keys = {k for r in rows for k in r}
    panels = []
    for title, wanted in TRAINING_PANELS:
        found = []
        for w in wanted:
            found += (
                sorted(k for k in keys if k.startswith(w[:-1]))
                if w.endswith("*")
                else ([w] if w in keys else [])
            )
        if found:
            panels.append((title, found))
    cols = 3
    n = max(1, len(panels))
    fig, axes = plt.subplots(
        math.ceil(n / cols), cols, figsize=(4.2 * cols, 2.9 * math.ceil(n / cols)), squeeze=False
    )
    styles = ["-", "--", ":", "-."]
    for ax, (title, found) in zip(axes.flat, panels, strict=False):
        for i, key in enumerate(found):
            x, y = _series(rows, key)
            ax.plot(
                x, y, styles[i % len(styles)], color=color, linewidth=1.4, label=key, alpha=1.0 - 0.15 * i
            )
        ax.set_title(title)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        if len(found) > 1:
            ax.legend(fontsize=7, frameon=False)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    if not panels:
        axes.flat[0].text(0.5, 0.5, "no training metrics logged", ha="center", va="center")
    fig.suptitle(f"Training metrics: {run} (verdict: {verdict})")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    _save(fig, out)
    return [t for t, _ in panels]


# ----------------------------------------------------------------------------------------------
# comparison


def plot_comparison(
    rows: Sequence[Mapping[str, Any]], colors: Mapping[str, str], baseline: str, out: str
) -> None:
    """Forest plot: each run's delta vs the baseline per domain and task, with 95 % CIs."""
    plt = _pyplot()
    labels: list[str] = []
    if rows:
        labels = [f"domain {d}" for d in rows[0]["domains"]] + [f"task {t}" for t in rows[0]["tasks"]]
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.42 * max(1, len(labels)) * max(1, len(rows)) ** 0.5))
    height = 0.8 / max(1, len(rows))
    for j, row in enumerate(rows):
        values = list(row["domains"].values()) + list(row["tasks"].values())
        ys = [i + (j - (len(rows) - 1) / 2) * height for i in range(len(values))]
        xs = [v["delta"] for v in values]
        err = [[v["delta"] - v["lo"] for v in values], [v["hi"] - v["delta"] for v in values]]
        color = colors.get(row["run"], "#444444")
        ax.errorbar(xs, ys, xerr=err, fmt="o", color=color, capsize=3, label=row["run"])
        for x, y, v in zip(xs, ys, values, strict=True):
            if v["significant"]:
                ax.annotate("*", (x, y), textcoords="offset points", xytext=(6, 2), color=color, fontsize=12)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"score delta vs {baseline} (95 % paired bootstrap CI; * = significant)")
    ax.grid(alpha=0.3, axis="x")
    if rows:
        ax.legend(frameon=False, fontsize=8)
    else:
        ax.text(0.5, 0.5, "no run to compare with the baseline", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    _save(fig, out)
