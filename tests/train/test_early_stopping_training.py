"""Early stopping wired into GRPO (TRL) and PPO: validation scoring, stop step, checkpoints, resume.

A tiny random Qwen2 and a dense toy reward (share of digits in the answer). ``min_delta: 1.0``
makes every evaluation after the first a bad one (rewards lie in [0, 1]), so the stop step is
known: with ``patience: 1`` and ``eval_every: 2`` the run stops at step 4, or at the first
evaluation at or after ``min_steps``. The best step is then the first evaluation, step 2 -- a run
that resumed without its stopper's state would call its first evaluation after the resume best.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from rlpipe.data.tasks import generate
from rlpipe.models import load_policy
from rlpipe.rewards.registry import SCORERS
from rlpipe.runtime import init_job
from rlpipe.train.checkpoints import latest_trainer_checkpoint
from rlpipe.train.methods import build_spec
from rlpipe.train.methods.ppo import PPOSettings
from rlpipe.train.schedule import EARLY_STOPPING_DEFAULTS
from rlpipe.train.signals import TrainingInterrupted
from rlpipe.train.validation import greedy_validation_reward

SCORER = "test_digit_share"


def toy(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["scorer"] = SCORER
    return rows


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return toy(generate("addition", "train", 12, 0) + generate("sorting", "train", 12, 0))


@pytest.fixture(scope="module")
def validation() -> list[dict[str, Any]]:
    return toy(generate("addition", "validation", 6, 0) + generate("sorting", "validation", 6, 0))


def early(**changes: Any) -> dict[str, Any]:
    return {**EARLY_STOPPING_DEFAULTS, "patience": 1, "min_delta": 1.0, "eval_every": 2, **changes}


def dirs(root: Path) -> dict[str, str]:
    return {
        "checkpoints_dir": str(root / "checkpoints"),
        "state_dir": str(root / "state"),
        "metrics_path": str(root / "metrics.jsonl"),
    }


def lines(path: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


def published(out: dict[str, str]) -> list[str]:
    return sorted(p.name for p in Path(out["checkpoints_dir"]).iterdir())


def test_greedy_validation_is_deterministic_per_domain_and_leaves_training_state_alone(model_dir, validation):
    model, tokenizer = load_policy(model_dir)
    model.train()
    rng = torch.get_rng_state()
    first = greedy_validation_reward(model, tokenizer, validation, max_new_tokens=6, batch_size=5)
    assert torch.equal(torch.get_rng_state(), rng)  # draws nothing: training's random stream is untouched
    assert model.training
    assert set(first) == {"validation_reward", "validation_reward/math", "validation_reward/logic"}
    assert first["validation_reward"] == pytest.approx(
        (first["validation_reward/math"] + first["validation_reward/logic"]) / 2
    )
    torch.manual_seed(123)  # another seed, another batching: the same greedy answers
    assert greedy_validation_reward(model, tokenizer, validation, max_new_tokens=6, batch_size=64) == first
    # the number is the toy reward of greedy answers decoded one by one
    model.eval()
    row = validation[0]
    ids = tokenizer.apply_chat_template(
        row["prompt"], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**ids, do_sample=False, max_new_tokens=6, eos_token_id=tokenizer.eos_token_id)
    text = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    single = greedy_validation_reward(model, tokenizer, [row], max_new_tokens=6)
    assert single["validation_reward"] == pytest.approx(SCORERS[SCORER](text, row["ground_truth"]))


def ppo_run(**changes: Any) -> dict[str, Any]:
    ppo = {
        **PPOSettings().as_dict(),
        "rollout_batch_size": 4,
        "samples_per_prompt": 2,
        "minibatch_size": 8,
        "max_new_tokens": 6,
        "learning_rate": 3e-3,
        "critic": "shared",
        "kl_coef": 0.0,
    }
    return {
        "name": "ppo-es",
        "seed": 0,
        "steps": 10,
        "save_every": 5,
        "method": "ppo",
        "lora": None,
        "ppo": ppo,
        **changes,
    }


def test_ppo_stops_early_with_a_checkpoint_at_every_evaluation(model_dir, rows, validation, tmp_path):
    from rlpipe.train.ppo import train_ppo

    out = dirs(tmp_path)
    run = ppo_run(early_stopping=early())
    init_job(1, 0)
    train_ppo(model_dir, rows, spec=build_spec(run), validation_rows=validation, **out)
    got = lines(out["metrics_path"])
    assert [m["step"] for m in got] == [1, 2, 3, 4]  # stopped at 4 of 10
    assert [m["step"] for m in got if "validation_reward" in m] == [2, 4]  # in the step's own row
    assert all("reward" in m for m in got)
    assert published(out) == ["step_2", "step_4"]  # every evaluation; step 5 never came
    state = json.loads((latest_trainer_checkpoint(out["state_dir"]) / "trainer_state.json").read_text())
    assert state["early_stopping"]["best_step"] == 2 and state["early_stopping"]["last_decision"]["stop"]
    # a rerun of the stopped run (e.g. after its outputs were lost) does not train on
    init_job(1, 0)
    train_ppo(model_dir, rows, spec=build_spec(run), validation_rows=validation, **out)
    assert [m["step"] for m in lines(out["metrics_path"])] == [1, 2, 3, 4]


def test_min_epochs_holds_the_stop_back(model_dir, rows, validation, tmp_path):
    from rlpipe.train.ppo import train_ppo

    out = dirs(tmp_path)
    # 1.25 epochs of 24 rows at 4 prompts per step = 7.5 -> no stop before step 8 (evaluations at 2, 4, 6, 8)
    run = ppo_run(early_stopping=early(min_epochs=1.25))
    init_job(1, 0)
    train_ppo(model_dir, rows, spec=build_spec(run), validation_rows=validation, **out)
    got = lines(out["metrics_path"])
    assert got[-1]["step"] == 8
    assert [m["early_stopping/bad_evals"] for m in got if "validation_reward" in m] == [0, 1, 2, 3]
    assert published(out) == ["step_2", "step_4", "step_5", "step_6", "step_8"]


def test_ppo_resume_restores_the_stopper(model_dir, rows, validation, tmp_path, monkeypatch):
    from rlpipe.train.ppo import PPOTrainer, train_ppo

    run = ppo_run(early_stopping=early(min_steps=6))  # evaluations 2, 4, 6: stop at 6, best step 2
    straight = dirs(tmp_path / "straight")
    init_job(1, 0)
    train_ppo(model_dir, rows, spec=build_spec(run), validation_rows=validation, **straight)

    interrupted = dirs(tmp_path / "interrupted")
    update = PPOTrainer.update

    def update_then_signal(self: PPOTrainer, ro: Any) -> dict[str, float]:
        if self.step == 2:  # during step 3: after the first evaluation, before the stop
            os.kill(os.getpid(), signal.SIGTERM)
        return update(self, ro)

    monkeypatch.setattr(PPOTrainer, "update", update_then_signal)
    init_job(1, 0)
    with pytest.raises(TrainingInterrupted) as info:
        train_ppo(model_dir, rows, spec=build_spec(run), validation_rows=validation, **interrupted)
    assert info.value.step == 3
    monkeypatch.undo()
    init_job(1, 0)
    train_ppo(model_dir, rows, spec=build_spec(run), validation_rows=validation, **interrupted)

    a, b = lines(straight["metrics_path"]), lines(interrupted["metrics_path"])
    keys = ("step", "reward", "validation_reward", "early_stopping/best_step", "early_stopping/bad_evals")
    assert [[m.get(k) for k in keys] for m in b] == [[m.get(k) for k in keys] for m in a]
    assert b[-1]["step"] == 6 and b[-1]["early_stopping/best_step"] == 2
    assert published(interrupted) == published(straight) == ["step_2", "step_4", "step_5", "step_6"]


def grpo_run(**changes: Any) -> dict[str, Any]:
    grpo = {
        "num_generations": 2,
        "per_device_train_batch_size": 4,
        "max_completion_length": 6,
        "learning_rate": 1e-3,
    }
    return {
        "name": "grpo-es",
        "seed": 0,
        "steps": 8,
        "save_every": 8,
        "method": "grpo",
        "lora": None,
        "grpo": grpo,
        **changes,
    }


def test_grpo_stops_early_and_resumes_with_its_stopper(model_dir, rows, validation, tmp_path, monkeypatch):
    from transformers import TrainerCallback

    from rlpipe.train.grpo import train_grpo

    run = grpo_run(early_stopping=early(min_steps=6))  # evaluations 2, 4, 6: stop at 6, best step 2
    straight = dirs(tmp_path / "straight")
    init_job(1, 0)
    train_grpo(model_dir, rows, spec=build_spec(run), validation_rows=validation, **straight)
    a = lines(straight["metrics_path"])
    assert [m["step"] for m in a if "reward" in m] == [1, 2, 3, 4, 5, 6]
    assert [m["step"] for m in a if "validation_reward" in m] == [2, 4, 6]  # in TRL's own step rows
    assert all("reward" in m for m in a if "validation_reward" in m)
    assert published(straight) == ["step_2", "step_4", "step_6"]

    class SignalAtStep(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 2:  # during step 3
                os.kill(os.getpid(), signal.SIGUSR1)

    interrupted = dirs(tmp_path / "interrupted")
    monkeypatch.setattr("rlpipe.train.callbacks.ProgressCallback", lambda what: SignalAtStep())
    init_job(1, 0)
    with pytest.raises(TrainingInterrupted) as info:
        train_grpo(model_dir, rows, spec=build_spec(run), validation_rows=validation, **interrupted)
    monkeypatch.undo()
    assert info.value.step == 3 and published(interrupted) == ["step_2"]
    init_job(1, 0)
    train_grpo(model_dir, rows, spec=build_spec(run), validation_rows=validation, **interrupted)
    b = lines(interrupted["metrics_path"])
    keys = ("step", "validation_reward", "early_stopping/best_step", "early_stopping/bad_evals")
    assert [[m.get(k) for k in keys] for m in b if "reward" in m] == [
        [m.get(k) for k in keys] for m in a if "reward" in m
    ]
    assert published(interrupted) == ["step_2", "step_4", "step_6"]
    # the stopped run, rerun, stays stopped
    init_job(1, 0)
    train_grpo(model_dir, rows, spec=build_spec(run), validation_rows=validation, **interrupted)
    assert [m["step"] for m in lines(interrupted["metrics_path"]) if "reward" in m] == [1, 2, 3, 4, 5, 6]
