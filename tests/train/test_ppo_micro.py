"""PPO micro-batches (gradient accumulation) and gradient checkpointing change memory, not the update.

One PPO update of a fixed rollout (8 sequences, one minibatch of 8, so one optimizer step) is run
with the whole minibatch in one forward/backward and with micro-batches of 4 and 2; the completions
have different lengths, so the micro-batches carry different numbers of tokens and a plain average of
micro-batch means would be a different gradient. Gradients are compared before the optimizer step
(clipping is off): Adam's first step is about ``lr * sign(g)`` and would hide a wrong scale. With
PCGrad the rollout has three domains, a micro-batch of 2 lacks at least one of them, and the
projection must act on each domain's gradient over the whole minibatch.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from three_domains import three_domain_rows

from rlpipe.config import ConfigError, load_experiment
from rlpipe.train.methods import build_spec
from rlpipe.train.methods.ppo import PPOSettings
from rlpipe.train.ppo import PPOTrainer, Rollout

ROOT = Path(__file__).resolve().parents[2]


def _run(**changes: Any) -> dict[str, Any]:
    ppo = {
        **PPOSettings().as_dict(),
        "rollout_batch_size": 4,
        "samples_per_prompt": 2,
        "minibatch_size": 8,  # one minibatch: the update is one optimizer step
        "ppo_epochs": 1,
        "max_new_tokens": 6,
        "learning_rate": 1e-3,
        "critic_learning_rate": 1e-2,
        "max_grad_norm": 1e6,  # no clipping: the gradients are compared as computed
        "entropy_coef": 0.01,
        **changes.pop("ppo", {}),
    }
    run = {"name": "micro", "seed": 0, "steps": 1, "save_every": 1, "method": "ppo", "lora": None}
    return {**run, "pcgrad": False, "ppo": ppo, **changes}


@pytest.fixture(scope="module")
def sampled(model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Rollout:
    """One fixed rollout for every variant; three completions cut short so token counts differ."""
    torch.manual_seed(0)
    trainer = PPOTrainer(
        model_dir, three_domain_rows(), spec=build_spec(_run()), **_dirs(tmp_path_factory.mktemp("sample"))
    )
    ro = trainer.sample(three_domain_rows())
    for row, keep in ((1, 1), (4, 2), (6, 3)):
        ro.mask[row, keep:] = 0
        ro.attention_mask[row, ro.prompt_len + keep :] = 0
    assert len(set(ro.mask.sum(dim=1).tolist())) > 2
    assert float(ro.scores.std()) > 0
    return ro


def _dirs(root: Path) -> dict[str, Path]:
    return {"checkpoints_dir": root / "ck", "state_dir": root / "st", "metrics_path": root / "m.jsonl"}


def _update(model_dir: str, ro: Rollout, root: Path, **changes: Any) -> dict[str, Any]:
    """Gradients (before the step), parameters (after it) and statistics of one update of ``ro``."""
    torch.manual_seed(0)  # the same LoRA initialisation and the same minibatch order for every variant
    trainer = PPOTrainer(
        model_dir, three_domain_rows(), spec=build_spec(_run(**copy.deepcopy(changes))), **_dirs(root)
    )
    params = trainer.param_groups["policy"] + trainer.param_groups["critic"]
    grads: list[torch.Tensor] = []
    step = trainer.optimizer.step

    def record_then_step(*args: Any, **kwargs: Any) -> Any:
        grads.append(torch.cat([p.grad.detach().reshape(-1).clone() for p in params]))
        return step(*args, **kwargs)

    trainer.optimizer.step = record_then_step
    ro = trainer.prepare(copy.deepcopy(ro))
    # runs of the first decoder layer's MLP: recomputed ones count under checkpointing (module hooks
    # do not fire when the backward pass replays a layer, so its forward is counted)
    mlp = next(m for name, m in trainer.policy.named_modules() if name.endswith("layers.0.mlp"))
    calls = [0]
    forward = mlp.forward

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return forward(*args, **kwargs)

    mlp.forward = counted
    torch.manual_seed(1)
    upd = trainer.update(ro)
    del mlp.forward
    assert len(grads) == 1 and trainer.optimizer_steps == 1  # micro-batches: still one step
    return {
        "grad": grads[0],
        "params": torch.cat([p.detach().reshape(-1) for p in params]),
        "upd": upd,
        "trainer": trainer,
        "layer_calls": calls[0],
    }


def _assert_same_update(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert float(want["grad"].abs().max()) > 0
    torch.testing.assert_close(got["grad"], want["grad"], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(got["params"], want["params"], rtol=1e-4, atol=1e-5)
    assert sorted(got["upd"]) == sorted(want["upd"])
    for key, value in want["upd"].items():  # token means over the minibatch, norms, PCGrad stats
        assert got["upd"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


CASES = [
    pytest.param({}, id="separate-critic"),
    # a small value-loss weight: the value gradients of all domains align and would hide the conflicts
    pytest.param(
        {"pcgrad": True, "ppo": {"critic": "shared", "vf_coef": 0.05}}, id="pcgrad-3-domains-shared-critic"
    ),
]


@pytest.mark.parametrize("changes", CASES)
def test_micro_batches_give_the_minibatch_update(model_dir, sampled, tmp_path, changes):
    whole = _update(model_dir, sampled, tmp_path / "whole", **changes)
    if changes.get("pcgrad"):
        assert whole["upd"]["pcgrad/projections"] > 0  # the domains conflict: the projection matters
        assert {k.split("/")[-1] for k in whole["upd"] if k.startswith("pcgrad/grad_norm/")} == {
            "logic",
            "math",
            "simulation",
        }
    for micro in (4, 2):
        ppo = {**changes.get("ppo", {}), "micro_batch_size": micro}
        got = _update(model_dir, sampled, tmp_path / f"micro{micro}", **{**changes, "ppo": ppo})
        assert got["trainer"].micro_batch == micro
        _assert_same_update(got, whole)


def test_micro_batch_losses_carry_their_share_of_the_minibatch_tokens(model_dir, sampled, tmp_path):
    """The micro-batch losses add up to the minibatch loss (token weights, not 1 / micro-batches)."""
    torch.manual_seed(0)
    trainer = PPOTrainer(model_dir, three_domain_rows(), spec=build_spec(_run()), **_dirs(tmp_path))
    ro = trainer.prepare(copy.deepcopy(sampled))
    idx = torch.arange(len(ro))
    whole, _ = trainer.losses(ro, idx)
    tokens = ro.mask.sum()
    parts = [trainer.losses(ro, idx[i : i + 2], minibatch_tokens=tokens)[0]["all"] for i in range(0, 8, 2)]
    torch.testing.assert_close(sum(parts), whole["all"], rtol=1e-5, atol=1e-7)
    # the plain mean of the micro-batch means is another number on this rollout (lengths differ)
    means = [trainer.losses(ro, idx[i : i + 2])[0]["all"] for i in range(0, 8, 2)]
    assert abs(float(sum(means) / 4 - whole["all"].detach())) > 1e-4


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"ppo": {"micro_batch_size": 2}}, id="separate-critic-micro-2"),
        pytest.param(
            {"lora": {"r": 4, "alpha": 8}, "pcgrad": True, "ppo": {"micro_batch_size": 4}},
            id="lora-pcgrad-separate-critic-micro-4",
        ),
    ],
)
def test_gradient_checkpointing_gives_the_same_update(model_dir, sampled, tmp_path, changes):
    off = _update(model_dir, sampled, tmp_path / "off", **changes)
    ppo = {**changes["ppo"], "gradient_checkpointing": True}
    on = _update(model_dir, sampled, tmp_path / "on", **{**changes, "ppo": ppo})
    trainer = on["trainer"]
    assert trainer.policy.is_activation_checkpointing and trainer.critic.backbone.is_activation_checkpointing
    assert not off["trainer"].policy.is_activation_checkpointing
    assert on["layer_calls"] > off["layer_calls"]  # the layers really ran again in the backward pass
    _assert_same_update(on, off)


DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@pytest.mark.parametrize(
    ("ppo", "gpus", "message"),
    [
        (
            {"minibatch_size": 8, "micro_batch_size": 3},
            1,
            r"ppo.micro_batch_size \(3\) must divide .* \(8 / 1\)",
        ),
        (
            {"minibatch_size": 8, "micro_batch_size": 8},
            2,
            r"ppo.micro_batch_size \(8\) must divide .* \(8 / 2\)",
        ),
        ({"minibatch_size": 8, "micro_batch_size": 4}, 2, None),
        ({"minibatch_size": 8, "micro_batch_size": None, "gradient_checkpointing": True}, 1, None),
    ],
)
def test_config_refuses_a_micro_batch_that_does_not_divide_the_per_gpu_minibatch(ppo, gpus, message):
    config = copy.deepcopy(DEFAULT)
    config["runs"] = [
        {"name": "grpo"},
        {"name": "x", "method": "ppo", "ppo": ppo, "resources": {"gpus": gpus}},
    ]
    config["baseline"] = "grpo"
    if message is None:
        exp = load_experiment(config, ["x.yaml"])
        assert exp.runs["x"]["ppo"]["micro_batch_size"] == ppo["micro_batch_size"]
        return
    with pytest.raises(ConfigError, match=r"^x\.yaml: run x: " + message):
        load_experiment(config, ["x.yaml"])
