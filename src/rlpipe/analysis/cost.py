"""What a run cost: wall time, CPU- and GPU-hours per training run and per evaluation job.

Two sources, best first:

* ``sacct`` -- when a job ran under SLURM (its timing record carries ``SLURM_JOB_ID``) and the
  accounting database answers, the allocation is what was billed: elapsed time x allocated GPUs
  (``AllocTRES gres/gpu``) and ``CPUTimeRAW`` (elapsed x allocated cores).
* the job's own timing -- :func:`rlpipe.tracking.logs.script_logging` records every attempt of
  every rule script: wall time, measured process CPU time, and the GPUs it allocated memory on.

A job that was interrupted and resumed costs all of its attempts: the attempts counted are the
last successful one and the failed ones right before it (earlier attempts belong to outputs
that a config change has since replaced).
"""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)

SACCT_FORMAT = "JobIDRaw,ElapsedRaw,AllocTRES,CPUTimeRAW,State"


@dataclass(frozen=True)
class JobCost:
    """The cost of one job (all attempts that produced its current outputs)."""

    wall_s: float
    cpu_h: float
    gpu_h: float
    gpus: int
    attempts: int
    source: str  # "sacct", "job timing" or "not recorded"

    @property
    def wall_h(self) -> float:
        return self.wall_s / 3600.0


NOT_RECORDED = JobCost(math.nan, math.nan, math.nan, 0, 0, "not recorded")


def current_attempts(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The attempts behind the current outputs: the last successful one and the failures just before.

    With no successful attempt (a job that is failing right now) all trailing failures count.
    """
    if not records:
        return []
    end = max((i for i, r in enumerate(records) if r.get("status") == "ok"), default=len(records) - 1)
    start = end
    while start > 0 and records[start - 1].get("status") != "ok":
        start -= 1
    return list(records[start : end + 1])


def parse_tres_gpus(tres: str) -> int:
    """GPUs in a SLURM TRES string: ``gres/gpu=2``, or the sum of typed ``gres/gpu:h200=1`` entries."""
    plain, typed = None, 0
    for part in tres.split(","):
        key, _, value = part.partition("=")
        if key == "gres/gpu":
            plain = int(float(value or 0))
        elif key.startswith("gres/gpu:"):
            typed += int(float(value or 0))
    return plain if plain is not None else typed


def parse_sacct(text: str) -> dict[str, dict[str, Any]]:
    """``sacct -X -n -P --format=JobIDRaw,ElapsedRaw,AllocTRES,CPUTimeRAW,State`` -> job id -> usage."""
    usage: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 5 or not fields[0]:
            continue
        job, elapsed, tres, cpu_raw, state = fields[:5]
        try:
            usage[job] = {
                "elapsed_s": float(elapsed or 0),
                "gpus": parse_tres_gpus(tres),
                "cpu_s": float(cpu_raw or 0),
                "state": state,
            }
        except ValueError:
            log.warning("unreadable sacct line: %r", line)
    return usage


def sacct_usage(job_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Accounting for finished SLURM jobs; empty when ``sacct`` is absent or fails (no SLURM here)."""
    ids = sorted({str(j) for j in job_ids if j})
    if not ids or shutil.which("sacct") is None:
        return {}
    cmd = ["sacct", "-X", "-n", "-P", f"--format={SACCT_FORMAT}", "-j", ",".join(ids)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("sacct failed (%s); using the jobs' own timing", exc)
        return {}
    return parse_sacct(proc.stdout)


def job_cost(records: Sequence[Mapping[str, Any]], sacct: Mapping[str, Mapping[str, Any]]) -> JobCost:
    """Cost of one job from its timing records, each attempt refined by ``sacct`` when it knows it."""
    attempts = current_attempts(records)
    if not attempts:
        return NOT_RECORDED
    wall = cpu_s = gpu_s = 0.0
    gpus, sources = 0, set()
    for rec in attempts:
        acct = sacct.get(str(rec.get("slurm_job_id") or ""))
        if acct is not None and acct["elapsed_s"] > 0:
            wall += acct["elapsed_s"]
            cpu_s += acct["cpu_s"]
            gpu_s += acct["elapsed_s"] * acct["gpus"]
            gpus = max(gpus, int(acct["gpus"]))
            sources.add("sacct")
        else:
            wall += float(rec.get("wall_s", 0.0))
            cpu_s += float(rec.get("cpu_s", 0.0))
            gpu_s += float(rec.get("wall_s", 0.0)) * int(rec.get("gpus", 0))
            gpus = max(gpus, int(rec.get("gpus", 0)))
            sources.add("job timing")
    return JobCost(wall, cpu_s / 3600.0, gpu_s / 3600.0, gpus, len(attempts), " + ".join(sorted(sources)))


def total(costs: Iterable[JobCost]) -> JobCost:
    """Sum of several jobs; NaN only when none of them was recorded."""
    recorded = [c for c in costs if c.attempts]
    if not recorded:
        return NOT_RECORDED
    return JobCost(
        sum(c.wall_s for c in recorded),
        sum(c.cpu_h for c in recorded),
        sum(c.gpu_h for c in recorded),
        max(c.gpus for c in recorded),
        sum(c.attempts for c in recorded),
        " + ".join(sorted({s for c in recorded for s in c.source.split(" + ")})),
    )


def gain_per_hour(gain: float, cost: JobCost) -> tuple[float, str]:
    """Score gained per GPU-hour, or per CPU-hour when the run used no GPU (NaN when unknown)."""
    if cost.gpu_h > 0:
        return gain / cost.gpu_h, "GPU-hour"
    if cost.cpu_h > 0:
        return gain / cost.cpu_h, "CPU-hour"
    return math.nan, "hour"


def cost_row(kind: str, run: str, step: int | None, cost: JobCost) -> dict[str, Any]:
    """A flat row of ``tables/cost.csv``."""
    row = {"kind": kind, "run": run, "step": step, **asdict(cost)}
    row["wall_h"] = cost.wall_h
    return row
