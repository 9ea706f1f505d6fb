"""The reduced embedded default on a real SLURM cluster: `snakemake --profile profiles/slurm all`.

One workflow run (tests/configs/slurm.yaml: every stage, one GPU per run) with two interruptions of
the training job, then checks from the accounting DB (sacct) and the files:

* every job of the DAG ran as its own SLURM job; GPU rules (warmup, preflight, train, generate) with a
  ``gres/gpu`` allocation, CPU rules without; training asked for the early-warning signal;
* training attempt 1 is cancelled mid-run with ``scancel`` -> CANCELLED, retried; attempt 2 gets
  the early-warning signal (``scancel --signal=URG``, delivered as ``--signal=URG@...`` would be)
  -> saves a checkpoint, FAILED, retried; attempt 3 resumes from that checkpoint and completes, with
  a longer time limit and more memory each attempt; the workflow completes;
* sentinel values of HF_TOKEN / HUGGING_FACE_HUB_TOKEN / WANDB_API_KEY reach every job through the
  environment and appear in no file under results/ or .snakemake/, nor in SLURM's record of a job.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "tests" / "configs" / "slurm.yaml"
OUT = "results/slurm"
RUN_TIMEOUT_S = 540  # hard limit (SIGKILL) on the workflow run; it takes ~3-4 min on 2 cores
WAIT_S = 240  # longest wait for one event while driving the run
STEPS = 60
GPU_RULES = {"warmup", "preflight", "train", "generate"}
EXPECTED_JOBS = {
    "prepare_model": 1,
    "prepare_train_data": 1,
    "prepare_suite_task": 2,
    "warmup": 1,
    "preflight": 1,
    "train": 3,  # cancelled, warned (SIGURG), resumed to the end
    "generate": 2,  # base at step 0 and the one checkpoint
    "score": 2,
    "diagnose": 1,
    "aggregate": 1,
    "plot_evolution": 1,
    "wandb": 1,
    "report": 1,
}
SECRETS = {
    "HF_TOKEN": "hf_rlpipeSENTINEL3f9a1c7e55",
    "HUGGING_FACE_HUB_TOKEN": "hf_rlpipeSENTINELb2d48e0199",
    "WANDB_API_KEY": "rlpipe0wandb0SENTINEL6c1f0a9d",
}
SUBMITTED = re.compile(r"SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/")


class Run:
    """The snakemake process and what it has submitted so far."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir, self.out = workdir, workdir / "snakemake.out"
        cmd = [
            "timeout", "-s", "KILL", str(RUN_TIMEOUT_S),
            sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--profile", str(REPO / "profiles" / "slurm"), "--configfile", str(CONFIG),
            # first status check 1 s after a submission (the profile's 5 s suits a real cluster)
            "--slurm-init-seconds-before-status-checks", "1",
            "all",
        ]  # fmt: skip
        with open(self.out, "w") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )

    def log(self) -> str:
        return self.out.read_text()

    def jobs(self) -> list[tuple[str, str]]:
        """(SLURM job id, rule) of every submission, in order."""
        return SUBMITTED.findall(self.log())

    def ids(self, rule: str) -> list[str]:
        return [jobid for jobid, r in self.jobs() if r == rule]

    def wait(self, what: str, predicate, timeout: float = WAIT_S):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"never saw {what} (snakemake rc={self.proc.poll()}):\n{self.log()[-5000:]}")
            time.sleep(0.2)

    def finish(self) -> int:
        try:
            return self.proc.wait(timeout=RUN_TIMEOUT_S + 30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def _state(jobid: str) -> str:
    cmd = ["squeue", "-h", "-j", jobid, "-o", "%T"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()


def _training_since(metrics: Path, t0: float) -> bool:
    """True once the trainer has logged a step into metrics.jsonl after wall time ``t0``."""
    try:
        return metrics.stat().st_mtime > t0 and metrics.read_text().strip() != ""
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def run(slurm_cluster, slurm_durations, tmp_path_factory):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **SECRETS}
    env.setdefault("RLPIPE_SLURM_PARTITION", "debug")
    env.setdefault("RLPIPE_SLURM_ACCOUNT", "ci")
    workdir = tmp_path_factory.mktemp("slurm-workflow")
    # the live metrics (rlpipe.train.checkpoints.live_metrics): the output appears only at the end
    metrics = workdir / OUT / "runs" / "grpo" / "state" / "metrics.jsonl"
    t0 = time.monotonic()
    run = Run(workdir, env)

    # attempt 1: cancel once training is under way
    first = run.wait("the first training job", lambda: run.ids("train")[:1])[0]
    run.wait("training steps of attempt 1", lambda: _training_since(metrics, 0))
    subprocess.run(["scancel", first], check=True, timeout=30)

    # attempt 2: the early warning, as SLURM's --signal=URG@<s> sends it (to every process of the steps)
    second = run.wait("the retried training job", lambda: run.ids("train")[1:2])[0]
    # the live metrics survive attempt 1 (its last step may land after the cancel): wait for attempt 2's
    run.wait("attempt 2 to run", lambda: _state(second) == "RUNNING")
    running_at = time.time()
    run.wait("training steps of attempt 2", lambda: _training_since(metrics, running_at))
    assert _state(second) == "RUNNING"
    subprocess.run(["scancel", "--signal=URG", second], check=True, timeout=30)

    rc = run.finish()
    slurm_durations["slurm workflow (tests/configs/slurm.yaml, 2 interruptions)"] = time.monotonic() - t0
    assert rc == 0, f"snakemake exited {rc}:\n{run.log()[-5000:]}"
    return run


FIELDS = ["Comment", "AllocTRES", "Timelimit", "ReqMem", "SubmitLine"]  # sacct, besides JobID and State


def test_every_rule_ran_as_its_own_job_gpu_rules_with_a_gpu(run, sacct):
    jobs = run.jobs()
    assert Counter(rule for _, rule in jobs) == EXPECTED_JOBS, run.log()[-5000:]
    assert len({jobid for jobid, _ in jobs}) == len(jobs)  # one SLURM job per submission
    rows = sacct([jobid for jobid, _ in jobs], FIELDS)
    for jobid, rule in jobs:
        row = rows[jobid]
        assert row["Comment"].startswith(f"rule_{rule}"), row
        if rule in GPU_RULES:
            assert "gres/gpu=1" in row["AllocTRES"], row
        else:
            assert "gres/gpu" not in row["AllocTRES"], row
        assert "--requeue" in row["SubmitLine"], row  # the profile's slurm-requeue
        if rule == "train":
            assert "--signal=URG@60" in row["SubmitLine"], row  # warning_s: 60 in the config
        else:
            assert "--signal" not in row["SubmitLine"], row
        if rule != "train":
            assert row["State"] == "COMPLETED", row


def test_cancelled_and_warned_training_is_retried_and_resumes(run, sacct):
    ids = run.ids("train")
    rows = sacct(ids, FIELDS)
    assert [rows[i]["State"] for i in ids] == ["CANCELLED", "FAILED", "COMPLETED"], rows
    # runtime: 10 min and mem_mb: 3000 in the config, times the attempt
    assert [rows[i]["Timelimit"] for i in ids] == ["00:10:00", "00:20:00", "00:30:00"], rows
    assert [rows[i]["ReqMem"] for i in ids] == ["3000M", "6000M", "9000M"], rows

    # A retry starts the rule's log afresh; snakemake.out has each failed attempt's log (show-failed-logs).
    shown = run.log()
    # each as a log line and again in the traceback: one distinct step per interruption
    cancelled = set(
        re.findall(r"training interrupted by SIGTERM after step (\d+); a checkpoint was saved", shown)
    )
    warned = set(
        re.findall(r"training interrupted by SIGURG after step (\d+); a checkpoint was saved", shown)
    )
    assert len(cancelled) == 1 and len(warned) == 1, shown[-5000:]
    resumed = set(re.findall(r"resuming from \S*checkpoint-(\d+)", shown))
    assert resumed == cancelled, shown[-5000:]  # attempt 2 went on from where scancel stopped attempt 1
    log = (run.workdir / OUT / "logs" / "train" / "grpo.log").read_text()
    assert set(re.findall(r"resuming from \S*checkpoint-(\d+)", log)) == warned, log[-3000:]  # attempt 3
    (step_cancelled,), (step_warned,) = cancelled, warned
    assert 0 < int(step_cancelled) < int(step_warned) < STEPS

    metrics = [json.loads(line) for line in (run.workdir / OUT / "runs" / "grpo" / "metrics.jsonl").open()]
    # every step once, including those before each interruption (kept in the live file across retries)
    assert [m["step"] for m in metrics if "reward" in m] == list(range(1, STEPS + 1))


def test_workflow_completed_with_every_artifact(run):
    out = run.workdir / OUT
    scores = pd.read_csv(out / "scores.csv")
    assert set(zip(scores["run"], scores["step"], strict=True)) == {("base", 0), ("grpo", STEPS)}
    assert set(scores["task"]) == {"addition", "sorting"}
    assert "## Scores at the final checkpoint" in (out / "report.md").read_text()
    assert (out / "plots" / "evolution_tasks.png").stat().st_size > 10_000


def test_secrets_reach_every_job_and_no_file(run):
    logs = sorted((run.workdir / OUT / "logs").rglob("*.log"))
    assert len(logs) == sum(EXPECTED_JOBS.values()) - 2  # retries append to the same log
    names = ", ".join(sorted(SECRETS))
    for log in logs:  # each job saw the variables, exported by sbatch --export=ALL
        assert f"secrets in the environment: {names} (values redacted)" in log.read_text(), log

    leaked = []
    scanned = 0
    for root in (run.workdir / "results", run.workdir / ".snakemake", run.workdir / "snakemake.out"):
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                scanned += 1
                leaked += [f"{path}: {var}" for var, value in SECRETS.items() if value.encode() in data]
    assert scanned > 50 and not leaked, leaked

    ids = [jobid for jobid, _ in run.jobs()]
    record = subprocess.run(
        ["sacct", "-n", "-P", "-j", ",".join(ids), "-o", "JobID,JobName,Comment,SubmitLine%5000,WorkDir%500"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert record.strip() and not [var for var, value in SECRETS.items() if value in record]
