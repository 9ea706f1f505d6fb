"""Snakemake adapter: render the markdown comparison report."""

import os

from rlpipe.analysis.report import build_context, render
from rlpipe.tracking.logs import script_logging

with script_logging(snakemake.log[0]):
    out_dir = os.path.dirname(snakemake.output[0])
    context = build_context(
        scores_csv=snakemake.input.scores,
        sample_scores=snakemake.params.sample_scores,
        metrics=dict(zip(snakemake.params.runs, snakemake.input.metrics, strict=True)),
        experiment=snakemake.params.experiment,
        description=snakemake.params.description,
        baseline=snakemake.params.baseline,
        runs=snakemake.params.runs,
        base_runs=snakemake.params.base_runs,
        suite=snakemake.params.suite,
        plots={
            "tasks": os.path.relpath(snakemake.input.tasks_plot, out_dir),
            "domains": os.path.relpath(snakemake.input.domains_plot, out_dir),
        },
    )
    render(snakemake.input.template, context, snakemake.output[0])
