rule aggregate:
    input:
        summaries,
    output:
        report(
            f"{OUT}/scores.csv",
            caption="../workflow/report/scores.rst",
            category="Evaluation",
            labels={"table": "scores (run x step x task)"},
        ),
    log:
        f"{OUT}/logs/aggregate.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    script:
        "../workflow/scripts/aggregate.py"


rule plot_evolution:
    input:
        f"{OUT}/scores.csv",
    output:
        tasks=report(
            f"{OUT}/plots/evolution_tasks.png",
            caption="../workflow/report/evolution_tasks.rst",
            category="Evaluation",
            labels={"plot": "score vs step per task"},
        ),
        domains=report(
            f"{OUT}/plots/evolution_domains.png",
            caption="../workflow/report/evolution_domains.rst",
            category="Evaluation",
            labels={"plot": "score vs step per domain"},
        ),
    log:
        f"{OUT}/logs/plot_evolution.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        runs=list(EXP.base_runs) + list(RUNS),
        base_of=BASE_OF,
    script:
        "../workflow/scripts/plot_evolution.py"


rule report:
    input:
        scores=f"{OUT}/scores.csv",
        tasks_plot=f"{OUT}/plots/evolution_tasks.png",
        domains_plot=f"{OUT}/plots/evolution_domains.png",
        metrics=[f"{OUT}/runs/{run}/metrics.jsonl" for run in RUNS],
        sample_scores=sample_score_files,
        template=f"{workflow.basedir}/workflow/templates/report.md.j2",
    output:
        report(
            f"{OUT}/report.md",
            caption="../workflow/report/report.rst",
            category="Comparison",
            labels={"document": "comparison report"},
        ),
    log:
        f"{OUT}/logs/report.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        experiment=EXP.name,
        description=EXP.config.get("description", ""),
        baseline=EXP.baseline,
        runs=RUNS,
        base_runs=EXP.base_runs,
        suite=SUITE["name"],
        sample_scores=lambda wc: sample_scores(),
    script:
        "../workflow/scripts/report.py"
