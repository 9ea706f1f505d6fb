"""PCGrad (Yu et al. 2020) against the paper's formula, hand-computed cases and a real model."""

from __future__ import annotations

import math
import os
import socket
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rlpipe.train.pcgrad import (
    PCGradAccumulator,
    allreduce_flat_,
    assign_flat_grad,
    flatten_grads,
    pcgrad_backward,
    project_conflicting,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def close(actual: torch.Tensor, expected: object, atol: float = 1e-6) -> None:
    torch.testing.assert_close(
        actual.to(torch.float64), torch.as_tensor(expected, dtype=torch.float64), atol=atol, rtol=0
    )


def paper_two_task(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """The paper's two-task rule, written independently: g_i' = g_i - (g_i.g_j / |g_j|^2) g_j if < 0."""
    dot = float(g1 @ g2)
    p1 = g1 - dot / float(g2 @ g2) * g2 if dot < 0 else g1
    p2 = g2 - dot / float(g1 @ g1) * g1 if dot < 0 else g2
    return p1 + p2


# ---------------------------------------------------------------- two tasks


def test_two_conflicting_tasks_hand_computed():
    # g1 = [1, 0], g2 = [-1, 1]: g1.g2 = -1 < 0, |g2|^2 = 2, |g1|^2 = 1
    # g1' = [1, 0] - (-1/2) [-1, 1] = [0.5, 0.5]      (g1'.g2 = -0.5 + 0.5 = 0)
    # g2' = [-1, 1] - (-1/1) [1, 0] = [0, 1]          (g2'.g1 = 0)
    # sum = [0.5, 1.5]. A variant that projected g2 on the *projected* g1' = [0.5, 0.5] would find
    # g2.g1' = 0, leave g2 alone and return [-0.5, 1.5]: the originals must be used.
    summed, stats = project_conflicting([t(1, 0), t(-1, 1)], gen())
    close(summed, [0.5, 1.5])
    assert stats.num_projections == 2
    # cosine = -1 / (1 * sqrt 2) = -0.7071068 ; norms [1, sqrt 2]
    close(stats.cosine, [[1.0, -1 / math.sqrt(2)], [-1 / math.sqrt(2), 1.0]])
    close(stats.grad_norms, [1.0, math.sqrt(2)])


def test_two_tasks_unequal_magnitudes():
    # g1 = [3, 0], g2 = [-1, 2]: dot = -3, |g2|^2 = 5, |g1|^2 = 9
    # g1' = [3, 0] + 3/5 [-1, 2] = [2.4, 1.2] ; g2' = [-1, 2] + 3/9 [3, 0] = [0, 2] ; sum [2.4, 3.2]
    summed, _ = project_conflicting([t(3, 0), t(-1, 2)], gen())
    close(summed, [2.4, 3.2])


def test_non_conflicting_and_orthogonal_are_untouched():
    summed, stats = project_conflicting([t(1, 0), t(1, 1)], gen())  # dot = 1 > 0
    close(summed, [2.0, 1.0])
    assert stats.num_projections == 0
    summed, stats = project_conflicting([t(1, 0), t(0, 3)], gen())  # dot = 0: not a conflict
    close(summed, [1.0, 3.0])
    assert stats.num_projections == 0


def test_two_tasks_match_paper_formula_on_random_vectors():
    rng = torch.Generator().manual_seed(1234)
    conflicts = 0
    for _ in range(50):
        g1 = torch.randn(7, generator=rng, dtype=torch.float64)
        g2 = torch.randn(7, generator=rng, dtype=torch.float64)
        conflicts += float(g1 @ g2) < 0
        summed, _ = project_conflicting([g1, g2], gen())
        close(summed, paper_two_task(g1, g2), atol=1e-10)
    assert 10 < conflicts < 40  # both branches of the rule were exercised


def test_projected_sum_does_not_conflict_with_either_task():
    # first-order guarantee for two tasks: the update never increases either loss
    g1, g2 = t(1, 0), t(-4, 0.5)  # plain sum [-3, 0.5] has dot -3 with g1: task 1 would be hurt
    assert float((g1 + g2) @ g1) < 0
    summed, _ = project_conflicting([g1, g2], gen())
    assert float(summed @ g1) >= -1e-12 and float(summed @ g2) >= -1e-12


# ---------------------------------------------------------------- three tasks

# g1 = [1, 0], g2 = [0, 1], g3 = [-1, -1]; dots: g1.g2 = 0, g1.g3 = -1, g2.g3 = -1;
# |g1|^2 = |g2|^2 = 1, |g3|^2 = 2. The order of the others matters:
#   task 1, order (2, 3): g1.g2 = 0 skip; g1.g3 = -1 -> [1,0] + 1/2 [-1,-1] = [0.5, -0.5]   (1 proj)
#   task 1, order (3, 2): [0.5, -0.5] first; then .g2 = -0.5 -> [0.5, -0.5] + 0.5 [0, 1] = [0.5, 0]  (2)
#   task 2, order (1, 3): [-0.5, 0.5] (1) ; order (3, 1): [-0.5, 0.5] then .g1 = -0.5 -> [0, 0.5] (2)
#   task 3, order (1, 2): [-1,-1] + [1, 0] = [0, -1]; .g2 = -1 -> [0, -1] + [0, 1] = [0, 0]  (2)
#           order (2, 1): [-1, 0] then [0, 0]                                                (2)
THREE = [t(1, 0), t(0, 1), t(-1, -1)]
TASK1 = {(1, 2): ([0.5, -0.5], 1), (2, 1): ([0.5, 0.0], 2)}  # keyed by 0-based order of the others
TASK2 = {(0, 2): ([-0.5, 0.5], 1), (2, 0): ([0.0, 0.5], 2)}


def _expected_three(seed: int) -> tuple[list[float], int]:
    """Replay the documented draw: one randperm(K) per task, in task order, self skipped."""
    g = gen(seed)
    orders = [tuple(int(j) for j in torch.randperm(3, generator=g) if int(j) != i) for i in range(3)]
    p1, n1 = TASK1[orders[0]]
    p2, n2 = TASK2[orders[1]]
    return [p1[0] + p2[0], p1[1] + p2[1]], n1 + n2 + 2


def test_three_tasks_hand_computed_for_the_drawn_order():
    seen = set()
    for seed in range(12):
        expected, n_proj = _expected_three(seed)
        summed, stats = project_conflicting(THREE, gen(seed))
        close(summed, expected)
        assert stats.num_projections == n_proj
        seen.add(tuple(expected))
    # the four possible sums [0, 0], [0.5, 0], [0, 0.5], [0.5, 0.5]: randomness is really used
    assert len(seen) >= 3
    assert seen <= {(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5)}


def test_three_tasks_cosines_and_reproducibility():
    a, sa = project_conflicting(THREE, gen(7))
    b, sb = project_conflicting(THREE, gen(7))
    close(a, b)
    c = -1 / math.sqrt(2)  # cos(g1, g3) = -1 / (1 * sqrt 2)
    close(sa.cosine, [[1, 0, c], [0, 1, c], [c, c, 1]])
    metrics = sa.as_metrics()
    assert metrics["pcgrad/cos/0__2"] == pytest.approx(c)
    assert metrics["pcgrad/projections"] == sa.num_projections


def test_zero_gradient_single_task_and_errors():
    summed, stats = project_conflicting([t(1, 2), t(0, 0)], gen())
    close(summed, [1.0, 2.0])  # a zero gradient neither conflicts nor is projected onto
    close(stats.cosine, [[1.0, 0.0], [0.0, 0.0]])
    summed, stats = project_conflicting([t(-1, 2)], gen())
    close(summed, [-1.0, 2.0])
    assert stats.num_projections == 0
    with pytest.raises(ValueError):
        project_conflicting([], gen())
    with pytest.raises(ValueError):
        project_conflicting([t(1, 2), t(1, 2, 3)], gen())


def test_low_precision_in_low_precision_out():
    summed, _ = project_conflicting([t(1, 0).bfloat16(), t(-1, 1).bfloat16()], gen())
    assert summed.dtype == torch.bfloat16
    close(summed, [0.5, 1.5])


# ---------------------------------------------------------------- flat helpers


def test_flatten_and_assign_round_trip():
    a = torch.nn.Parameter(torch.zeros(2, 2))
    b = torch.nn.Parameter(torch.zeros(3))
    a.grad = torch.arange(4.0).view(2, 2)
    flat = flatten_grads([a, b])  # b.grad is None -> zeros
    close(flat, [0, 1, 2, 3, 0, 0, 0])
    assign_flat_grad([a, b], torch.arange(7.0))
    close(a.grad, [[0, 1], [2, 3]])
    close(b.grad, [4, 5, 6])
    assign_flat_grad([a, b], torch.ones(7), accumulate=True)
    close(b.grad, [5, 6, 7])
    with pytest.raises(ValueError):
        assign_flat_grad([a, b], torch.ones(6))


def test_allreduce_is_noop_without_process_group():
    assert not dist.is_initialized()
    flat = t(1, 2)
    assert allreduce_flat_(flat) is flat
    close(flat, [1, 2])


# ---------------------------------------------------------------- on real models


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _domain_losses(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # Same inputs, opposite targets -> conflicting gradients; "b" is down-weighted so that the plain
    # sum would hurt it.
    x = torch.linspace(-1, 1, 12).view(4, 3)
    out = model(x).squeeze(-1)
    return {"a": (out - 1.0).square().mean(), "b": 0.2 * (out + 1.0).square().mean()}


def _reference_grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    grads = {}
    for name in ("a", "b"):
        model.zero_grad()
        _domain_losses(model)[name].backward()
        grads[name] = flatten_grads(model.parameters()).clone()
    model.zero_grad()
    return grads


def test_pcgrad_backward_on_mlp_writes_projected_sum():
    model = _mlp()
    ref = _reference_grads(model)
    ga, gb = ref["a"], ref["b"]
    assert float(ga @ gb) < 0  # precondition: the domains conflict
    assert float((ga + gb) @ gb) < 0  # ... and plain summing would work against domain b
    stats = pcgrad_backward(model.parameters(), _domain_losses(model), gen())
    written = flatten_grads(model.parameters())
    close(written, paper_two_task(ga.double(), gb.double()), atol=1e-6)
    # the conflicting component is gone: the update helps (or is neutral to) both domains
    assert float(written @ gb) >= -1e-7 and float(written @ ga) >= -1e-7
    assert stats.domains == ["a", "b"] and stats.num_projections == 2
    close(stats.cosine[0, 1], float(ga @ gb) / float(ga.norm() * gb.norm()), atol=1e-5)


def test_pcgrad_backward_overwrites_existing_grad_and_skips_frozen():
    model = _mlp()
    model[0].bias.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    ref = {}
    for name in ("a", "b"):
        model.zero_grad()
        _domain_losses(model)[name].backward()
        ref[name] = flatten_grads(trainable).clone()
    for p in model.parameters():
        p.grad = torch.full_like(p, 100.0)  # stale gradient must be replaced, not added to
    pcgrad_backward(model.parameters(), _domain_losses(model), gen())
    close(flatten_grads(trainable), paper_two_task(ref["a"].double(), ref["b"].double()), atol=1e-6)
    close(model[0].bias.grad, torch.full((8,), 100.0))  # frozen parameter untouched


def test_accumulator_projects_the_accumulated_gradient():
    model = _mlp()
    x1, x2 = torch.linspace(-1, 1, 6).view(2, 3), torch.linspace(0, 2, 6).view(2, 3)

    def losses(x: torch.Tensor, with_b: bool = True) -> dict[str, torch.Tensor]:
        out = model(x).squeeze(-1)
        d = {"a": (out - 1.0).square().mean()}
        if with_b:
            d["b"] = 0.2 * (out + 1.0).square().mean()
        return d

    # reference: per-domain gradients summed over the micro-batches, then the paper's rule
    sums = {}
    for name in ("a", "b"):
        model.zero_grad()
        losses(x1)[name].backward()
        if name == "a":
            losses(x2, with_b=False)["a"].backward()  # domain b is absent from micro-batch 2
        sums[name] = flatten_grads(model.parameters()).clone().double()
    model.zero_grad()

    acc = PCGradAccumulator(model.parameters(), ["a", "b"], gen())
    acc.add(losses(x1))
    acc.add(losses(x2, with_b=False))
    stats = acc.step()
    close(flatten_grads(model.parameters()), paper_two_task(sums["a"], sums["b"]), atol=1e-6)
    assert stats.domains == ["a", "b"]
    with pytest.raises(KeyError):
        acc.add({"c": losses(x1)["a"]})
    # after step the buffers are empty: a step with only domain a writes exactly its gradient
    acc.add({"a": losses(x1)["a"]})
    acc.step()
    model2 = _mlp()
    losses_a = (model2(x1).squeeze(-1) - 1.0).square().mean()
    losses_a.backward()
    close(flatten_grads(model.parameters()), flatten_grads(model2.parameters()), atol=1e-6)


def _policy_and_critic() -> tuple[torch.nn.Parameter, torch.nn.Parameter, dict[str, torch.Tensor]]:
    """Issue 12's counter-example: linear losses whose per-domain gradients are exactly the policy
    parts [1, 0] and [0, 1] (orthogonal: nothing to project) and the critic parts 5 and -2."""
    policy = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    critic = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    losses = {
        "a": policy @ t(1, 0) + 5.0 * critic.sum(),
        "b": policy @ t(0, 1) - 2.0 * critic.sum(),
    }
    return policy, critic, losses


def test_critic_conflict_does_not_change_the_policy_update():
    # the bug: one flat vector of policy and critic -- the critics' conflict (5 . -2 < 0) projects
    # the policy parts too, g_a' = [1, 2, 1], g_b' = [10/26, 1, -2 + 50/26]
    joint, stats = project_conflicting([t(1, 0, 5), t(0, 1, -2)], gen())
    close(joint, [1 + 10 / 26, 3.0, 1 - 2 / 26])
    assert stats.num_projections == 2
    policy, critic, losses = _policy_and_critic()
    acc = PCGradAccumulator([policy, critic], ["a", "b"], gen())  # what PPO used to pass
    acc.add(losses)
    acc.step()
    close(policy.grad, [1 + 10 / 26, 3.0])  # policy moved by [1.385, 3.0]

    # the fix: the policy's gradients are projected alone, the critic gets the plain sum
    policy, critic, losses = _policy_and_critic()
    acc = PCGradAccumulator([policy], ["a", "b"], gen(), other_params=[critic])
    acc.add(losses)
    stats = acc.step()
    close(policy.grad, [1.0, 1.0], atol=0)
    close(critic.grad, [3.0], atol=0)
    # the statistics are the policy's: orthogonal unit gradients, no projection
    assert stats.num_projections == 0 and stats.domains == ["a", "b"]
    close(stats.grad_norms, [1.0, 1.0])
    close(stats.cosine[0, 1], 0.0)

    # ... or a projection of its own: 5 and -2 cancel exactly, the policy update is unchanged
    policy, critic, losses = _policy_and_critic()
    acc = PCGradAccumulator([policy], ["a", "b"], gen(), other_params=[critic], other="project")
    acc.add(losses)
    stats = acc.step()
    close(policy.grad, [1.0, 1.0], atol=0)
    close(critic.grad, [0.0])
    assert stats.num_projections == 0


def test_accumulator_refuses_overlapping_or_unknown_other_params():
    policy, critic, _ = _policy_and_critic()
    with pytest.raises(ValueError, match="both"):
        PCGradAccumulator([policy, critic], ["a", "b"], gen(), other_params=[critic])
    with pytest.raises(ValueError, match="other must be"):
        PCGradAccumulator([policy], ["a", "b"], gen(), other_params=[critic], other="mean")


def test_pcgrad_backward_on_tiny_qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
    )
    model = Qwen2ForCausalLM(config)
    ids = {"arith": torch.randint(0, 64, (2, 8)), "code": torch.randint(0, 64, (2, 8))}

    def losses() -> dict[str, torch.Tensor]:
        # "code" is trained to *unlearn* its sequences: guaranteed to pull against "arith" somewhere
        la = model(input_ids=ids["arith"], labels=ids["arith"]).loss
        lc = -0.5 * model(input_ids=ids["code"], labels=ids["code"]).loss
        return {"arith": la, "code": lc}

    params = [p for p in model.parameters() if p.requires_grad]
    ref = {}
    for name in ("arith", "code"):
        model.zero_grad()
        losses()[name].backward()
        ref[name] = flatten_grads(params).clone().double()
    model.zero_grad()
    assert float(ref["arith"] @ ref["code"]) < 0  # precondition (seeded): the domains conflict
    expected = paper_two_task(ref["arith"], ref["code"])
    stats = pcgrad_backward(model.parameters(), losses(), gen())
    written = flatten_grads(params).double()
    close(written, expected, atol=1e-5)
    assert stats.num_projections == 2 and stats.domains == ["arith", "code"]
    # the conflicting component is removed: no first-order harm to either domain
    assert float(written @ ref["arith"]) >= -1e-6 and float(written @ ref["code"]) >= -1e-6
    # ... whereas the plain sum differs from the projected one
    assert not torch.allclose(written, ref["arith"] + ref["code"], atol=1e-6)


# ---------------------------------------------------------------- distributed rule


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dist_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        flat = torch.tensor([1.0, 2.0]) if rank == 0 else torch.tensor([3.0, 6.0])
        allreduce_flat_(flat)  # mean: [2, 4]
        model = _mlp()  # same weights on every rank (seeded)
        # each rank sees a different slice of the data, as under data parallelism
        x = torch.linspace(-1, 1, 12).view(4, 3)[rank * 2 : rank * 2 + 2]
        out = model(x).squeeze(-1)
        losses = {"a": (out - 1.0).square().mean(), "b": 0.2 * (out + 1.0).square().mean()}
        pcgrad_backward(model.parameters(), losses, gen())
        torch.save({"flat": flat, "grad": flatten_grads(model.parameters())}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_distributed_projection_uses_all_reduced_gradients():
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_dist_worker, args=(2, _free_port(), out_dir), nprocs=2, join=True)
        results = [torch.load(f"{out_dir}/rank{r}.pt") for r in range(2)]
    for res in results:
        close(res["flat"], [2.0, 4.0])
    # the global gradient of each domain = mean of the two ranks' local gradients (equal halves)
    model = _mlp()
    x = torch.linspace(-1, 1, 12).view(4, 3)
    local = {"a": [], "b": []}
    for rank in range(2):
        for name in ("a", "b"):
            model.zero_grad()
            out = model(x[rank * 2 : rank * 2 + 2]).squeeze(-1)
            loss = (out - 1.0).square().mean() if name == "a" else 0.2 * (out + 1.0).square().mean()
            loss.backward()
            local[name].append(flatten_grads(model.parameters()).clone().double())
    g_a = (local["a"][0] + local["a"][1]) / 2
    g_b = (local["b"][0] + local["b"][1]) / 2
    expected = paper_two_task(g_a, g_b)
    for res in results:
        close(res["grad"], expected, atol=1e-6)  # identical on every rank
    # projecting locally and averaging afterwards is a different answer (that is the bug it avoids)
    wrong = (paper_two_task(local["a"][0], local["b"][0]) + paper_two_task(local["a"][1], local["b"][1])) / 2
    assert not torch.allclose(wrong, expected, atol=1e-4)
