"""Snakemake adapter: the markdown comparison report and its tables."""

import os
from pathlib import Path

from rlpipe.analysis.plots import plot_comparison
from rlpipe.analysis.report import build_context, render, write_tables
from rlpipe.tracking.logs import script_logging

with script_logging(snakemake.log[0]):
    out_dir = os.path.dirname(snakemake.output.report)
    runs = snakemake.params.runs

    def rel(path):
        return os.path.relpath(path, out_dir)

    context = build_context(
        scores_csv=snakemake.input.scores,
        sample_scores=snakemake.params.sample_scores,
        metrics=dict(zip(runs, snakemake.input.metrics, strict=True)),
        diagnostics=dict(zip(runs, snakemake.input.diagnostics, strict=True)),
        preflight=snakemake.params.preflight,
        wandb_manifest=snakemake.input.wandb,
        timing=snakemake.params.job_logs,
        experiment=snakemake.params.experiment,
        description=snakemake.params.description,
        baseline=snakemake.params.baseline,
        runs=runs,
        hyperparameters=snakemake.params.hyperparameters,
        base_runs=snakemake.params.base_runs,
        suite=snakemake.params.suite,
        config=snakemake.params.config,
        colors=snakemake.params.colors,
        plots={
            "tasks": rel(snakemake.input.tasks_plot),
            "domains": rel(snakemake.input.domains_plot),
            "comparison": rel(snakemake.output.comparison_plot),
            "training": {r: rel(p) for r, p in zip(runs, snakemake.input.training_plots, strict=True)},
        },
    )
    family_colors = {f: snakemake.params.colors[members[0]] for f, members in context["families"].items()}
    plot_comparison(
        context["vs_baseline"],
        family_colors,
        context["baseline_family"] or "baseline",
        snakemake.output.comparison_plot,
    )
    write_tables(context, snakemake.output)
    render(Path(snakemake.scriptdir).parent / "templates" / "report.md.j2", context, snakemake.output.report)
