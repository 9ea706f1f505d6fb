"""The maths and PCGrad on a CUDA device agree with the CPU (skipped where there is no GPU).

Catches device mismatches (a CPU generator driving CUDA tensors, buffers created on the wrong
device) that CPU-only CI cannot see.
"""

from __future__ import annotations

import pytest
import torch

from rlpipe.train import core_algos as ca
from rlpipe.train.pcgrad import PCGradAccumulator, flatten_grads, pcgrad_backward, project_conflicting

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _batch(device: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    b, t = 4, 9
    mask = torch.ones(b, t)
    mask[0, 6:] = 0  # right padding
    mask[1, :3] = 0  # left padding
    mask[2, 4] = 0  # a gap
    out = {
        "mask": mask,
        "logprob": -torch.rand(b, t, generator=g),
        "old": -torch.rand(b, t, generator=g),
        "ref": -torch.rand(b, t, generator=g),
        "values": torch.randn(b, t, generator=g),
        "scores": torch.tensor([1.0, 0.0, 0.5, 1.0]),
        "logits": torch.randn(b, t, 11, generator=g),
    }
    return {k: v.to(device) for k, v in out.items()}


def _pipeline(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    mask = d["mask"]
    rewards = ca.place_terminal_reward(d["scores"], mask)
    kl = ca.kl_penalty(d["logprob"], d["ref"], "k3")
    rewards = ca.kl_reward_shaping(rewards, kl, 0.05, mask)
    adv, ret = ca.compute_gae(rewards, d["values"], mask, 1.0, 0.95)
    adv = ca.masked_whiten(adv, mask)
    pl, pcf, akl = ca.ppo_policy_loss(d["logprob"], d["old"], adv, mask, 0.2, 0.28)
    vl, vcf = ca.ppo_value_loss(d["values"] * 0.9, d["values"], ret, mask, 0.2)
    return {
        "adv": adv,
        "ret": ret,
        "pl": pl,
        "pcf": pcf,
        "akl": akl,
        "vl": vl,
        "vcf": vcf,
        "ent": ca.entropy_from_logits(d["logits"]),
        "ev": ca.explained_variance(d["values"], ret, mask),
        "grpo": ca.grpo_group_advantages(d["scores"], 2, "group"),
    }


def test_core_algos_cuda_matches_cpu():
    cpu = _pipeline(_batch("cpu"))
    gpu = _pipeline(_batch("cuda"))
    for key, value in cpu.items():
        assert gpu[key].device.type == "cuda", key
        torch.testing.assert_close(gpu[key].cpu(), value, atol=1e-5, rtol=1e-5, msg=key)


def test_pcgrad_cuda_matches_cpu_and_bf16_model_runs():
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(1000, generator=g) for _ in range(3)]
    cpu, cpu_stats = project_conflicting(grads, torch.Generator().manual_seed(5))
    gpu, gpu_stats = project_conflicting([x.cuda() for x in grads], torch.Generator().manual_seed(5))
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=1e-5)
    assert gpu_stats.num_projections == cpu_stats.num_projections

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    model = model.to("cuda", torch.bfloat16)
    x = torch.randn(8, 16, device="cuda", dtype=torch.bfloat16)

    def losses() -> dict[str, torch.Tensor]:
        out = model(x).float().squeeze(-1)
        return {"a": (out - 1).square().mean(), "b": (out + 1).square().mean()}

    stats = pcgrad_backward(model.parameters(), losses(), torch.Generator().manual_seed(0))
    flat = flatten_grads(model.parameters())
    assert flat.device.type == "cuda" and flat.dtype == torch.bfloat16 and torch.isfinite(flat).all()
    assert stats.cosine.shape == (2, 2)
    acc = PCGradAccumulator(model.parameters(), ["a", "b", "c"], torch.Generator().manual_seed(0))
    acc.add(losses())
    acc.add({"a": losses()["a"]})
    stats = acc.step()  # domain "c" never seen: a zero gradient on the right device
    assert stats.grad_norms[2] == 0 and stats.grad_norms.device.type == "cuda"
