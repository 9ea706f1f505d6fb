"""Snakemake adapter: checkpoint-evolution plots (all tasks, all domains, one per task)."""

from rlpipe.analysis.plots import plot_evolution
from rlpipe.tracking.logs import script_logging

with script_logging(snakemake.log[0]):
    plot_evolution(
        snakemake.input.scores,
        snakemake.params.runs,
        snakemake.params.base_of,
        snakemake.output.tasks,
        snakemake.output.domains,
        sample_scores=snakemake.params.sample_scores,
        per_task={task: snakemake.output[f"task_{task}"] for task in snakemake.params.tasks},
    )
