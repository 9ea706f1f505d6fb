"""Snakemake adapter: the training mix (procedural tasks and real datasets) and its validation split."""

from rlpipe.data.prepare import prepare_train_data
from rlpipe.tracking.logs import script_logging

with script_logging(snakemake.log[0]):
    prepare_train_data(
        snakemake.params.tasks,
        snakemake.params.validation_per_task,
        snakemake.params.seed,
        snakemake.output.train,
        snakemake.output.validation,
        train_sources=snakemake.params.sources,
    )
