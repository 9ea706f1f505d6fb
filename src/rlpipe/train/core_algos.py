"""The algorithm maths of rlpipe's own trainers (PPO with a learned critic, diagnostics for GRPO).

Everything here is a small pure function (or a tiny state object for the KL coefficient) so that
each formula can be unit-tested against hand-computed numbers, independently of any trainer,
model or distributed set-up.

Conventions shared by every function:

* Sequence tensors are padded ``[batch, T]`` tensors over the *completion* tokens, with a ``mask``
  of the same shape: 1 where the position is a real completion token, 0 for padding (left, right
  or in the middle, e.g. masked tool output). Padding never contributes to a mean, a variance, a
  return or a loss. Inputs are passed through ``torch.where`` on the mask *before* any arithmetic,
  so even ``nan``/``inf`` garbage at padded positions (e.g. log-probs of pad tokens) leaks neither
  into the results nor into the gradients (``0 * nan`` in a backward pass would be ``nan``).
* Outputs that are defined per token are 0 at padded positions.
* Losses use *token-mean* aggregation: the mean over all completion tokens of the batch, so every
  token weighs the same whatever the length of its completion.
* Statistics returned next to a loss (clip fractions, approximate KL) are detached 0-d tensors:
  calling ``.item()`` is left to the caller so that no device sync is forced per micro-batch.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

KLKind = Literal["k1", "k2", "k3", "abs"]
AdvantageScale = Literal["group", "batch", "none"]

# Log-ratios are clamped before ``exp`` so that one wildly off-policy token yields a large but
# finite number instead of ``inf`` (whose gradient would be ``nan`` for the whole batch).
_LOG_RATIO_CLAMP = 20.0


def _valid(mask: Tensor) -> Tensor:
    """The mask as booleans (a float mask of 0/1 is the common input)."""
    return mask.bool() if mask.dtype != torch.bool else mask


def _zero_pad(values: Tensor, mask: Tensor) -> Tensor:
    """``values`` with padded positions replaced by 0 (``where``, so ``nan`` there is dropped too)."""
    return torch.where(_valid(mask), values, torch.zeros((), dtype=values.dtype, device=values.device))


def masked_sum(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of ``values`` over the positions where ``mask`` is 1 (over all elements if ``dim`` is None)."""
    kept = _zero_pad(values, mask)
    return kept.sum() if dim is None else kept.sum(dim=dim)


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``values`` over the positions where ``mask`` is 1 (computed in float32 at least).

    An empty selection (all-padding row or batch) gives 0 rather than ``nan``: a micro-batch whose
    completions were all masked out (e.g. truncated ones) must add nothing to a loss, not poison it.
    """
    if not values.is_floating_point() or values.dtype in (torch.float16, torch.bfloat16):
        values = values.float()  # half-precision sums/counts lose integers above 256 (bf16)
    total = masked_sum(values, mask, dim)
    count = _valid(mask).to(total.dtype)
    count = count.sum() if dim is None else count.sum(dim=dim)
    return torch.where(count > 0, total / count.clamp_min(1.0), torch.zeros_like(total))


def masked_var(values: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of ``values`` over the positions where ``mask`` is 1 (all of the batch at once).

    With ``unbiased`` the Bessel correction ``n / (n - 1)`` is applied. Fewer than two valid
    elements give 0: there is no spread to measure, and 0 makes ``masked_whiten`` merely centre.
    """
    values = _zero_pad(values, mask)
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        n = _valid(mask).sum().to(var.dtype)
        var = torch.where(n > 1, var * n / (n - 1).clamp_min(1.0), torch.zeros_like(var))
    return var


