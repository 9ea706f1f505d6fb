"""Early stopping through the real workflow: the `train` checkpoint rule, then exactly its checkpoints.

tests/configs/early-stopping.yaml makes the stop steps known in advance (min_delta 1.0: nothing
after the first validation counts as an improvement): grpo-es stops at step 4, ppo-es at step 6,
while grpo keeps its static schedule. The dry run must plan grpo's evaluations before any
training (static schedule) and none of the early-stopping runs' (unknown yet); after the run,
the evaluated steps of every run are exactly the step_N checkpoints it saved.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "configs" / "early-stopping.yaml"
OUT = Path("results") / "early-stopping"
pytestmark = pytest.mark.e2e


def snakemake(workdir: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(CONFIG), "--cores", "2", *args]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=workdir)
    if proc.returncode:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc.stdout + proc.stderr


def planned_evaluations(output: str) -> set[tuple[str, int]]:
    jobs = re.findall(r"rule generate:.*?wildcards: run=(\S+), step=(\d+)", output, re.S)
    return {(run.rstrip(","), int(step)) for run, step in jobs}


def saved(run_dir: Path, run: str) -> list[int]:
    folder = run_dir / OUT / "runs" / run / "checkpoints"
    return sorted(int(p.name.split("_")[1]) for p in folder.iterdir() if p.name.startswith("step_"))


def test_early_stopping_runs_evaluate_exactly_the_checkpoints_they_saved(tmp_path):
    dry = snakemake(tmp_path, "-n")
    assert planned_evaluations(dry) == {("base", 0), ("grpo", 3), ("grpo", 6)}
    assert "checkpoint jobs" in dry  # Snakemake knows the DAG changes after training

    snakemake(tmp_path)
    # schedule (every 3) and validation steps (every 2) up to the stop
    assert saved(tmp_path, "grpo-es") == [2, 3, 4]
    assert saved(tmp_path, "ppo-es") == [2, 3, 4, 6]
    assert saved(tmp_path, "grpo") == [3, 6]
    scores = pd.read_csv(tmp_path / OUT / "scores.csv")
    evaluated = {(r, int(s)) for r, s in zip(scores["run"], scores["step"], strict=True)}
    expected = {("base", 0)} | {
        (run, s) for run in ("grpo", "grpo-es", "ppo-es") for s in saved(tmp_path, run)
    }
    assert evaluated == expected

    for run, stop, evals in (("grpo-es", 4, [2, 4]), ("ppo-es", 6, [2, 4, 6])):
        lines = [
            json.loads(x) for x in (tmp_path / OUT / "runs" / run / "metrics.jsonl").read_text().splitlines()
        ]
        steps = [m["step"] for m in lines if "reward" in m]
        assert steps == list(range(1, stop + 1)), (run, steps)  # it stopped there, out of 12
        validated = [m for m in lines if "validation_reward" in m]
        assert [m["step"] for m in validated] == evals
        assert all(0.0 <= m["validation_reward"] <= 1.0 for m in validated)
        assert all(m["early_stopping/best_step"] == 2 for m in validated)
        assert (
            f"early stop at step {stop} of 12"
            in (tmp_path / OUT / "logs" / "train" / f"{run}.log").read_text()
        )

    report = (tmp_path / OUT / "report.md").read_text()
    assert "grpo-es" in report and "ppo-es" in report
    # every job that reads all evaluations waited for the checkpoints: nothing is re-planned
    assert "Nothing to be done" in snakemake(tmp_path, "-n")
