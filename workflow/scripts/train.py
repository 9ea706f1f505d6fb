"""Snakemake adapter: one training run (method and hyperparameters from the run spec).

A run on one GPU (or the CPU) trains in this process; a run with resources.gpus > 1 (or nodes > 1)
goes through ``accelerate launch`` (rlpipe.train.launch).
"""

from rlpipe.runtime import init_job, set_compile_cache, set_hub_kernels
from rlpipe.tracking.logs import script_logging
from rlpipe.train.checkpoints import claim_state_dir, finish_state, finished_step, state_identity
from rlpipe.train.launch import is_distributed, launch
from rlpipe.train.run import run_training

with script_logging(snakemake.log[0]):
    run = snakemake.params.run
    paths = {
        "policy": snakemake.input.policy,
        "train": snakemake.input.train,
        "checkpoints": snakemake.output.checkpoints,
        "state_dir": snakemake.params.state_dir,
        "metrics": snakemake.output.metrics,
        "log": snakemake.log[0],
        # only runs with early_stopping declare it
        "validation": snakemake.input.get("validation"),
    }
    inputs = {k: paths[k] for k in ("policy", "train", "validation")}
    claim_state_dir(paths["state_dir"], state_identity(run, inputs))
    if is_distributed(run):
        set_hub_kernels(snakemake.params.hub_kernels)  # the launched workers inherit the switch
        set_compile_cache(snakemake.params.compile_cache)
        launch(run, paths, threads=snakemake.threads)
    else:
        init_job(
            snakemake.threads,
            run["seed"],
            hub_kernels=snakemake.params.hub_kernels,
            compile_cache=snakemake.params.compile_cache,
        )
        run_training(run, paths)
    if finished_step(paths["state_dir"]) is None:
        finish_state(paths["state_dir"])  # every step is published: the resumable state can go