def masked_whiten(values: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Normalise ``values`` to unit variance (and zero mean) over the valid positions of the batch.

    Used on PPO advantages: whitening makes the step size independent of the reward scale.
    ``shift_mean=False`` keeps the original mean (only rescales), which is what one wants for
    quantities whose sign carries meaning, e.g. rewards fed to the critic. The variance is the
    unbiased one. Padded positions are 0 in the output.
    """
    values = _zero_pad(values, mask)
    mean = masked_mean(values, mask)
    var = masked_var(values, mask, unbiased=True)
    whitened = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return _zero_pad(whitened, mask)


@torch.no_grad()
def compute_gae(
    token_rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Token-level Generalised Advantage Estimation (Schulman et al. 2016), right to left.

    For valid tokens t with next valid token t' (none after the last one, whose bootstrap value is
    0 because the completion is over)::

        delta_t = r_t + gamma * V(t') - V(t)
        A_t     = delta_t + gamma * lam * A(t')
        R_t     = A_t + V(t)                 (the critic's regression target)

    Padded positions are *skipped*, not treated as zero-reward steps: their reward and value are
    ignored, and the recursion links each valid token to the next valid one, so padding never leaks
    into an advantage whatever its placement. Advantages and returns are 0 at padded positions.
    Computed without gradient: these are targets, the critic must not be trained through them.

    Returns ``(advantages, returns)``, both ``[batch, T]``.
    """
    valid = _valid(mask)
    rewards = _zero_pad(token_rewards, mask)
    vals = _zero_pad(values, mask).to(rewards.dtype)
    batch, length = rewards.shape
    next_value = torch.zeros(batch, dtype=rewards.dtype, device=rewards.device)
    next_adv = torch.zeros_like(next_value)
    advantages = torch.zeros_like(rewards)
    for t in range(length - 1, -1, -1):
        delta = rewards[:, t] + gamma * next_value - vals[:, t]
        adv = delta + gamma * lam * next_adv
        here = valid[:, t]
        advantages[:, t] = torch.where(here, adv, torch.zeros_like(adv))
        next_value = torch.where(here, vals[:, t], next_value)
        next_adv = torch.where(here, adv, next_adv)
    returns = _zero_pad(advantages + vals, mask)
    return advantages, returns


def place_terminal_reward(scores: Tensor, mask: Tensor) -> Tensor:
    """Token rewards that are 0 everywhere except ``scores[b]`` at row b's last completion token.

    A rule-based scorer grades the whole completion; putting its score on the final token (the one
    whose action ended the episode) is the standard sparse-reward placement for token-level PPO.
    "Last" is the last position where ``mask`` is 1, so left or right padding both work. A row
    without any completion token gets no reward at all (its score is dropped, as there is no
    action to credit it to).
    """
    valid = _valid(mask)
    length = mask.shape[-1]
    positions = torch.arange(length, device=mask.device).expand_as(valid)
    last = torch.where(valid, positions, torch.full_like(positions, -1)).amax(dim=-1)
    scores = scores.to(torch.float32) if not scores.is_floating_point() else scores
    rewards = torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device)
    rows = torch.nonzero(last >= 0, as_tuple=True)[0]
    rewards[rows, last[rows]] = scores[rows]
    return rewards


def kl_penalty(logprob: Tensor, ref_logprob: Tensor, kind: KLKind = "k1") -> Tensor:
    """Per-token estimate of KL(policy || reference) from log-probs of tokens sampled from the policy.

    With ``d = logprob - ref_logprob`` (Schulman's "Approximating KL divergence" estimators):

    * ``"k1"``: ``d`` -- unbiased, high variance, can be negative per token.
    * ``"abs"``: ``|d|`` -- biased, non-negative.
    * ``"k2"``: ``d**2 / 2`` -- biased but low variance, non-negative.
    * ``"k3"``: ``exp(-d) - 1 + d`` -- unbiased *and* non-negative, low variance (the "low_var_kl"
      of GRPO). ``-d`` is clamped to +-20 before ``exp`` so a single extreme token stays finite.

    Differentiable with respect to both inputs (use the result as a loss term or, detached, as a
    reward penalty). Padding is the caller's business (mask the result).
    """
    d = logprob - ref_logprob
    if kind == "k1":
        return d
    if kind == "abs":
        return d.abs()
    if kind == "k2":
        return 0.5 * d.square()
    if kind == "k3":
        neg = (-d).clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
        return torch.exp(neg) - 1.0 - neg
    raise ValueError(f"unknown KL estimator {kind!r}; expected one of k1, k2, k3, abs")


