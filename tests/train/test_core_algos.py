"""Hand-computed cases for rlpipe.train.core_algos (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from rlpipe.train.core_algos import (
    AdaptiveKLController,
    FixedKLController,
    compute_gae,
    entropy_from_logits,
    explained_variance,
    grpo_group_advantages,
    kl_penalty,
    kl_reward_shaping,
    masked_mean,
    masked_var,
    masked_whiten,
    place_terminal_reward,
    ppo_policy_loss,
    ppo_value_loss,
)

NAN = float("nan")


def close(actual: torch.Tensor | float, expected: object, atol: float = 1e-6) -> None:
    """Exact-ish comparison that also checks ``nan`` placement is not silently accepted."""
    torch.testing.assert_close(
        torch.as_tensor(actual, dtype=torch.float64),
        torch.as_tensor(expected, dtype=torch.float64),
        atol=atol,
        rtol=0,
    )


# ---------------------------------------------------------------- masked statistics

# Valid entries are 1, 2 and 4; the padding holds a 3 and nans that must never leak.
VALUES = torch.tensor([[1.0, 2.0, 3.0], [4.0, NAN, NAN]])
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def test_masked_mean_ignores_padding_and_nan():
    # (1 + 2 + 4) / 3 = 7/3
    close(masked_mean(VALUES, MASK), 7 / 3)
    # per row: (1 + 2) / 2 = 1.5 ; 4 / 1 = 4
    close(masked_mean(VALUES, MASK, dim=1), [1.5, 4.0])


def test_masked_mean_empty_selection_is_zero_not_nan():
    close(masked_mean(VALUES, torch.zeros_like(MASK)), 0.0)
    close(masked_mean(VALUES, torch.tensor([[1.0, 0, 0], [0, 0, 0]]), dim=1), [1.0, 0.0])


def test_masked_mean_accepts_bool_mask():
    close(masked_mean(VALUES, MASK.bool()), 7 / 3)


def test_masked_mean_of_bf16_is_computed_in_float32():
    # 999 ones and one 2: mean 1001/1000 = 1.001, which bf16 (8-bit mantissa, step 1/128 near 1)
    # cannot represent: a bf16 result would read 1.0.
    values = torch.ones(1, 1000, dtype=torch.bfloat16)
    values[0, 0] = 2.0
    out = masked_mean(values, torch.ones(1, 1000))
    assert out.dtype == torch.float32
    close(out, 1.001)


def test_masked_var_biased_and_unbiased():
    # mean 7/3; squared deviations (4/3)^2 + (1/3)^2 + (5/3)^2 = (16 + 1 + 25) / 9 = 42/9
    # biased: 42/9 / 3 = 14/9 ; unbiased: 42/9 / 2 = 7/3
    close(masked_var(VALUES, MASK, unbiased=False), 14 / 9)
    close(masked_var(VALUES, MASK), 7 / 3)


def test_masked_var_single_element_is_zero():
    close(masked_var(VALUES, torch.tensor([[0.0, 1, 0], [0, 0, 0]])), 0.0)


def test_masked_whiten():
    # (x - 7/3) / sqrt(7/3), sqrt(7/3) = 1.5275252
    # 1 -> -1.3333333 / 1.5275252 = -0.8728716 ; 2 -> -0.2182179 ; 4 -> 1.0910895 ; padding -> 0
    out = masked_whiten(VALUES, MASK)
    close(out, [[-0.8728716, -0.2182179, 0.0], [1.0910895, 0.0, 0.0]])
    close(masked_mean(out, MASK), 0.0)
    close(masked_var(out, MASK), 1.0)
    # shift_mean=False adds the mean 7/3 = 2.3333333 back on valid positions only
    kept = masked_whiten(VALUES, MASK, shift_mean=False)
    close(kept, [[-0.8728716 + 7 / 3, -0.2182179 + 7 / 3, 0.0], [1.0910895 + 7 / 3, 0.0, 0.0]])


# ---------------------------------------------------------------- GAE


def test_gae_gamma_lambda_one_is_reward_to_go_minus_value():
    # gamma = lam = 1 and terminal bootstrap 0: A_t = sum_{s>=t} r_s - V_t, R_t = sum_{s>=t} r_s.
    rewards = torch.tensor([[0.0, 0.0, 1.0, 99.0]])  # the 99 sits on padding: must not count
    values = torch.tensor([[0.5, 0.4, 0.2, NAN]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    adv, ret = compute_gae(rewards, values, mask, gamma=1.0, lam=1.0)
    close(adv, [[0.5, 0.6, 0.8, 0.0]])  # 1-0.5, 1-0.4, 1-0.2
    close(ret, [[1.0, 1.0, 1.0, 0.0]])


def test_gae_discounted():
    # gamma = 0.9, lam = 0.5 -> gamma*lam = 0.45
    # t=2: delta = 1 + 0.9*0   - 0.2 = 0.8                      A = 0.8
    # t=1: delta = 0 + 0.9*0.2 - 0.4 = -0.22   A = -0.22 + 0.45*0.8  = 0.14
    # t=0: delta = 0 + 0.9*0.4 - 0.5 = -0.14   A = -0.14 + 0.45*0.14 = -0.077
    # returns = A + V = [-0.077 + 0.5, 0.14 + 0.4, 0.8 + 0.2] = [0.423, 0.54, 1.0]
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.4, 0.2]])
    adv, ret = compute_gae(rewards, values, torch.ones(1, 3), gamma=0.9, lam=0.5)
    close(adv, [[-0.077, 0.14, 0.8]])
    close(ret, [[0.423, 0.54, 1.0]])


def test_gae_left_padding_and_gaps_never_leak():
    gamma, lam = 0.9, 0.5
    # row 0: the discounted case above, left-padded by one position holding garbage
    # row 1: a masked gap in the middle (e.g. tool output): the recursion skips it, so
    #   t=2: A = 1 - 0.2 = 0.8 ; t=0: delta = 0 + 0.9*0.2 - 0.5 = -0.32, A = -0.32 + 0.45*0.8 = 0.04
    # row 2: all padding -> zeros
    rewards = torch.tensor([[5.0, 0.0, 0.0, 1.0], [0.0, 7.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    values = torch.tensor([[NAN, 0.5, 0.4, 0.2], [0.5, NAN, 0.2, 3.0], [1.0, 1.0, 1.0, 1.0]])
    mask = torch.tensor([[0, 1, 1, 1], [1, 0, 1, 0], [0, 0, 0, 0]])
    adv, ret = compute_gae(rewards, values, mask, gamma, lam)
    close(adv, [[0.0, -0.077, 0.14, 0.8], [0.04, 0.0, 0.8, 0.0], [0.0, 0.0, 0.0, 0.0]])
    close(ret, [[0.0, 0.423, 0.54, 1.0], [0.54, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])


def test_gae_rows_are_independent_and_no_grad():
    values = torch.tensor([[0.5, 0.4, 0.2], [0.0, 0.0, 0.0]], requires_grad=True)
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    adv, ret = compute_gae(rewards, values, torch.ones(2, 3), gamma=0.9, lam=0.5)
    assert not adv.requires_grad and not ret.requires_grad
    close(adv[1], [0.0, 0.0, 0.0])  # row 1 is all zero: the other row must not bleed into it


# ---------------------------------------------------------------- terminal reward


def test_place_terminal_reward_right_left_and_empty_rows():
    scores = torch.tensor([1.0, 0.5, 2.0])
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1], [0, 0, 0, 0]])
    out = place_terminal_reward(scores, mask)
    close(out, [[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0]])
    assert out.dtype == torch.float32


def test_terminal_reward_then_gae_end_to_end():
    # score 1 on the last of 2 tokens; V = 0; gamma = 1, lam = 0.95:
    # t=1: A = 1 ; t=0: delta = 0 + 0 - 0 = 0, A = 0 + 0.95 * 1 = 0.95
    rewards = place_terminal_reward(torch.tensor([1.0]), torch.tensor([[1, 1, 0]]))
    adv, _ = compute_gae(rewards, torch.zeros(1, 3), torch.tensor([[1, 1, 0]]), gamma=1.0, lam=0.95)
    close(adv, [[0.95, 1.0, 0.0]])


# ---------------------------------------------------------------- KL


def test_kl_estimators():
    logprob = torch.tensor([-1.0, -2.0])
    ref = torch.tensor([-1.5, -1.0])
    # d = logprob - ref = [0.5, -1.0]
    close(kl_penalty(logprob, ref, "k1"), [0.5, -1.0])
    close(kl_penalty(logprob, ref, "abs"), [0.5, 1.0])
    close(kl_penalty(logprob, ref, "k2"), [0.125, 0.5])  # d^2 / 2
    # k3 = exp(-d) - 1 + d: exp(-0.5) - 0.5 = 0.6065307 - 0.5 = 0.1065307 ; e - 2 = 0.7182818
    close(kl_penalty(logprob, ref, "k3"), [0.1065307, 0.7182818])


def test_k3_is_finite_for_extreme_ratios_and_unknown_kind_fails():
    out = kl_penalty(torch.tensor([-200.0, 0.0]), torch.tensor([0.0, -200.0]), "k3")
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError):
        kl_penalty(torch.zeros(1), torch.zeros(1), "k4")  # type: ignore[arg-type]


def test_kl_penalty_is_differentiable():
    logprob = torch.tensor([-1.0], requires_grad=True)
    kl_penalty(logprob, torch.tensor([-1.5]), "k2").sum().backward()
    close(logprob.grad, [0.5])  # d/dx (x - ref)^2 / 2 = d = 0.5


def test_kl_reward_shaping():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    kl = torch.tensor([[0.5, -0.2, 0.1]], requires_grad=True)
    # r - 0.1 * kl = [-0.05, 0.02, 1 - 0.01]
    shaped = kl_reward_shaping(rewards, kl, 0.1)
    close(shaped, [[-0.05, 0.02, 0.99]])
    assert not shaped.requires_grad
    close(kl_reward_shaping(rewards, kl, 0.1, mask=torch.tensor([[1, 1, 0]])), [[-0.05, 0.02, 0.0]])


def test_adaptive_kl_controller():
    ctl = AdaptiveKLController(init_kl_coef=0.2, target=6.0, horizon=10000)
    # e = clip(9/6 - 1 = 0.5, +-0.2) = 0.2 ; beta = 0.2 * (1 + 0.2 * 1000/10000) = 0.2 * 1.02 = 0.204
    ctl.update(9.0, 1000)
    close(ctl.value, 0.204)
    # e = 5.4/6 - 1 = -0.1 ; beta = 0.204 * (1 - 0.1 * 2000/10000) = 0.204 * 0.98 = 0.19992
    ctl.update(5.4, 2000)
    close(ctl.value, 0.19992)
    # e = clip(-1, +-0.2) = -0.2 ; beta = 0.19992 * (1 - 0.2) = 0.159936
    ctl.update(0.0, 10000)
    close(ctl.value, 0.159936)
    restored = AdaptiveKLController(init_kl_coef=1.0, target=1.0, horizon=1.0)
    restored.load_state_dict(ctl.state_dict())
    close(restored.value, 0.159936)
    assert restored.target == 6.0 and restored.horizon == 10000


def test_fixed_kl_controller_and_invalid_adaptive():
    ctl = FixedKLController(0.05)
    ctl.update(100.0, 1000)
    assert ctl.value == 0.05
    with pytest.raises(ValueError):
        AdaptiveKLController(0.1, target=0.0, horizon=10)


# ---------------------------------------------------------------- PPO losses


def _policy_case():
    # tokens (ratio, A):  (1.5, 1)  (0.5, -1)  (1.0, 2)  |  (1.1, -2)  pad  pad
    old = torch.zeros(2, 3)
    logprob = torch.tensor([[math.log(1.5), math.log(0.5), 0.0], [math.log(1.1), NAN, NAN]])
    adv = torch.tensor([[1.0, -1.0, 2.0], [-2.0, 5.0, 5.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    return logprob.requires_grad_(True), old, adv, mask


def test_ppo_policy_loss_hand_computed():
    logprob, old, adv, mask = _policy_case()
    loss, clip_frac, approx_kl = ppo_policy_loss(logprob, old, adv, mask, 0.2, 0.2)
    # per token max(-A r, -A clip(r, 0.8, 1.2)):
    #   (1.5, 1):  max(-1.5, -1.2) = -1.2  clipped
    #   (0.5,-1):  max( 0.5,  0.8) =  0.8  clipped
    #   (1.0, 2):  max(-2.0, -2.0) = -2.0
    #   (1.1,-2):  max( 2.2,  2.2) =  2.2
    # token mean: (-1.2 + 0.8 - 2.0 + 2.2) / 4 = -0.05 ; clip fraction 2/4
    close(loss, -0.05)
    close(clip_frac, 0.5)
    # k3 of KL(old||new): (r - 1) - ln r
    #   0.5 - 0.4054651 = 0.0945349 ; -0.5 + 0.6931472 = 0.1931472 ; 0 ; 0.1 - 0.0953102 = 0.0046898
    #   mean = 0.2923719 / 4 = 0.0730930
    close(approx_kl, 0.0730930)
    assert not clip_frac.requires_grad and not approx_kl.requires_grad
    loss.backward()
    # clipped tokens get no gradient; the others d(-A r)/d logprob / 4 = -A r / 4:
    #   (1.0, 2): -2/4 = -0.5 ; (1.1, -2): 2.2/4 = 0.55 ; padding: 0 (not nan)
    close(logprob.grad, [[0.0, 0.0, -0.5], [0.55, 0.0, 0.0]])


def test_ppo_policy_loss_clip_higher():
    logprob, old, adv, mask = _policy_case()
    # clip_eps_high = 0.6: ratio 1.5 < 1.6 is no longer clipped -> -1.5 instead of -1.2
    # (-1.5 + 0.8 - 2.0 + 2.2) / 4 = -0.125 ; only the (0.5, -1) token is clipped: 1/4
    loss, clip_frac, _ = ppo_policy_loss(logprob, old, adv, mask, 0.2, 0.6)
    close(loss, -0.125)
    close(clip_frac, 0.25)


def test_ppo_policy_loss_negative_advantage_above_clip_is_not_clipped():
    # ratio 1.5, A = -1: max(1.5, 1.2) = 1.5 -- the pessimistic bound keeps the gradient that
    # pushes a bad, over-amplified token back down.
    logprob = torch.tensor([[math.log(1.5)]], requires_grad=True)
    loss, clip_frac, _ = ppo_policy_loss(logprob, torch.zeros(1, 1), -torch.ones(1, 1), torch.ones(1, 1))
    close(loss, 1.5)
    close(clip_frac, 0.0)
    loss.backward()
    close(logprob.grad, [[1.5]])  # d(-A r)/d logprob = r = 1.5


def test_ppo_policy_loss_on_policy_is_minus_mean_advantage():
    # ratio 1 everywhere: the loss is -mean(A) over valid tokens; padded advantages (100) ignored
    adv = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, 100.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    lp = torch.zeros(2, 3)
    loss, clip_frac, approx_kl = ppo_policy_loss(lp, lp, adv, mask)
    close(loss, -2.5)  # -(1 + 2 + 3 + 4) / 4
    close(clip_frac, 0.0)
    close(approx_kl, 0.0)


def test_ppo_value_loss_hand_computed():
    # (v, old, R):  (1.0, 0.5, 2)  (0.0, 0.5, 0)  (0.5, 0.5, 0)  pad
    values = torch.tensor([[1.0, 0.0, 0.5, NAN]], requires_grad=True)
    old = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    returns = torch.tensor([[2.0, 0.0, 0.0, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    # v_clip = old + clip(v - old, +-0.2) = [0.7, 0.3, 0.5]
    # unclipped (v - R)^2 = [1, 0, 0.25] ; clipped (v_clip - R)^2 = [1.69, 0.09, 0.25]
    # 0.5 * mean(max) = 0.5 * (1.69 + 0.09 + 0.25) / 3 = 0.5 * 2.03 / 3 = 0.3383333
    loss, clip_frac = ppo_value_loss(values, old, returns, mask, 0.2)
    close(loss, 0.3383333)
    close(clip_frac, 2 / 3)
    loss.backward()
    # clipped tokens have zero gradient w.r.t. v; token 2: d 0.5 (v-R)^2 / 3 = (0.5 - 0) / 3
    close(values.grad, [[0.0, 0.0, 0.5 / 3, 0.0]])
    # no clip: 0.5 * (1 + 0 + 0.25) / 3 = 0.2083333
    loss, clip_frac = ppo_value_loss(values, old, returns, mask, None)
    close(loss, 0.2083333)
    close(clip_frac, 0.0)


# ---------------------------------------------------------------- entropy, explained variance


def test_entropy_from_logits():
    # uniform over 4: ln 4 = 1.3862944
    # p = [0.25, 0.75] (logits [0, ln 3]): 0.25 ln 4 + 0.75 ln(4/3) = 0.3465736 + 0.2157616 = 0.5623351
    # [0, 0, -inf]: uniform over 2 -> ln 2 = 0.6931472 ; [0, 1000]: ~0, finite
    logits = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0],
            [0.0, math.log(3.0), -math.inf, -math.inf],
            [0.0, 0.0, -math.inf, -math.inf],
            [0.0, 1000.0, -math.inf, -math.inf],
        ]
    )
    close(entropy_from_logits(logits), [1.3862944, 0.5623351, 0.6931472, 0.0])
    close(entropy_from_logits(logits[:1].to(torch.bfloat16)), [1.3862944], atol=1e-5)


def test_entropy_shape_is_batch_time():
    assert entropy_from_logits(torch.zeros(2, 5, 7)).shape == (2, 5)


def test_explained_variance():
    returns = torch.tensor([[1.0, 2.0, 3.0, 4.0, 50.0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    # residual [0, 0, 0, -1]: var = 1/4 - (1/4)^2 = 0.1875 ; var(returns) = 1.25 ; 1 - 0.15 = 0.85
    close(explained_variance(torch.tensor([[1.0, 2.0, 3.0, 5.0, 0.0]]), returns, mask), 0.85)
    close(explained_variance(returns, returns, mask), 1.0)
    # constant critic = the mean: residual variance = var(returns) -> 0
    close(explained_variance(torch.full((1, 5), 2.5), returns, mask), 0.0)
    assert math.isnan(float(explained_variance(returns, torch.ones(1, 5), mask)))


# ---------------------------------------------------------------- GRPO advantages

REWARDS = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])


def test_grpo_group_advantages_group_scale():
    # group 1: mean 0.25 -> centred [0.75, -0.25, -0.25, -0.25]; unbiased var = (0.5625 + 3*0.0625)/3
    #          = 0.25 -> std 0.5 ; / (0.5 + 1e-4): [1.4997001, -0.4999000, ...]
    # group 2: all equal -> 0
    adv = grpo_group_advantages(REWARDS, 4, "group")
    close(adv, [0.75 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001, 0, 0, 0, 0])


def test_grpo_group_advantages_batch_and_none_scale():
    # batch std: mean 5/8; sum of squares 5*(3/8)^2 + 3*(5/8)^2 = 0.703125 + 1.171875 = 1.875
    # unbiased var 1.875 / 7 = 0.2678571 -> std 0.5175492
    std = math.sqrt(1.875 / 7)
    close(
        grpo_group_advantages(REWARDS, 4, "batch"),
        [c / (std + 1e-4) for c in [0.75, -0.25, -0.25, -0.25]] + [0] * 4,
    )
    close(grpo_group_advantages(REWARDS, 4, "none"), [0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0])
    close(grpo_group_advantages(torch.tensor([1, 0]), 2, "none"), [0.5, -0.5])  # ints accepted


def test_grpo_group_advantages_errors():
    with pytest.raises(ValueError):
        grpo_group_advantages(REWARDS, 3)
    with pytest.raises(ValueError):
        grpo_group_advantages(REWARDS, 1, "group")
    with pytest.raises(ValueError):
        grpo_group_advantages(REWARDS, 4, "rank")  # type: ignore[arg-type]


def test_nan_padding_never_reaches_gradients():
    # where(mask, x, 0) applied after arithmetic would give 0 * nan = nan in backward; the
    # functions must sanitise first. Every valid-position gradient must be finite, padding's 0.
    values = torch.tensor([[1.0, 2.0, NAN], [4.0, NAN, NAN]], requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    total = (
        masked_whiten(values, mask).square().sum()
        + masked_var(values, mask)
        + ppo_value_loss(values, values.detach() + 1, values.detach() * 2, mask)[0]
        + ppo_policy_loss(values, values.detach(), values.detach(), mask)[0]
        + masked_mean(values, mask)
    )
    total.backward()
    assert torch.isfinite(values.grad).all()
    assert values.grad[0, 2] == 0 and values.grad[1, 1] == 0 and values.grad[1, 2] == 0
