"""PPO with a learned critic on a tiny Qwen2: training, checkpoints, metrics, critic, PCGrad, config."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from rlpipe.config import ConfigError, load_experiment
from rlpipe.data.tasks import generate
from rlpipe.train.checkpoints import finish_state, finished_step, trainer_checkpoints
from rlpipe.train.methods import build_spec
from rlpipe.train.methods.ppo import PPOSettings
from rlpipe.train.ppo import PPOTrainer, train_ppo

ROOT = Path(__file__).resolve().parents[2]
# A dense toy reward the random tiny model can earn from the start (the real scorers give it 0).
SCORER = "test_digit_share"

REQUIRED = [
    "step",
    "time_s",
    "run",
    "reward",
    "reward_std",
    "reward/math",
    "reward/logic",
    "frac_reward_zero_std",
    "value_loss",
    "policy_loss",
    "explained_variance",
    "kl",
    "kl_coef",
    "entropy",
    "advantages/mean",
    "advantages/std",
    "clip_ratio",
    "grad_norm",
    "completions/mean_length",
    "completions/clipped_ratio",
    "tokens_per_s",
    "learning_rate",
]


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    out = generate("addition", "train", 12, 0) + generate("sorting", "train", 12, 0)
    for row in out:
        row["scorer"] = SCORER
    return out


def ppo_run(steps: int = 3, save_every: int = 2, **changes: Any) -> dict[str, Any]:
    ppo = {
        **PPOSettings().as_dict(),
        "rollout_batch_size": 8,
        "samples_per_prompt": 4,
        "minibatch_size": 16,
        "ppo_epochs": 2,
        "max_new_tokens": 8,
        "learning_rate": 3e-3,
        "critic_learning_rate": 1e-2,
        **changes.pop("ppo", {}),
    }
    run = {"name": "ppo-test", "seed": 0, "steps": steps, "save_every": save_every, "method": "ppo"}
    return {**run, "lora": None, "pcgrad": False, "ppo": ppo, **changes}


def dirs(tmp_path: Path) -> dict[str, Path]:
    return {
        "checkpoints_dir": tmp_path / "checkpoints",
        "state_dir": tmp_path / "state",
        "metrics_path": tmp_path / "metrics.jsonl",
    }


def metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_ppo_trains_checkpoints_and_logs(model_dir, rows, tmp_path):
    from transformers import AutoModelForCausalLM

    out = dirs(tmp_path)
    train_ppo(model_dir, rows, spec=build_spec(ppo_run()), **out)
    lines = metrics(out["metrics_path"])
    assert [m["step"] for m in lines] == [1, 2, 3]
    for m in lines:
        missing = [k for k in REQUIRED if k not in m]
        assert not missing, f"metrics lack {missing}"
        assert all(math.isfinite(v) for v in m.values() if isinstance(v, float))
    assert lines[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # the policy starts as the reference
    assert lines[-1]["kl"] > 0
    assert sorted(p.name for p in out["checkpoints_dir"].iterdir()) == ["step_2", "step_3"]
    model = AutoModelForCausalLM.from_pretrained(out["checkpoints_dir"] / "step_3")
    assert sum(p.numel() for p in model.parameters()) > 0
    assert not (out["checkpoints_dir"] / "step_3" / "critic").exists()  # evaluation gets the policy only
    ckpts = trainer_checkpoints(out["state_dir"])
    assert list(ckpts) == [3]
    state = json.loads((ckpts[3] / "trainer_state.json").read_text())
    # 32 samples / minibatch 16 = 2 minibatches, 2 epochs, 3 steps
    assert state["optimizer_steps"] == 12 and state["global_step"] == 3
    assert {"optimizer.pt", "rng_state.pth"} <= {p.name for p in ckpts[3].iterdir()}
    # Rerunning a finished run changes nothing.
    train_ppo(model_dir, rows, spec=build_spec(ppo_run()), **out)
    assert len(metrics(out["metrics_path"])) == 3
    # The workflow then drops the resumable state; a rerun (outputs deleted) only republishes.
    finish_state(out["state_dir"])
    assert finished_step(out["state_dir"]) == 3 and not trainer_checkpoints(out["state_dir"])
    published = {p.name: (p / "model.safetensors").read_bytes() for p in out["checkpoints_dir"].iterdir()}
    shutil.rmtree(out["checkpoints_dir"])
    out["metrics_path"].unlink()
    train_ppo(model_dir, rows, spec=build_spec(ppo_run()), **out)
    assert {
        p.name: (p / "model.safetensors").read_bytes() for p in out["checkpoints_dir"].iterdir()
    } == published
    assert [m["step"] for m in metrics(out["metrics_path"])] == [1, 2, 3]


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param(
            {
                "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
                "ppo": {
                    "critic": "shared",
                    "kl_mode": "loss",
                    "kl_estimator": "k3",
                    "kl_coef": 0.1,
                    "kl_target": 0.01,
                    "kl_horizon": 100,
                },
            },
            id="lora-shared-critic-adaptive-kl-loss",
        ),
        pytest.param({"pcgrad": True, "ppo": {"critic": "shared"}}, id="pcgrad-shared-critic"),
        pytest.param({"lora": {"r": 4, "alpha": 8}, "pcgrad": True}, id="pcgrad-lora-separate-critic"),
    ],
)
def test_ppo_variants(model_dir, rows, tmp_path, changes):
    out = dirs(tmp_path)
    run = ppo_run(steps=2, save_every=2, **copy.deepcopy(changes))
    train_ppo(model_dir, rows, spec=build_spec(run), **out)
    lines = metrics(out["metrics_path"])
    assert len(lines) == 2
    for m in lines:
        assert math.isfinite(m["policy_loss"]) and math.isfinite(m["value_loss"])
    exported = {p.name for p in (out["checkpoints_dir"] / "step_2").iterdir()}
    if run["lora"]:
        assert "adapter_config.json" in exported and "model.safetensors" not in exported
    if run["pcgrad"]:
        assert all("pcgrad/cos/logic__math" in m and "pcgrad/projections" in m for m in lines)
    if run["ppo"]["kl_target"] is not None:
        assert lines[-1]["kl_coef"] != run["ppo"]["kl_coef"]  # the adaptive controller moved


def test_value_loss_falls_on_a_fixed_batch(model_dir, rows, tmp_path):
    run = ppo_run(ppo={"learning_rate": 0.0, "critic_learning_rate": 3e-3, "value_clip": None})
    trainer = PPOTrainer(model_dir, rows, spec=build_spec(run), **dirs(tmp_path))
    ro = trainer.rollout(trainer.next_rows())
    assert float(ro.scores.std()) > 0  # the toy reward varies, so there is something to fit
    losses = [trainer.update(ro)["value_loss"] for _ in range(12)]
    assert losses[-1] < 0.5 * losses[0], losses


def test_pcgrad_domain_shares_sum_to_the_plain_loss(model_dir, rows, tmp_path):
    """Without a conflict PCGrad must reproduce the plain update: the domain losses add up to it."""
    trainer = PPOTrainer(model_dir, rows, spec=build_spec(ppo_run(pcgrad=True)), **dirs(tmp_path))
    ro = trainer.rollout(trainer.next_rows())
    idx = torch.arange(len(ro))
    shares, _ = trainer.losses(ro, idx)
    assert set(shares) == {"logic", "math"}
    trainer.pcgrad = False
    plain, _ = trainer.losses(ro, idx)
    torch.testing.assert_close(sum(shares.values()), plain["all"], rtol=1e-5, atol=1e-6)


def test_lora_target_that_matches_nothing_is_refused_at_train_start(model_dir, rows, tmp_path):
    run = ppo_run(lora={"r": 4, "alpha": 8, "target_modules": ["c_attn"]})
    with pytest.raises(ValueError, match=r"c_attn.*matches no layer.*q_proj"):
        PPOTrainer(model_dir, rows, spec=build_spec(run), **dirs(tmp_path))


DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def experiment(*runs: dict[str, Any], tasks: dict[str, int] | None = None) -> dict[str, Any]:
    config = copy.deepcopy(DEFAULT)
    config["runs"] = [{"name": "grpo"}, *runs]
    config["baseline"] = "grpo"
    if tasks is not None:
        config["data"]["tasks"] = tasks
    return config


def test_config_ppo_run_gets_defaults_and_grpo_runs_are_untouched():
    exp = load_experiment(
        experiment({"name": "ppo", "method": "ppo", "ppo": {"critic": "shared"}}), ["x.yaml"]
    )
    assert exp.runs["ppo"]["ppo"] == {**PPOSettings().as_dict(), "critic": "shared"}
    assert "ppo" not in exp.runs["grpo"] and "pcgrad" not in exp.runs["grpo"]  # no rerun of old runs


@pytest.mark.parametrize(
    ("run", "tasks", "message"),
    [
        (
            {"method": "ppo", "ppo": {"rollout_batch_size": 6, "samples_per_prompt": 2, "minibatch_size": 8}},
            None,
            r"ppo.minibatch_size \(8\) must divide .* \(6 \* 2 = 12\)",
        ),
        ({"method": "ppo", "pcgrad": True}, {"addition": 100}, r"pcgrad: true needs tasks of at least two"),
        ({"pcgrad": True}, {"addition": 100, "program": 50}, None),  # math + simulation: fine
        ({"method": "ppo", "ppo": {"kl_mode": "loss"}}, None, r"k1 as a loss term"),
        (
            {"method": "ppo", "ppo": {"kl_coef": 0.0, "kl_target": 0.1}},
            None,
            r"kl_target needs ppo.kl_coef > 0",
        ),
        ({"method": "ppo", "ppo": {"critic": "both"}}, None, r"runs\[1\]"),
    ],
)
def test_config_refusals(run, tasks, message):
    config = experiment({"name": "x", **run}, tasks=tasks)
    if message is None:
        load_experiment(config, ["x.yaml"])
        return
    with pytest.raises(ConfigError, match=message):
        load_experiment(config, ["x.yaml"])