def kl_reward_shaping(token_rewards: Tensor, kl: Tensor, coef: float, mask: Tensor | None = None) -> Tensor:
    """Rewards with the KL to the reference subtracted per token: ``r_t - coef * kl_t``.

    This is the InstructGPT/Ziegler way of keeping the policy near the reference: the penalty is
    part of the return, so GAE spreads it over the preceding tokens. ``kl`` is detached (a reward is
    never differentiated). With ``mask``, padded positions are 0 in the output.
    """
    shaped = token_rewards - coef * kl.detach()
    return shaped if mask is None else _zero_pad(shaped, mask)


class FixedKLController:
    """A constant KL coefficient, with the same interface as ``AdaptiveKLController``."""

    def __init__(self, kl_coef: float) -> None:
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Nothing to adapt; present so trainers can call ``update`` unconditionally."""

    def state_dict(self) -> dict[str, float]:
        """The coefficient, for checkpointing alongside the optimizer."""
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore the coefficient saved by ``state_dict``."""
        self.value = float(state["value"])


class AdaptiveKLController:
    """Adaptive KL coefficient of Ziegler et al. 2019 ("Fine-Tuning LMs from Human Preferences").

    A proportional controller steering the observed KL toward ``target``::

        e     = clip(current_kl / target - 1, -0.2, 0.2)
        beta *= 1 + e * n_steps / horizon

    The clip bounds how fast beta moves after one noisy KL measurement; ``horizon`` (in samples or
    steps, whatever unit ``n_steps`` is given in) sets the time scale of the adaptation.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: float) -> None:
        if target <= 0 or horizon <= 0:
            raise ValueError("AdaptiveKLController needs target > 0 and horizon > 0")
        self.value = float(init_kl_coef)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Move the coefficient after observing ``current_kl`` over ``n_steps`` samples/steps."""
        error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict[str, float]:
        """Coefficient and settings, for resuming with the adapted value rather than the initial one."""
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore the coefficient saved by ``state_dict`` (the settings of the saved run win)."""
        self.value = float(state["value"])
        self.target = float(state.get("target", self.target))
        self.horizon = float(state.get("horizon", self.horizon))


def ppo_policy_loss(
    logprob: Tensor,
    old_logprob: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_eps_low: float = 0.2,
    clip_eps_high: float | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """PPO's clipped surrogate loss (Schulman et al. 2017), token-mean over the batch.

    With ``ratio = exp(logprob - old_logprob)``, per token::

        loss_t = max(-A_t * ratio, -A_t * clip(ratio, 1 - clip_eps_low, 1 + clip_eps_high))

    ``clip_eps_high`` defaults to ``clip_eps_low``; a larger one is DAPO's "clip-higher", which
    leaves more room to raise the probability of unlikely tokens and so slows entropy collapse.
    Gradients flow through ``logprob`` only (``old_logprob`` and ``advantages`` are data).

    Returns ``(loss, clip_fraction, approx_kl)``:

    * ``clip_fraction``: share of valid tokens where the clipped term is the active (larger) one,
      i.e. whose gradient is zeroed by the clip;
    * ``approx_kl``: mean k3 estimate of KL(old || new), ``(ratio - 1) - log ratio``, which is
      non-negative and unbiased under samples from the old policy -- the usual early-stop signal.
    """
    if clip_eps_high is None:
        clip_eps_high = clip_eps_low
    old = _zero_pad(old_logprob.detach(), mask)
    adv = _zero_pad(advantages.detach(), mask)
    log_ratio = (_zero_pad(logprob, mask) - old).clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
    ratio = torch.exp(log_ratio)
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip_eps_low, 1.0 + clip_eps_high)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped > unclipped).to(ratio.dtype), mask)
        approx_kl = masked_mean((ratio - 1.0) - log_ratio, mask)
    return loss, clip_fraction, approx_kl


def ppo_value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip_range: float | None = 0.2
) -> tuple[Tensor, Tensor]:
    """Clipped value loss of PPO's reference implementation, token-mean over the batch.

    The new prediction may move at most ``clip_range`` away from the value recorded at rollout
    time; the loss is the *larger* of the clipped and unclipped squared errors, so the clip can
    only remove incentive to move further, never add it::

        v_clip = old_v + clip(v - old_v, -clip_range, clip_range)
        loss   = 0.5 * mean(max((v - R)**2, (v_clip - R)**2))

    ``clip_range=None`` disables the clip (plain 0.5 * MSE). Returns ``(loss, clip_fraction)``,
    ``clip_fraction`` being the share of valid tokens where the clipped error is the larger one.
    """
    values = _zero_pad(values, mask)
    target = _zero_pad(returns.detach(), mask)
    unclipped = (values - target).square()
    if clip_range is None:
        loss = 0.5 * masked_mean(unclipped, mask)
        return loss, torch.zeros((), dtype=loss.dtype, device=loss.device)
    old = _zero_pad(old_values.detach(), mask)
    v_clipped = old + (values - old).clamp(-clip_range, clip_range)
    clipped = (v_clipped - target).square()
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped > unclipped).to(loss.dtype), mask)
    return loss, clip_fraction


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of ``softmax(logits)`` over the last dimension, in nats.

    Computed as ``logsumexp(z) - sum(softmax(z) * z)``, which never forms ``log(p)`` for tiny
    ``p`` and so stays finite for very peaked distributions. ``-inf`` logits (banned tokens) are
    handled: their probability is exactly 0 and they are dropped from the sum.
    """
    logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    probs = torch.softmax(logits, dim=-1)
    finite = torch.where(torch.isfinite(logits), logits, torch.zeros_like(logits))
    return torch.logsumexp(logits, dim=-1) - (probs * finite).sum(dim=-1)


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
    """``1 - Var[returns - values] / Var[returns]`` over valid tokens: how much the critic explains.

    1 is a perfect critic, 0 one no better than a constant, negative one worse than a constant.
    ``nan`` when the returns have no variance (the ratio is undefined; logging ``nan`` is honest).
    """
    values, returns = _zero_pad(values, mask), _zero_pad(returns, mask)
    var_returns = masked_var(returns, mask, unbiased=False)
    var_resid = masked_var(returns - values, mask, unbiased=False)
    nan = torch.full_like(var_returns, math.nan)
    return torch.where(var_returns > 0, 1.0 - var_resid / var_returns.clamp_min(1e-30), nan).detach()


