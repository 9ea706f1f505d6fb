"""Snakemake adapter: W&B runs (train + eval per training run) from the experiment's files."""

import os

from rlpipe.tracking.logs import script_logging
from rlpipe.tracking.wandb_runs import log_experiment

with script_logging(snakemake.log[0]):
    log_experiment(
        experiment=snakemake.params.experiment,
        runs=snakemake.params.runs,
        base_of=snakemake.params.base_of,
        metrics=dict(zip(snakemake.params.runs, snakemake.input.metrics, strict=True)),
        scores_csv=snakemake.input.scores,
        colors=snakemake.params.colors,
        cfg=snakemake.params.cfg,
        results_dir=os.path.dirname(os.path.dirname(snakemake.output[0])),  # <exp>/wandb/runs.json
        manifest=snakemake.output[0],
        images={
            "evolution_tasks": snakemake.input.tasks_plot,
            "evolution_domains": snakemake.input.domains_plot,
        },
    )
