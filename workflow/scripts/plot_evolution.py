"""Snakemake adapter: checkpoint-evolution plots per task and per domain."""

from rlpipe.analysis.plots import plot_evolution
from rlpipe.tracking.logs import script_logging

with script_logging(snakemake.log[0]):
    plot_evolution(
        snakemake.input[0],
        snakemake.params.runs,
        snakemake.params.base_of,
        snakemake.output.tasks,
        snakemake.output.domains,
    )