def grpo_group_advantages(
    rewards: Tensor, group_size: int, scale: AdvantageScale = "group", eps: float = 1e-4
) -> Tensor:
    """GRPO's outcome advantages, as TRL computes them, for diagnostics and tests.

    ``rewards`` is ``[N]`` with the ``group_size`` completions of each prompt contiguous. Every
    reward is centred on its group's mean; then divided by ``std + eps`` where std (unbiased) is
    the group's (``"group"``, GRPO), the whole batch's (``"batch"``), or not divided at all
    (``"none"``, Dr. GRPO, which argues the per-group std biases toward too easy/hard prompts).
    A group whose rewards are all equal gets advantage 0: it carries no learning signal.
    """
    if group_size < 1 or rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards cannot be split into groups of {group_size}")
    rewards = rewards.to(torch.float32) if not rewards.is_floating_point() else rewards
    grouped = rewards.view(-1, group_size)
    centred = (grouped - grouped.mean(dim=1, keepdim=True)).reshape(-1)
    if scale == "none":
        return centred
    if scale == "group":
        if group_size < 2:
            raise ValueError("scale='group' needs group_size >= 2 (a single sample has no std)")
        std = grouped.std(dim=1, keepdim=True).expand_as(grouped).reshape(-1)
        return centred / (std + eps)
    if scale == "batch":
        if rewards.numel() < 2:
            raise ValueError("scale='batch' needs at least two rewards")
        return centred / (rewards.std() + eps)
    raise ValueError(f"unknown advantage scale {scale!r}; expected group, batch or none")
