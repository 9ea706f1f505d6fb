"""The DAG of an experiment evaluated on the guru19 suite, planned offline from the fixtures (a dry run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "tests" / "configs" / "guru19-dryrun.yaml"
GURU19 = {
    "math500", "aime24", "humaneval", "mbpp", "livecodebench", "gpqa_diamond", "supergpqa", "arcagi1",
    "zebra_puzzle", "codeio", "cruxeval_i", "cruxeval_o", "finqa", "hitab", "multihiertt", "ifeval",
    "livebench_reasoning", "livebench_language", "livebench_data_analysis",
}  # fmt: skip


def dry_run(workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(CONFIG), "--cores", "1", "-n",
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=workdir)


def job_counts(output: str) -> Counter:
    table = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)total\s+(\d+)", output, re.S)
    assert table, output[-3000:]
    counts: Counter = Counter()
    for line in table.group(1).strip().splitlines():
        rule, count = line.split()
        counts[rule] = int(count)
    counts["total"] = int(table.group(2))
    return counts


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "empty_hf_home"),
        "RLPIPE_DATA_ROOT": str(ROOT / "tests" / "fixtures" / "hf"),
    }


def test_guru19_experiment_dag(tmp_path: Path, env: dict[str, str]) -> None:
    proc = dry_run(tmp_path, env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    # 2 runs x checkpoints at steps 2 and 4, plus the base model at step 0: 5 evaluations.
    assert job_counts(output) == Counter(
        {
            "prepare_model": 1,
            "prepare_train_data": 1,
            "prepare_suite_task": 19,
            "warmup": 1,
            "train": 2,
            "generate": 5,
            "score": 5,
            "aggregate": 1,
            "plot_evolution": 1,
            "report": 1,
            "all": 1,
            "preflight": 2,
            "diagnose": 2,
            "wandb": 1,
            "total": 43,
        }
    )
    planned = set(re.findall(r"rule prepare_suite_task:.*?wildcards: task=(\S+)", output, re.S))
    assert planned == GURU19


def test_guru19_dag_fails_at_parse_when_the_data_root_lacks_a_file(
    tmp_path: Path, env: dict[str, str]
) -> None:
    env["RLPIPE_DATA_ROOT"] = str(tmp_path / "no_mirror")
    proc = dry_run(tmp_path, env)
    assert proc.returncode != 0
    assert re.search(r"guru19.yaml: tasks\.\w+\.source: data root .*no_mirror", proc.stdout + proc.stderr)
