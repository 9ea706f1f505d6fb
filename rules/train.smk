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
        gpu=run_gpus,
    params:
        run=lambda wc: RUNS[wc.run],
        state_dir=lambda wc: f"{OUT}/runs/{wc.run}/state",
    script:
        "../workflow/scripts/train.py"
