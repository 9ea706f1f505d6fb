"""The SLURM profile against a real cluster (tests/slurm/conftest.py brings one up in CI).

Runs tests/slurm/smoke/Snakefile through `--profile profiles/slurm` and checks, from the accounting DB
(sacct), that the GPU rule got a `gres/gpu` allocation and the CPU rule did not, and what each job saw
of its GPUs. A quick check of the profile and the cluster before test_slurm_workflow.py runs the
real workflow (with cancelled and retried jobs).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "tests" / "slurm" / "smoke" / "Snakefile"
PROFILE = REPO / "profiles" / "slurm"
SNAKEMAKE_TIMEOUT_S = 300  # hard limit (SIGKILL) on every snakemake run
SUBMITTED = re.compile(r"SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/")

pytestmark = pytest.mark.slurm


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


def test_gpu_rule_gets_gres_and_cpu_rule_does_not(slurm_env, sacct, tmp_path):
    log = _finish(_snakemake(tmp_path, slurm_env), tmp_path)

    jobs = _submitted(log)
    assert set(jobs) == {"cpu", "gpu"}, log[-4000:]
    rows = sacct(jobs["cpu"] + jobs["gpu"], ["JobName", "AllocTRES"], timeout_s=30)
    assert all(row["State"] == "COMPLETED" for row in rows.values()), rows
    (gpu_job,) = jobs["gpu"]
    (cpu_job,) = jobs["cpu"]
    assert "gres/gpu=1" in rows[gpu_job]["AllocTRES"], rows
    assert "gres/gpu" not in rows[cpu_job]["AllocTRES"], rows

    # inside the GPU job SLURM exported the one allocated device; the CPU job saw none
    assert re.fullmatch(r"\d+", (tmp_path / "gpu.txt").read_text().strip())
    assert "cuda=unset" in (tmp_path / "cpu.txt").read_text()
