"""Cost: attempts that count, sacct parsing, job cost and score gained per hour."""

from __future__ import annotations

import math

import pytest

from rlpipe.analysis import cost


def rec(status: str, wall: float, gpus: int = 0, cpu: float = 0.0, job: str | None = None) -> dict:
    return {"status": status, "wall_s": wall, "cpu_s": cpu, "gpus": gpus, "slurm_job_id": job}


def test_current_attempts_are_the_last_success_and_the_failures_before_it() -> None:
    history = [rec("ok", 1), rec("failed", 2), rec("failed", 3), rec("ok", 4)]
    assert [r["wall_s"] for r in cost.current_attempts(history)] == [2, 3, 4]
    assert [r["wall_s"] for r in cost.current_attempts(history + [rec("failed", 5)])] == [2, 3, 4]
    assert [r["wall_s"] for r in cost.current_attempts([rec("failed", 1), rec("failed", 2)])] == [1, 2]
    assert cost.current_attempts([]) == []


def test_tres_gpus() -> None:
    assert cost.parse_tres_gpus("billing=8,cpu=8,gres/gpu=2,mem=64G,node=1") == 2
    assert cost.parse_tres_gpus("cpu=4,gres/gpu:h200=1,gres/gpu:a100=2,mem=8G") == 3
    assert cost.parse_tres_gpus("cpu=4,mem=8G") == 0


def test_parse_sacct_and_job_cost_prefer_the_accounting() -> None:
    text = (
        "101|3600|billing=4,cpu=4,gres/gpu=1,mem=16G,node=1|14400|COMPLETED\n102|60|cpu=2,mem=1G|120|FAILED\n"
    )
    acct = cost.parse_sacct(text)
    assert acct["101"] == {"elapsed_s": 3600.0, "gpus": 1, "cpu_s": 14400.0, "state": "COMPLETED"}
    # a preempted attempt (job 102, no GPU) and the successful resume (job 101, 1 GPU for an hour)
    c = cost.job_cost([rec("failed", 50, job="102"), rec("ok", 3500, gpus=1, job="101")], acct)
    assert c.source == "sacct" and c.attempts == 2
    assert c.wall_s == 3660 and c.gpu_h == pytest.approx(1.0) and c.cpu_h == pytest.approx(14520 / 3600)
    # without accounting: the job's own timing
    own = cost.job_cost([rec("ok", 1800, gpus=2, cpu=900)], {})
    assert own.source == "job timing" and own.gpu_h == pytest.approx(1.0) and own.cpu_h == pytest.approx(0.25)


def test_sacct_usage_without_slurm_is_empty(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert cost.sacct_usage(["123"]) == {}


def test_totals_and_gain_per_hour() -> None:
    a = cost.JobCost(3600, 1.0, 2.0, 2, 1, "job timing")
    b = cost.JobCost(1800, 0.5, 0.0, 0, 1, "sacct")
    t = cost.total([a, b, cost.NOT_RECORDED])
    assert (t.wall_s, t.cpu_h, t.gpu_h, t.attempts, t.source) == (5400, 1.5, 2.0, 2, "job timing + sacct")
    assert cost.gain_per_hour(0.1, t) == (pytest.approx(0.05), "GPU-hour")
    assert cost.gain_per_hour(0.1, b) == (pytest.approx(0.2), "CPU-hour")
    assert math.isnan(cost.total([]).wall_s)
