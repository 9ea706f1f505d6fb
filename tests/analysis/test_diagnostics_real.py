"""Deliberately broken real runs are flagged "flat" with the right cause.

Real TRL GRPO training (rlpipe.train.grpo.train_grpo) of a real tiny Qwen2 for a few steps, then
rlpipe.analysis.diagnostics on the metrics.jsonl the run wrote -- the same path as the workflow's
``diagnose`` rule, which runs right after training.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from rlpipe.analysis.diagnostics import warn_at_run_end
from rlpipe.data.tasks import generate
from rlpipe.train.methods import build_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

# A reward the random tiny model earns in varying amounts (so groups differ and GRPO has signal).
VARIED = "test_digit_share"  # tests/conftest.py


def train(model_dir: str, tmp_path, scorer: str | None, **grpo: Any):
    from rlpipe.train.grpo import train_grpo

    rows = generate("addition", "train", 16, 0) + generate("sorting", "train", 16, 0)
    if scorer:
        for row in rows:
            row["scorer"] = scorer
    hp = {
        "num_generations": 4,
        "per_device_train_batch_size": 8,
        "max_completion_length": 8,
        "beta": 0.0,
        "learning_rate": 1e-3,
        **grpo,
    }
    run = {
        "name": "broken",
        "seed": 0,
        "steps": 6,
        "save_every": 6,
        "method": "grpo",
        "lora": None,
        "grpo": hp,
    }
    metrics = tmp_path / "metrics.jsonl"
    train_grpo(
        model_dir,
        rows,
        spec=build_spec(run),
        checkpoints_dir=tmp_path / "ck",
        state_dir=tmp_path / "st",
        metrics_path=metrics,
    )
    return metrics


def test_learning_rate_zero_run_is_flat_with_the_no_gradient_cause(model_dir, tmp_path, caplog) -> None:
    metrics = train(model_dir, tmp_path, VARIED, learning_rate=0.0)
    with caplog.at_level(logging.WARNING):
        v = warn_at_run_end(metrics, "broken")
    assert v.evidence["n_steps"] == 6
    assert v.evidence["reward_max"] > 0  # the reward did vary: the cause is the learning rate, not the reward
    assert v.verdict == "flat"
    assert any(c.startswith("learning_rate is 0 at every step") for c in v.causes), v.causes
    assert not any("reward always 0" in c for c in v.causes)
    assert "broken: WARNING: flat" in caplog.text


def test_reward_always_zero_run_is_flat_with_the_zero_reward_cause(model_dir, tmp_path) -> None:
    # the real `integer` scorer on an untrained model: never right, every group identical
    metrics = train(model_dir, tmp_path, None)
    v = warn_at_run_end(metrics, "broken")
    assert v.evidence["reward_max"] == 0.0
    assert v.verdict == "flat"
    assert v.causes[0].startswith("reward always 0: no learning signal")
    assert any("every group has identical rewards" in c for c in v.causes)
