"""End to end: the real workflow on a reduced config — real tiny model, real TRL steps, real evaluation.

One module-scoped run is shared by the artifact checks and the rerun-semantics checks (which use
dry runs); a second run in another directory checks that the same seed gives identical scores.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "configs" / "e2e.yaml"
EXP = "e2e"
TASKS = {"addition", "sorting", "program"}
pytestmark = pytest.mark.e2e


def snakemake(workdir: Path, *args: str, configfile: Path = CONFIG, timeout: int = 1200) -> str:
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(configfile), "--cores", "2", *args,
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=workdir)
    if proc.returncode:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc.stdout + proc.stderr


def planned_jobs(output: str) -> tuple[Counter, list[str]]:
    """Job counts per rule and the `run` wildcards of planned train jobs, from a dry run's output."""
    counts: Counter = Counter()
    table = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)total", output, re.S)
    if table:
        for line in table.group(1).strip().splitlines():
            rule, count = line.split()
            counts[rule] = int(count)
    trained = re.findall(r"(?:rule|checkpoint) train:.*?wildcards: run=(\S+)", output, re.S)
    return counts, sorted(set(trained))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("wf")
    snakemake(workdir)
    return workdir


def test_every_artifact_is_there(run_dir):
    out = run_dir / "results" / EXP
    scores = pd.read_csv(out / "scores.csv")
    assert {"experiment", "run", "method", "step", "task", "domain", "n", "score"} <= set(scores.columns)
    expected = {("base", 0)} | {(r, s) for r in ("grpo", "grpo-lora") for s in (3, 6)}
    assert set(zip(scores["run"], scores["step"], strict=True)) == expected
    assert len(scores) == len(expected) * len(TASKS)
    assert set(scores["task"]) == TASKS
    assert scores["score"].between(0, 1).all()
    assert (scores["n"] == 24).all()
    # the warmed-up base solves some problems: the model is real and was trained
    assert scores[scores["run"] == "base"]["score"].max() > 0

    for plot in ("evolution_tasks.png", "evolution_domains.png"):
        data = (out / "plots" / plot).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000

    report = (out / "report.md").read_text()
    for section in ("## Scores at the final checkpoint", "## Best checkpoint per run", "vs its base model",
                    "## Delta vs the baseline run `grpo`", "## Checkpoint evolution"):  # fmt: skip
        assert section in report
    assert "plots/evolution_domains.png" in report
    assert "nan" not in report.split("## Training")[0].lower()

    metrics = (out / "runs" / "grpo" / "metrics.jsonl").read_text().splitlines()
    assert len([m for m in metrics if '"reward"' in m]) == 6

    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out / "runs" / "grpo" / "checkpoints" / "step_6")
    assert (out / "runs" / "grpo-lora" / "checkpoints" / "step_6" / "adapter_config.json").exists()
    samples = (out / "eval" / "grpo-lora" / "step_6" / "completions.jsonl").read_text().splitlines()
    assert len(samples) == 3 * 24 * 2
    for rule in ("prepare_model", "warmup", "train", "generate", "score", "aggregate", "report"):
        assert list((out / "logs").glob(f"{rule}*")), rule


def test_html_report_embeds_plots_and_tables(run_dir):
    html = run_dir / "results" / EXP / "report.html"
    snakemake(run_dir, "--report", str(html))
    text = html.read_text()
    for name in ("evolution_tasks.png", "evolution_domains.png", "scores.csv", "report.md"):
        assert name in text, name
    assert html.stat().st_size > 100_000


def test_complete_run_has_nothing_to_do(run_dir):
    output = snakemake(run_dir, "-n")
    assert "Nothing to be done" in output, output[-2000:]


def test_changing_one_run_reruns_only_that_run(run_dir, tmp_path):
    config = yaml.safe_load(CONFIG.read_text())
    config["runs"][1]["grpo"]["learning_rate"] = 5e-4
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    counts, trained = planned_jobs(snakemake(run_dir, "-n", configfile=changed))
    assert trained == ["grpo-lora"]
    assert counts == Counter(
        {"train": 1, "generate": 2, "score": 2, "aggregate": 1, "plot_evolution": 1, "report": 1, "all": 1}
    )


def test_editing_the_report_template_reruns_only_the_report(run_dir):
    # Snakemake ignores a newer mtime when the content checksum is unchanged: really edit it.
    template = ROOT / "workflow" / "templates" / "report.md.j2"
    original = template.read_text()
    try:
        template.write_text(original + "{# edited by test_workflow_e2e #}\n")
        counts, _ = planned_jobs(snakemake(run_dir, "-n"))
    finally:
        template.write_text(original)
    assert counts == Counter({"report": 1, "all": 1})


def test_same_seed_gives_identical_scores(run_dir, tmp_path):
    snakemake(tmp_path)
    first = (run_dir / "results" / EXP / "scores.csv").read_bytes()
    assert (tmp_path / "results" / EXP / "scores.csv").read_bytes() == first
