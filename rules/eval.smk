# Evaluation = generation (loads the model once, all suite tasks, the GPU half) + scoring (CPU).


rule generate:
    input:
        unpack(generate_inputs),
    output:
        f"{OUT}/eval/{{run}}/step_{{step}}/completions.jsonl",
        checksums=f"{OUT}/eval/{{run}}/step_{{step}}/completions.sha256",
    log:
        f"{OUT}/logs/generate/{{run}}/step_{{step}}.log",
    conda:
        "../envs/train.yaml"
    threads: THREADS
    resources:
        gpu=gpu_resource("generate", "gpu"),
        gpu_model=gpu_resource("generate", "gpu_model"),
        constraint=gpu_resource("generate", "constraint"),
        mem_mb=gpu_resource("generate", "mem_mb"),
        runtime=gpu_resource("generate", "runtime"),
        slurm_extra=gpu_resource("generate", "slurm_extra"),
    params:
        code=code_hash("runtime"),
        suite=SUITE,
        hub_kernels=HUB_KERNELS,
        compile_cache=COMPILE_CACHE,
        backend=EXP.config["evaluation"]["backend"],
        batch_size=EXP.config["evaluation"]["batch_size"],
        tensor_parallel_size=EXP.config["evaluation"]["tensor_parallel_size"],
        seed=EXP.seeds[0],
        backup=exported_dir,
    script:
        "../workflow/scripts/generate.py"


rule score:
    input:
        completions=f"{OUT}/eval/{{run}}/step_{{step}}/completions.jsonl",
        data=[f"{OUT}/data/suite/{task}.jsonl" for task in sorted(SUITE["tasks"])],
    output:
        scores=f"{OUT}/eval/{{run}}/step_{{step}}/scores.jsonl",
        summary=f"{OUT}/eval/{{run}}/step_{{step}}/summary.csv",
        checksums=f"{OUT}/eval/{{run}}/step_{{step}}/scores.sha256",
    log:
        f"{OUT}/logs/score/{{run}}/step_{{step}}.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        gpu=0,  # a CPU job: no GPU on SLURM either
    params:
        code=code_hash("eval"),
        suite=SUITE,
        meta=lambda wc: {
            "experiment": EXP.name,
            "run": wc.run,
            "method": RUNS[wc.run]["method"] if wc.run in RUNS else "base",
            "step": int(wc.step),
        },
    script:
        "../workflow/scripts/score.py"
