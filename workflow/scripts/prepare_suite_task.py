"""Snakemake adapter: one evaluation-suite task in rlpipe's row schema."""

from rlpipe.data.prepare import prepare_suite_task
from rlpipe.tracking.logs import script_logging

with script_logging(snakemake.log[0]):
    prepare_suite_task(
        snakemake.wildcards.task, snakemake.params.task, snakemake.params.seed, snakemake.output[0]
    )
