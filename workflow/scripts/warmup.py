"""Snakemake adapter: SFT warm-up of a base model on the training mix."""

from rlpipe.runtime import init_job
from rlpipe.tracking.io import read_jsonl
from rlpipe.tracking.logs import script_logging

with script_logging(snakemake.log[0]):
    init_job(snakemake.threads, snakemake.params.seed, hub_kernels=snakemake.params.hub_kernels)
    from rlpipe.train.checkpoints import claim_state_dir, state_identity
    from rlpipe.train.sft import train_sft

    cfg = snakemake.params.warmup
    # resume only from state this configuration made (a changed warm-up starts again)
    claim_state_dir(
        snakemake.params.work_dir,
        state_identity(
            {"warmup": cfg, "seed": snakemake.params.seed},
            {"model": snakemake.input.model, "train": snakemake.input.train},
        ),
    )
    train_sft(
        snakemake.input.model,
        read_jsonl(snakemake.input.train),
        snakemake.output[0],
        steps=cfg["steps"],
        batch_size=cfg["batch_size"],
        learning_rate=cfg["learning_rate"],
        gradient_checkpointing=cfg["gradient_checkpointing"],
        seed=snakemake.params.seed,
        work_dir=snakemake.params.work_dir,
    )
