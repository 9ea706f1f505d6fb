"""Snakemake adapter: the pre-flight check of one training run (signal + loss masking)."""

from rlpipe.runtime import init_job
from rlpipe.tracking.io import read_jsonl
from rlpipe.tracking.logs import script_logging

with script_logging(snakemake.log[0]):
    run = snakemake.params.run
    init_job(snakemake.threads, run["seed"], hub_kernels=snakemake.params.hub_kernels)
    from rlpipe.train.preflight import run_preflight

    run_preflight(
        snakemake.input.policy,
        read_jsonl(snakemake.input.train),
        run,
        snakemake.params.settings,
        snakemake.output[0],
        batch_size=snakemake.params.batch_size,
    )
