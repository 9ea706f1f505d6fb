"""The seed experiments (config/experiments/*.yaml) plan offline: `snakemake -n` from the fixture cache.

Nothing runs and nothing is downloaded: the hub models are only fetched by prepare_model jobs (HF_HOME is
an empty directory and HF_HUB_OFFLINE=1), and every hub dataset -- evaluation suites and training data
alike -- resolves to tests/fixtures/hf through RLPIPE_DATA_ROOT at parse time. Each DAG's job counts
follow from its config (runs x checkpoints + one base evaluation); every GPU rule asks for the run's GPUs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "config" / "experiments"
GPU_RULES = {"train", "generate", "warmup", "preflight"}


def common(suite_tasks: int, runs: int, evaluations: int) -> dict[str, int]:
    counts = {
        "prepare_model": 1, "prepare_train_data": 1, "prepare_suite_task": suite_tasks, "train": runs,
        "generate": evaluations, "score": evaluations, "aggregate": 1, "plot_evolution": 1, "report": 1,
        "all": 1, "preflight": runs, "diagnose": runs, "wandb": 1,
    }  # fmt: skip
    return {**counts, "total": sum(counts.values())}


# name -> (expected job counts, GPUs each train job asks for)
EXPECTED = {
    # 2 runs (PPO, PPO + PCGrad) with early stopping: train is a Snakemake checkpoint, so a dry run plans
    # only the base model's evaluation; the runs' evaluations appear once training says which exist.
    "guru-mtl": (common(19, 2, 1), 2),
    # 2 runs (GRPO, PPO) x 500 / 50 = 10 checkpoints, + base; gsm8k = 1 task
    "gsm8k-ppo-vs-grpo": (common(1, 2, 2 * 10 + 1), 1),
    # 3 (r, alpha = 2r) x 2 (grpo / dr_grpo) x 2 (beta) = 12 runs x 300 / 50 = 6 checkpoints, + base
    "musique-lora-sweep": (common(1, 12, 12 * 6 + 1), 3),
    # the embedded default on 3 seeds: 6 configurations x 3 seeds = 18 runs x 60 / 30 = 2 checkpoints,
    # + one base (the warm-up is shared: seeds vary training only); a tiny model, so no GPU
    "tiny-seeds": ({**common(3, 18, 18 * 2 + 1), "warmup": 1, "total": common(3, 18, 37)["total"] + 1}, 0),
}


def dry_run(name: str, workdir: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(EXPERIMENTS / f"{name}.yaml"), "--cores", "1", "-n",
    ]  # fmt: skip
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=workdir)
    return proc, time.monotonic() - start


def job_counts(output: str) -> Counter:
    table = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)total\s+(\d+)", output, re.S)
    assert table, output[-3000:]
    counts: Counter = Counter()
    for line in table.group(1).strip().splitlines():
        rule, count = line.split()
        counts[rule] = int(count)
    counts["total"] = int(table.group(2))
    return counts


def job_resources(output: str) -> list[tuple[str, str, int]]:
    """(rule, wildcards, gpu) of every planned job, from the dry run's job blocks."""
    jobs = []
    for block in re.split(r"\n(?=\[[^\n]*\]\n(?:rule|checkpoint) )", output):
        rule = re.search(r"^(?:rule|checkpoint) (\w+):", block, re.M)
        if not rule:
            continue
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        resources = re.search(r"^\s+resources: (.*)$", block, re.M)
        gpu = re.search(r"\bgpu=(\d+)", resources.group(1)) if resources else None
        jobs.append((rule.group(1), wildcards.group(1) if wildcards else "", int(gpu.group(1)) if gpu else 0))
    return jobs


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "empty_hf_home"),  # no model and no dataset is cached
        "RLPIPE_DATA_ROOT": str(ROOT / "tests" / "fixtures" / "hf"),
    }


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_seed_experiment_dag(name: str, tmp_path: Path, env: dict[str, str]) -> None:
    proc, seconds = dry_run(name, tmp_path, env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    counts, train_gpus = EXPECTED[name]
    assert job_counts(output) == Counter(counts)
    print(f"dry run of {name}: {seconds:.1f} s")  # speed is a bench concern, not a timed assertion

    jobs = job_resources(output)
    assert Counter(rule for rule, _, _ in jobs) + Counter({"total": len(jobs)}) == Counter(counts)
    for rule, wildcards, gpu in jobs:
        if rule == "train":
            assert gpu == train_gpus, (rule, wildcards, gpu)
        elif rule in GPU_RULES and train_gpus:
            assert gpu >= 1, (rule, wildcards, gpu)  # every evaluation, the base model's too
        else:
            assert gpu == 0, (rule, wildcards, gpu)
    home = tmp_path / "empty_hf_home"
    assert not home.exists() or not [p for p in home.rglob("*") if p.is_file()]  # nothing was fetched


def test_seed_experiment_without_the_data_fails_at_parse(tmp_path: Path, env: dict[str, str]) -> None:
    """Offline, with no mirror and an empty cache, the first training dataset missing is named with the
    command that fetches it -- before any job is planned."""
    del env["RLPIPE_DATA_ROOT"]
    proc, _ = dry_run("gsm8k-ppo-vs-grpo", tmp_path, env)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert re.search(
        r"gsm8k-ppo-vs-grpo.yaml: data.sources.gsm8k_train.source: dataset openai/gsm8k@\w+ file "
        r"main/train-00000-of-00001.parquet is not in the cache .*; fetch it with: hf download openai/gsm8k "
        r"main/train-00000-of-00001.parquet --repo-type dataset --revision \w+",
        output,
    ), output[-3000:]
    assert "Job stats" not in output
