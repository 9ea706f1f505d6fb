"""PCGrad in PPO projects the per-domain *policy* gradients only; the critic gets their plain sum.

Issue 12 (item 5): PPO used to project one flat vector of policy and critic parameters, so a
conflict between the domains' critic gradients changed the policy's update. Here one minibatch
gradient of a sampled rollout (three domains, one minibatch, clipping off) is compared with
references computed from the per-domain losses with ``torch.autograd.grad``: the policy's
``.grad`` is the projection of the per-domain policy gradients alone (with ``critic: shared`` the
policy group is the whole policy model, so the value loss's share on the shared backbone is part
of each domain's projected gradient), the critic's ``.grad`` the sum of its per-domain gradients.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import torch
from three_domains import three_domain_rows

from rlpipe.train.methods import build_spec
from rlpipe.train.methods.ppo import PPOSettings
from rlpipe.train.pcgrad import flatten_grads, project_conflicting
from rlpipe.train.ppo import PPOTrainer


def _run(**ppo: Any) -> dict[str, Any]:
    hp = {
        **PPOSettings().as_dict(),
        "rollout_batch_size": 4,
        "samples_per_prompt": 2,
        "minibatch_size": 8,  # one minibatch
        "max_new_tokens": 6,
        "max_grad_norm": 1e6,  # no clipping
        "entropy_coef": 0.01,
        **ppo,
    }
    run = {"name": "pc", "seed": 0, "steps": 1, "save_every": 1, "method": "ppo", "lora": None}
    return {**run, "pcgrad": True, "ppo": hp}


def _flat(params: list[torch.nn.Parameter], grads: tuple[torch.Tensor | None, ...]) -> torch.Tensor:
    pieces = [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, params, strict=True)]
    return torch.cat([g.reshape(-1) for g in pieces])


def _generator(state: torch.Tensor) -> torch.Generator:
    gen = torch.Generator()
    gen.set_state(state)
    return gen


@pytest.mark.parametrize(
    "ppo",
    [
        pytest.param({"critic": "separate"}, id="separate-critic"),
        pytest.param({"critic": "shared"}, id="shared-critic"),
        pytest.param({"critic": "separate", "pcgrad_critic": "project"}, id="separate-critic-projected"),
    ],
)
def test_pcgrad_projects_policy_gradients_and_sums_critic_gradients(model_dir, tmp_path: Path, ppo):
    trainer = PPOTrainer(
        model_dir,
        three_domain_rows(),
        spec=build_spec(_run(**ppo)),
        checkpoints_dir=tmp_path / "ck",
        state_dir=tmp_path / "st",
        metrics_path=tmp_path / "m.jsonl",
    )
    # a trained-looking value head: the zero-initialised one would send the backbone no gradient
    head = trainer.value_head if ppo["critic"] == "shared" else trainer.critic.head
    with torch.no_grad():
        head.proj.weight.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(1))
    ro = trainer.prepare(trainer.sample(three_domain_rows()))
    assert len(set(ro.domains)) == 3 and float(ro.scores.std()) > 0
    # the domains disagree about the values (returns +1 for math, -1 otherwise): the critic's
    # per-domain gradients conflict, as the critic parts 5 and -2 do
    sign = torch.tensor([1.0 if d == "math" else -1.0 for d in ro.domains])
    ro.returns = sign[:, None] * ro.mask
    trainer.policy.train()
    trainer.critic.train()
    idx = torch.arange(len(ro))
    policy, critic = trainer.param_groups["policy"], trainer.param_groups["critic"]
    if ppo["critic"] == "shared":  # the value head only; the backbone is the policy's ...
        assert {id(p) for p in critic} == {id(p) for p in trainer.value_head.parameters()}
        # ... and the value loss reaches it: its share is part of each domain's projected gradient
        _, _, values = trainer._forward(ro, idx)
        reach = torch.autograd.grad(values.sum(), policy, allow_unused=True)
        assert any(g is not None and float(g.abs().max()) > 0 for g in reach)

    # references: each domain's share of the minibatch loss, differentiated on its own
    losses, _ = trainer.losses(ro, idx)
    domains = sorted(losses)
    assert domains == ["logic", "math", "simulation"]
    pol: dict[str, torch.Tensor] = {}
    cri: dict[str, torch.Tensor] = {}
    for d in domains:
        grads = torch.autograd.grad(losses[d], policy + critic, retain_graph=True, allow_unused=True)
        pol[d] = _flat(policy, grads[: len(policy)])
        cri[d] = _flat(critic, grads[len(policy) :])
    state = trainer.pcgrad_gen.get_state()
    want_policy, want_stats = project_conflicting([pol[d] for d in domains], _generator(state))
    if ppo.get("pcgrad_critic") == "project":
        want_critic, _ = project_conflicting([cri[d] for d in domains], _generator(state))
    else:
        want_critic = sum(cri[d] for d in domains)
    # the old joint projection of [policy | critic]: the critic changes the policy's update
    joint, _ = project_conflicting([torch.cat([pol[d], cri[d]]) for d in domains], _generator(state))
    joint_policy = joint[: want_policy.numel()]
    assert float(cri["math"] @ cri["logic"]) < 0  # precondition (seeded): the critic conflicts
    assert (joint_policy - want_policy).norm() > 1e-3 * want_policy.norm()

    sums: dict[str, list[float]] = defaultdict(list)
    trainer._minibatch_gradient(ro, idx, sums)
    got_policy, got_critic = flatten_grads(policy), flatten_grads(critic)
    assert float(want_policy.abs().max()) > 0 and float(want_critic.abs().max()) > 0
    torch.testing.assert_close(got_policy, want_policy, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(got_critic, want_critic, rtol=1e-4, atol=1e-7)
    assert not torch.allclose(got_policy, joint_policy, rtol=1e-4, atol=1e-7)

    # the logged PCGrad statistics are the policy's projection
    assert sums["pcgrad/projections"] == [float(want_stats.num_projections)]
    for i, d in enumerate(domains):
        assert sums[f"pcgrad/grad_norm/{d}"][0] == pytest.approx(float(pol[d].norm()), rel=1e-4)
        for j in range(i + 1, len(domains)):
            cos = float(want_stats.cosine[i, j])
            assert sums[f"pcgrad/cos/{d}__{domains[j]}"][0] == pytest.approx(cos, rel=1e-4, abs=1e-6)


def test_pcgrad_critic_must_be_sum_or_project(model_dir, tmp_path: Path):
    with pytest.raises(ValueError, match="pcgrad_critic"):
        PPOTrainer(
            model_dir,
            three_domain_rows(),
            spec=build_spec(_run(pcgrad_critic="mean")),
            checkpoints_dir=tmp_path / "ck",
            state_dir=tmp_path / "st",
            metrics_path=tmp_path / "m.jsonl",
        )
