rule train:
    input:
        policy=lambda wc: policy_dir(RUNS[wc.run]["model"]),
        train=f"{OUT}/data/train.jsonl",
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
        gpu=run_gpus,
    params:
        run=lambda wc: RUNS[wc.run],
        state_dir=lambda wc: f"{OUT}/runs/{wc.run}/state",
    script:
        "../workflow/scripts/train.py"
