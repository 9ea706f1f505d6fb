# A checkpoint: with early stopping the steps a run saves are known only after it trained, and the
# evaluation jobs downstream are planned from the checkpoints that exist (rules/common.smk).
checkpoint train:
    input:
        unpack(train_inputs),
        preflight=preflight_result,
    output:
        checkpoints=directory(f"{OUT}/runs/{{run}}/checkpoints"),
        metrics=f"{OUT}/runs/{{run}}/metrics.jsonl",
    log:
        f"{OUT}/logs/train/{{run}}.log",
    conda:
        "../envs/train.yaml"
    threads: THREADS
    resources:
        gpu=gpu_resource("train", "gpu"),
        gpu_model=gpu_resource("train", "gpu_model"),
        constraint=gpu_resource("train", "constraint"),
        nodes=gpu_resource("train", "nodes"),
        mem_mb=gpu_resource("train", "mem_mb"),
        runtime=gpu_resource("train", "runtime"),
        slurm_extra=gpu_resource("train", "slurm_extra"),
    params:
        code=code_hash("train"),
        run=lambda wc: RUNS[wc.run],
        hub_kernels=HUB_KERNELS,
        compile_cache=COMPILE_CACHE,
        state_dir=state_dir,
    script:
        "../workflow/scripts/train.py"
