"""Snakemake adapter: one training run (method and hyperparameters from the run spec)."""

from rlpipe.runtime import init_job
from rlpipe.tracking.io import read_jsonl
from rlpipe.tracking.logs import script_logging

with script_logging(snakemake.log[0]):
    run = snakemake.params.run
    init_job(snakemake.threads, run["seed"])
    if run["method"] == "ppo":
        from rlpipe.train.ppo import train_ppo as train
    else:
        from rlpipe.train.grpo import train_grpo as train

    validation = snakemake.input.get("validation")  # only runs with early_stopping declare it
    train(
        snakemake.input.policy,
        read_jsonl(snakemake.input.train),
        run=run,
        checkpoints_dir=snakemake.output.checkpoints,
        state_dir=snakemake.params.state_dir,
        metrics_path=snakemake.output.metrics,
        validation_rows=read_jsonl(validation) if validation else None,
    )
