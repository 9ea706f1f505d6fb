rule prepare_model:
    output:
        directory(f"{OUT}/models/{{model}}/init"),
    log:
        f"{OUT}/logs/prepare_model/{{model}}.log",
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        gpu=0,  # a CPU job: no GPU on SLURM either
    params:
        code=code_hash("models"),
        model=lambda wc: EXP.models[wc.model],
        seed=EXP.seeds[0],
    script:
        "../workflow/scripts/prepare_model.py"


rule prepare_train_data:
    output:
        train=f"{OUT}/data/train.jsonl",
        validation=f"{OUT}/data/validation.jsonl",
    log:
        f"{OUT}/logs/prepare_train_data.log",
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        gpu=0,  # a CPU job: no GPU on SLURM either
    params:
        code=code_hash("data"),
        tasks=EXP.config["data"].get("tasks", {}),
        validation_per_task=EXP.config["data"]["validation_per_task"],
        sources=EXP.train_sources,
        seed=EXP.seeds[0],
    script:
        "../workflow/scripts/prepare_train_data.py"


rule prepare_suite_task:
    output:
        f"{OUT}/data/suite/{{task}}.jsonl",
    log:
        f"{OUT}/logs/prepare_suite_task/{{task}}.log",
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        gpu=0,  # a CPU job: no GPU on SLURM either
    params:
        code=code_hash("data"),
        task=lambda wc: SUITE["tasks"][wc.task],
        seed=EXP.seeds[0],
    script:
        "../workflow/scripts/prepare_suite_task.py"


rule warmup:
    input:
        model=f"{OUT}/models/{{model}}/init",
        train=f"{OUT}/data/train.jsonl",
    output:
        directory(f"{OUT}/models/{{model}}/warmup"),
    log:
        f"{OUT}/logs/warmup/{{model}}.log",
    conda:
        "../envs/train.yaml"
    threads: 2
    resources:
        gpu=gpu_resource("warmup", "gpu"),
        gpu_model=gpu_resource("warmup", "gpu_model"),
        constraint=gpu_resource("warmup", "constraint"),
        mem_mb=gpu_resource("warmup", "mem_mb"),
        runtime=gpu_resource("warmup", "runtime"),
        slurm_extra=gpu_resource("warmup", "slurm_extra"),
    params:
        code=code_hash("train"),
        hub_kernels=HUB_KERNELS,
        warmup=WARMUP,
        seed=EXP.seeds[0],
        work_dir=lambda wc: f"{OUT}/models/{wc.model}/warmup-state",
    script:
        "../workflow/scripts/warmup.py"
