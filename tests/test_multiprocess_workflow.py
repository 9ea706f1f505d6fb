"""Issue 25, item 4: one 2-process run of each distributed kind goes from ``snakemake`` to the report.

tests/configs/multiprocess.yaml asks ``resources.gpus: 2`` for GRPO under FSDP2 (full fine-tune and
LoRA) and for PPO under DDP (separate critic; shared critic with PCGrad). Without GPUs each train job
is the same ``accelerate launch`` a 2-GPU job runs, with 2 processes over gloo: the ranks must find
each other, train, save and export, and every exported step must be evaluated and reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "configs" / "multiprocess.yaml"
RUNS = {"grpo-fsdp": "fsdp", "grpo-lora-fsdp": "fsdp", "ppo-ddp": "ddp", "ppo-pcgrad-ddp": "ddp"}
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("mp")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(CONFIG), "--cores", "2"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, env=env, cwd=workdir)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-8000:]}"
    return workdir / "results" / "multiprocess"


@pytest.mark.parametrize("run", sorted(RUNS))
def test_each_run_trained_as_two_ranks_that_found_each_other(out, run):
    log = (out / "logs" / "train" / f"{run}.log").read_text()
    assert "worker rank 0 of 2" in log and "worker rank 1 of 2" in log, log[-3000:]
    if RUNS[run] == "fsdp":  # no silent fall-back to DDP on a machine without GPUs
        assert "no GPU: FSDP2 on the CPU over gloo" in log, log[-3000:]
    steps = [
        json.loads(line)["step"] for line in (out / "runs" / run / "metrics.jsonl").read_text().splitlines()
    ]
    training = [s for s in steps if s is not None]
    assert sorted(set(training)) == [1, 2, 3, 4], steps
    for step in (2, 4):
        exported = out / "runs" / run / "checkpoints" / f"step_{step}"
        assert (exported / "manifest.json").exists()
        weights = "adapter_model.safetensors" if "lora" in run else "model.safetensors"
        assert (exported / weights).stat().st_size > 0
        assert not list(exported.glob("pytorch_model_fsdp*")) and not list(exported.glob("optimizer*"))


def test_every_exported_step_is_evaluated_and_reported(out):
    scores = pd.read_csv(out / "scores.csv")
    expected = {("base", 0)} | {(run, step) for run in RUNS for step in (2, 4)}
    assert set(zip(scores["run"], scores["step"], strict=True)) == expected
    assert scores["score"].between(0, 1).all()
    report = (out / "report.md").read_text()
    for run in RUNS:
        assert f"`{run}`" in report or f"| {run} |" in report, run
