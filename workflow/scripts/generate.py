"""Snakemake adapter: generate completions of one checkpoint for every suite task."""

from rlpipe.runtime import init_job
from rlpipe.tracking.logs import script_logging

with script_logging(snakemake.log[0]):
    init_job(
        snakemake.threads,
        snakemake.params.seed,
        hub_kernels=snakemake.params.hub_kernels,
        compile_cache=snakemake.params.compile_cache,
    )
    from rlpipe.eval.run import generate_checkpoint

    generate_checkpoint(
        policy=snakemake.input.base,
        checkpoints=snakemake.input.get("checkpoints"),
        step=int(snakemake.wildcards.step),
        suite=snakemake.params.suite,
        data_paths=list(snakemake.input.data),
        out=snakemake.output[0],
        backend=snakemake.params.backend,
        batch_size=snakemake.params.batch_size,
        tensor_parallel_size=snakemake.params.tensor_parallel_size,
        seed=snakemake.params.seed,
        backup=snakemake.params.backup,
    )
