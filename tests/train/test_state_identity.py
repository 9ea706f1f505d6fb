"""A training job resumes only from state its own run spec and inputs made (rlpipe.train.checkpoints)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rlpipe.train.checkpoints import (
    IDENTITY_FILE,
    claim_state_dir,
    live_metrics,
    publish_metrics,
    state_identity,
)


def setup(tmp_path: Path) -> tuple[dict, dict[str, str], Path]:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "model.safetensors").write_bytes(b"weights")
    train = tmp_path / "train.jsonl"
    train.write_text('{"id": 1}\n')
    run = {"name": "grpo", "steps": 6, "grpo": {"learning_rate": 3e-4}}
    return run, {"policy": str(policy), "train": str(train), "validation": None}, tmp_path / "state"


def fill(state: Path) -> None:
    (state / "checkpoint-3").mkdir(parents=True)
    (state / "checkpoint-3" / "trainer_state.json").write_text("{}")


def test_same_spec_and_inputs_keep_the_state(tmp_path):
    run, inputs, state = setup(tmp_path)
    assert claim_state_dir(state, state_identity(run, inputs)) is False  # fresh
    fill(state)
    assert claim_state_dir(state, state_identity(run, inputs)) is True
    assert (state / "checkpoint-3" / "trainer_state.json").exists()


def test_a_changed_hyperparameter_clears_the_state(tmp_path, caplog):
    run, inputs, state = setup(tmp_path)
    claim_state_dir(state, state_identity(run, inputs))
    fill(state)
    changed = {**run, "grpo": {"learning_rate": 1e-4}}
    assert claim_state_dir(state, state_identity(changed, inputs)) is False
    assert not (state / "checkpoint-3").exists()
    assert json.loads((state / IDENTITY_FILE).read_text())["run"] == changed
    assert "different run" in caplog.text


def test_a_rewritten_input_clears_the_state(tmp_path, caplog):
    run, inputs, state = setup(tmp_path)
    claim_state_dir(state, state_identity(run, inputs))
    fill(state)
    weights = Path(inputs["policy"]) / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a new warm-up
    assert claim_state_dir(state, state_identity(run, inputs)) is False
    assert not (state / "checkpoint-3").exists()
    assert "different inputs" in caplog.text


def test_state_without_a_recorded_identity_is_not_resumed(tmp_path):
    run, inputs, state = setup(tmp_path)
    fill(state)  # e.g. left by an older rlpipe
    assert claim_state_dir(state, state_identity(run, inputs)) is False
    assert not (state / "checkpoint-3").exists()


def test_metrics_are_published_whole_and_only_by_the_main_process(tmp_path, monkeypatch):
    state, out = tmp_path / "state", tmp_path / "run" / "metrics.jsonl"
    state.mkdir()
    live_metrics(state).write_text('{"step": 1}\n{"step": 2}\n')
    monkeypatch.setenv("RANK", "1")
    publish_metrics(state, out)
    assert not out.exists()
    monkeypatch.setenv("RANK", "0")
    publish_metrics(state, out)
    assert out.read_text() == '{"step": 1}\n{"step": 2}\n'
    assert [p.name for p in out.parent.iterdir()] == ["metrics.jsonl"]  # no temp file left


def test_trim_drops_the_lines_past_the_resumed_step(tmp_path):
    from rlpipe.train.checkpoints import trim_metrics

    live = tmp_path / "state" / "metrics.jsonl"
    live.parent.mkdir()
    live.write_text("".join(json.dumps({"step": s}) + "\n" for s in (1, 2, 3, 4, 5)) + "\n")
    trim_metrics(live, 3)  # a crash after step 5, the last checkpoint at step 3
    assert [json.loads(x)["step"] for x in live.read_text().splitlines()] == [1, 2, 3]
    assert [p.name for p in live.parent.iterdir()] == ["metrics.jsonl"]  # no temp file left
    trim_metrics(tmp_path / "fresh" / "metrics.jsonl", 0)  # nothing yet: nothing to trim
