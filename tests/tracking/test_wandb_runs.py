"""W&B: offline unless told otherwise, one train + one eval run per training run, no secret on disk."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from rlpipe.tracking.wandb_runs import log_experiment, resolve_mode, run_id

SENTINELS = {"WANDB_API_KEY": "sentinel-wandb-key-0123456789abcdef", "HF_TOKEN": "hf_sentinelTOKEN0123456789"}


@pytest.mark.parametrize(
    ("cfg", "env", "mode"),
    [
        ({}, {}, "offline"),
        ({}, {"WANDB_API_KEY": "k"}, "online"),
        ({"mode": "offline"}, {"WANDB_API_KEY": "k"}, "offline"),
        ({}, {"WANDB_API_KEY": "k", "WANDB_MODE": "offline"}, "offline"),
        ({"mode": "online"}, {}, "online"),
        ({}, {"WANDB_MODE": "disabled"}, "disabled"),
    ],
)
def test_mode(cfg, env, mode) -> None:
    assert resolve_mode(cfg, env) == mode


def test_offline_runs_are_grouped_logged_by_step_and_hold_no_secret(tmp_path, monkeypatch) -> None:
    for key, value in SENTINELS.items():
        monkeypatch.setenv(key, value)
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(
        "".join(json.dumps({"step": s, "reward": 0.1 * s, "loss": 0.5}) + "\n" for s in (1, 2, 3))
    )
    scores = pd.DataFrame(
        [
            {"run": "base", "step": 0, "task": "addition", "domain": "math", "score": 0.1, "pass_at_k": 0.2},
            {"run": "grpo", "step": 3, "task": "addition", "domain": "math", "score": 0.3, "pass_at_k": 0.4},
        ]
    )
    scores.to_csv(tmp_path / "scores.csv", index=False)
    manifest = tmp_path / "exp" / "wandb" / "runs.json"
    for _ in range(2):  # logging twice keeps one copy per run id
        out = log_experiment(
            experiment="exp",
            runs={"grpo": {"method": "grpo", "seed": 0}},
            base_of={"grpo": "base"},
            metrics={"grpo": str(metrics)},
            scores_csv=str(tmp_path / "scores.csv"),
            colors={"grpo": "#ff7f0e"},
            cfg={"mode": "offline", "project": "p"},
            results_dir=str(tmp_path / "exp"),
            manifest=str(manifest),
        )
    assert out["mode"] == "offline" and out["group"] == "exp" and out["project"] == "p"
    assert out["runs"]["grpo"]["train"]["steps"] == 3 and out["runs"]["grpo"]["eval"]["steps"] == 2
    assert out["runs"]["grpo"]["train"]["id"] == run_id("exp", "grpo", "train")
    dirs = sorted(p.name for p in (tmp_path / "exp" / "wandb").glob("offline-run-*"))
    # offline-run-<timestamp>-<id>: the timestamps may differ by a second, so match ids, not order
    assert len(dirs) == 2
    assert {d.split("-", 3)[3] for d in dirs} == {run_id("exp", "grpo", kind) for kind in ("train", "eval")}
    assert out["sync_command"].startswith("wandb sync --include-offline")
    for path in (tmp_path / "exp").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in SENTINELS.values():
                assert value.encode() not in data, f"{value} leaked into {path}"


def test_a_failing_wandb_is_recorded_not_fatal(tmp_path, monkeypatch) -> None:
    # online with a key W&B rejects locally (too short): each run is recorded as not written
    monkeypatch.setenv("WANDB_API_KEY", SENTINELS["WANDB_API_KEY"])
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # never the real service
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(json.dumps({"step": 1, "reward": 0.5}) + "\n")
    pd.DataFrame(
        [{"run": "base", "step": 0, "task": "t", "domain": "d", "score": 0.1, "pass_at_k": 0.2}]
    ).to_csv(tmp_path / "scores.csv", index=False)
    manifest = tmp_path / "exp" / "wandb" / "runs.json"
    out = log_experiment(
        experiment="exp",
        runs={"grpo": {"method": "grpo"}},
        base_of={"grpo": "base"},
        metrics={"grpo": str(metrics)},
        scores_csv=str(tmp_path / "scores.csv"),
        colors={"grpo": "#000000"},
        cfg={"mode": "online"},
        results_dir=str(tmp_path / "exp"),
        manifest=str(manifest),
    )
    assert out["mode"] == "online"
    for job in ("train", "eval"):
        assert out["runs"]["grpo"][job]["error"] and out["runs"]["grpo"][job]["url"] is None
    assert SENTINELS["WANDB_API_KEY"].encode() not in manifest.read_bytes()
