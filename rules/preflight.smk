# Pre-flight check ahead of every training run: learning signal of the starting policy and the
# loss's masking of prompt and padding tokens (rlpipe.train.preflight). Training waits for it.


rule preflight:
    input:
        policy=lambda wc: policy_dir(RUNS[wc.run]["model"]),
        train=f"{OUT}/data/train.jsonl",
    output:
        report(
            f"{OUT}/preflight/{{run}}.json",
            caption="../workflow/report/preflight.rst",
            category="Diagnostics",
            subcategory="pre-flight",
            labels={"run": "{run}", "check": "pre-flight"},
        ),
    log:
        f"{OUT}/logs/preflight/{{run}}.log",
    conda:
        "../envs/train.yaml"
    threads: THREADS
    resources:
        gpu=gpu_resource("preflight", "gpu"),
        gpu_model=gpu_resource("preflight", "gpu_model"),
        constraint=gpu_resource("preflight", "constraint"),
        mem_mb=gpu_resource("preflight", "mem_mb"),
        runtime=gpu_resource("preflight", "runtime"),
        slurm_extra=gpu_resource("preflight", "slurm_extra"),
    params:
        code=code_hash("train"),
        run=lambda wc: preflight_spec(RUNS[wc.run]),
        hub_kernels=HUB_KERNELS,
        settings=PREFLIGHT,
        batch_size=EXP.config["evaluation"]["batch_size"],
    script:
        "../workflow/scripts/preflight.py"
