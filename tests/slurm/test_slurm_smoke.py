"""The SLURM profile against a real cluster (bring it up with `bash tests/slurm/cluster.sh up`).

Runs tests/slurm/smoke/Snakefile through `--profile profiles/slurm` and checks, from the accounting DB
(sacct), that the GPU rule got a `gres/gpu` allocation and the CPU rule did not; and that a GPU job
cancelled mid-run is retried by snakemake (profile `retries`) and the workflow still completes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "tests" / "slurm" / "smoke" / "Snakefile"
PROFILE = REPO / "profiles" / "slurm"
SNAKEMAKE_TIMEOUT_S = 300  # hard limit (SIGKILL) on every snakemake run
SUBMITTED = re.compile(r"SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/")

pytestmark = pytest.mark.slurm


def _cluster_problem() -> str | None:
    """Why the tests cannot run here, or None when a cluster answers and has a usable node."""
    for tool in ("sinfo", "sbatch", "sacct", "scancel"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found: no SLURM client here (bash tests/slurm/cluster.sh up)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15)
        nodes = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
        sacct = subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"SLURM not answering: {err}"
    if ping.returncode != 0 or "UP" not in ping.stdout:
        said = (ping.stdout.strip() or ping.stderr.strip()).splitlines()
        return f"slurmctld not up (scontrol ping: {said[0] if said else ping.returncode}); run cluster.sh up"
    states = nodes.stdout.split()
    if not any(s.rstrip("*~#$@").startswith(("idle", "mix", "alloc")) for s in states):
        return f"no usable SLURM node (sinfo states: {states or 'none'})"
    if sacct.returncode != 0:
        return f"sacct does not work (accounting off?): {sacct.stderr.strip()}"
    return None


@pytest.fixture(scope="module")
def slurm_env() -> dict[str, str]:
    problem = _cluster_problem()
    if problem:
        pytest.skip(problem)
    env = dict(os.environ)
    # The CI cluster's names; a real cluster sets its own in the environment.
    env.setdefault("RLPIPE_SLURM_PARTITION", "debug")
    env.setdefault("RLPIPE_SLURM_ACCOUNT", "ci")
    return env


def _snakemake(workdir: Path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    cmd = [
        "timeout", "-s", "KILL", str(SNAKEMAKE_TIMEOUT_S),
        "snakemake", "-s", str(SNAKEFILE), "--profile", str(PROFILE),
        "--workflow-profile", "none", "--directory", str(workdir), *extra,
    ]  # fmt: skip
    with open(workdir / "snakemake.out", "w") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)


def _finish(proc: subprocess.Popen, workdir: Path) -> str:
    try:
        proc.wait(timeout=SNAKEMAKE_TIMEOUT_S + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = (workdir / "snakemake.out").read_text()
    assert proc.returncode == 0, f"snakemake exited {proc.returncode}:\n{out[-4000:]}"
    return out


def _submitted(log: str) -> dict[str, list[str]]:
    """rule name -> SLURM job ids, in submission order, from snakemake's output."""
    jobs: dict[str, list[str]] = {}
    for jobid, rule in SUBMITTED.findall(log):
        jobs.setdefault(rule, []).append(jobid)
    return jobs


def _sacct(jobids: list[str], final: set[str]) -> dict[str, tuple[str, str, str]]:
    """JobID -> (JobName, AllocTRES, State) for the allocations; waits until every state is final."""
    deadline = time.monotonic() + 30
    while True:
        res = subprocess.run(
            ["sacct", "-n", "-P", "-X", "-j", ",".join(jobids), "-o", "JobID,JobName,AllocTRES,State"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        rows = {}
        for line in res.stdout.splitlines():
            jobid, name, tres, state = line.split("|")
            rows[jobid] = (name, tres, state.split()[0])
        if set(rows) == set(jobids) and all(r[2] in final for r in rows.values()):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"sacct never showed final states for {jobids}: {rows}")
        time.sleep(1)


def test_gpu_rule_gets_gres_and_cpu_rule_does_not(slurm_env, tmp_path):
    log = _finish(_snakemake(tmp_path, slurm_env), tmp_path)

    jobs = _submitted(log)
    assert set(jobs) == {"cpu", "gpu"}, log[-4000:]
    rows = _sacct(jobs["cpu"] + jobs["gpu"], final={"COMPLETED"})
    (gpu_job,) = jobs["gpu"]
    (cpu_job,) = jobs["cpu"]
    assert "gres/gpu=1" in rows[gpu_job][1], rows
    assert "gres/gpu" not in rows[cpu_job][1], rows

    # inside the GPU job SLURM exported the one allocated device; the CPU job saw none
    assert re.fullmatch(r"\d+", (tmp_path / "gpu.txt").read_text().strip())
    assert "cuda=unset" in (tmp_path / "cpu.txt").read_text()


def test_cancelled_gpu_job_is_retried(slurm_env, tmp_path):
    proc = _snakemake(tmp_path, slurm_env, "--config", "gpu_sleep=60")
    ids_file = tmp_path / "gpu_jobids.txt"
    deadline = time.monotonic() + 120
    while not (ids_file.exists() and ids_file.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"GPU job never started:\n{(tmp_path / 'snakemake.out').read_text()[-4000:]}")
        time.sleep(0.5)
    first = ids_file.read_text().split()[0]
    subprocess.run(["scancel", first], check=True, timeout=30)

    log = _finish(proc, tmp_path)

    ids = ids_file.read_text().split()
    assert len(ids) == 2 and ids[0] == first and ids[1] != first, ids
    assert _submitted(log)["gpu"] == ids, log[-4000:]
    rows = _sacct(ids, final={"CANCELLED", "COMPLETED"})
    assert rows[ids[0]][2] == "CANCELLED", rows
    assert rows[ids[1]][2] == "COMPLETED", rows
    assert "gres/gpu=1" in rows[ids[1]][1], rows
    assert (tmp_path / "gpu.txt").read_text().strip() != "unset"
