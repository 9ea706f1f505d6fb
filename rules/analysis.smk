rule aggregate:
    input:
        summaries,
    output:
        report(
            f"{OUT}/scores.csv",
            caption="../workflow/report/scores.rst",
            category="Evaluation",
            subcategory="overview",
            labels={"item": "scores (run x step x task)"},
        ),
    log:
        f"{OUT}/logs/aggregate.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        gpu=0,  # a CPU job: no GPU on SLURM either
    params:
        code=code_hash("analysis"),
    script:
        "../workflow/scripts/aggregate.py"


rule plot_evolution:
    input:
        scores=f"{OUT}/scores.csv",
        sample_scores=sample_score_files,
    output:
        **{
            f"task_{task}": report(
                f"{OUT}/plots/evolution/{task}.png",
                caption="../workflow/report/evolution_task.rst",
                category="Evaluation",
                subcategory="per task",
                labels={"task": task, "domain": spec["domain"]},
            )
            for task, spec in sorted(SUITE["tasks"].items())
        },
        tasks=report(
            f"{OUT}/plots/evolution_tasks.png",
            caption="../workflow/report/evolution_tasks.rst",
            category="Evaluation",
            subcategory="overview",
            labels={"item": "score vs step, every task"},
        ),
        domains=report(
            f"{OUT}/plots/evolution_domains.png",
            caption="../workflow/report/evolution_domains.rst",
            category="Evaluation",
            subcategory="overview",
            labels={"item": "score vs step, every domain"},
        ),
    log:
        f"{OUT}/logs/plot_evolution.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        gpu=0,  # a CPU job: no GPU on SLURM either
    params:
        code=code_hash("analysis"),
        runs=list(EXP.base_runs) + list(RUNS),
        base_of=BASE_OF,
        sample_scores=lambda wc: sample_scores(),
        tasks=sorted(SUITE["tasks"]),
    script:
        "../workflow/scripts/plot_evolution.py"


rule diagnose:
    input:
        f"{OUT}/runs/{{run}}/metrics.jsonl",
    output:
        verdict=report(
            f"{OUT}/diagnostics/{{run}}.json",
            caption="../workflow/report/diagnostics.rst",
            category="Diagnostics",
            subcategory="learning verdicts",
            labels={"run": "{run}", "check": "learning diagnostics"},
        ),
        plot=report(
            f"{OUT}/plots/training/{{run}}.png",
            caption="../workflow/report/training.rst",
            category="Training",
            labels={"run": "{run}", "plot": "training metrics"},
        ),
    log:
        f"{OUT}/logs/diagnose/{{run}}.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        gpu=0,  # a CPU job: no GPU on SLURM either
    params:
        code=code_hash("analysis"),
        color=lambda wc: run_colors(list(EXP.base_runs) + list(RUNS))[wc.run],
    script:
        "../workflow/scripts/diagnose.py"


rule wandb:
    input:
        scores=f"{OUT}/scores.csv",
        metrics=[f"{OUT}/runs/{run}/metrics.jsonl" for run in RUNS],
        tasks_plot=f"{OUT}/plots/evolution_tasks.png",
        domains_plot=f"{OUT}/plots/evolution_domains.png",
    output:
        f"{OUT}/wandb/runs.json",
    log:
        f"{OUT}/logs/wandb.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        gpu=0,  # a CPU job: no GPU on SLURM either
    params:
        code=code_hash("tracking"),
        experiment=EXP.name,
        runs=RUNS,
        base_of=BASE_OF,
        colors=run_colors(list(EXP.base_runs) + list(RUNS)),
        cfg=WANDB,
    script:
        "../workflow/scripts/wandb_log.py"


rule report:
    input:
        scores=f"{OUT}/scores.csv",
        tasks_plot=f"{OUT}/plots/evolution_tasks.png",
        domains_plot=f"{OUT}/plots/evolution_domains.png",
        metrics=[f"{OUT}/runs/{run}/metrics.jsonl" for run in RUNS],
        diagnostics=[f"{OUT}/diagnostics/{run}.json" for run in RUNS],
        training_plots=[f"{OUT}/plots/training/{run}.png" for run in RUNS],
        preflight=list(preflight_results().values()),
        wandb=f"{OUT}/wandb/runs.json",
        sample_scores=sample_score_files,
    output:
        report=report(
            f"{OUT}/report.md",
            caption="../workflow/report/report.rst",
            category="Comparison",
            labels={"item": "comparison report (markdown)"},
        ),
        comparison=report(
            f"{OUT}/tables/comparison.csv",
            caption="../workflow/report/comparison.rst",
            category="Comparison",
            labels={"item": "deltas vs base and baseline (table)"},
        ),
        comparison_plot=report(
            f"{OUT}/plots/comparison.png",
            caption="../workflow/report/comparison_plot.rst",
            category="Comparison",
            labels={"item": "deltas vs the baseline (plot)"},
        ),
        checkpoints=report(
            f"{OUT}/tables/checkpoints.csv",
            caption="../workflow/report/checkpoints.rst",
            category="Evaluation",
            subcategory="overview",
            labels={"item": "best checkpoints, stopping, overfitting"},
        ),
        diagnostics=report(
            f"{OUT}/tables/diagnostics.csv",
            caption="../workflow/report/diagnostics_table.rst",
            category="Diagnostics",
            subcategory="summary",
            labels={"table": "learning verdicts"},
        ),
        preflight=report(
            f"{OUT}/tables/preflight.csv",
            caption="../workflow/report/preflight_table.rst",
            category="Diagnostics",
            subcategory="summary",
            labels={"table": "pre-flight checks"},
        ),
        cost=report(
            f"{OUT}/tables/cost.csv",
            caption="../workflow/report/cost.rst",
            category="Diagnostics",
            subcategory="summary",
            labels={"table": "cost per job"},
        ),
    log:
        f"{OUT}/logs/report.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        gpu=0,  # a CPU job: no GPU on SLURM either
    params:
        # the template by content, not by path: a moved project reruns nothing (the script finds it)
        template_sha256=sha256_file(
            f"{workflow.basedir}/workflow/templates/report.md.j2"
        ),
        code=code_hash("analysis"),
        experiment=EXP.name,
        description=EXP.config.get("description", ""),
        baseline=EXP.baseline,
        runs=RUNS,
        hyperparameters=EXP.hyperparameters,
        base_runs=EXP.base_runs,
        suite=SUITE["name"],
        sample_scores=lambda wc: sample_scores(),
        preflight=preflight_results(),
        job_logs=lambda wc: job_logs(),
        config=EXP.config,
        colors=run_colors(list(EXP.base_runs) + list(RUNS)),
    script:
        "../workflow/scripts/report.py"
