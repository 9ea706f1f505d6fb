"""Did a training run learn at all? A verdict from its logged metrics, with the likely causes.

An RL run that "finished" is not one that learned: a scorer that never matches the answer
format, a learning rate of 0, or groups whose samples all get the same reward all produce a
clean log and a useless checkpoint. :func:`diagnose_run` reads the per-step metrics a trainer
logged (TRL GRPO names; PPO adds value/advantage metrics; any key may be absent) and returns

* ``learning`` -- the reward trend is significantly positive *and* large enough to matter;
* ``unstable`` -- something diverged (NaN/inf, exploding gradients, KL blow-up, reward
  collapsing, very high clip ratio, completions drifting to the length cap);
* ``flat``     -- anything else: no demonstrable improvement, with the causes that explain it
  when they can be recognised (reward always 0, identical rewards within every group, no
  gradient, entropy collapse, ...).

``causes`` lists every problem detected, whatever the verdict (for a learning run they are
warnings). The thresholds below are module constants so the report can quote them; rewards are
assumed to live on rlpipe's [0, 1] scale where an absolute threshold is needed.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlpipe.analysis.trend import TREND_METHOD_ROBUST, residual_lag1, trend_slope_robust
from rlpipe.tracking.metrics import read_metrics
from rlpipe.train.thresholds import ZERO_STD_FRAC

__all__ = ["Verdict", "diagnose_metrics_file", "diagnose_run", "format_verdict", "warn_at_run_end"]

# ----------------------------------------------------------------------------------------------
# thresholds (why each value: see the comment above it)

#: Level of the reward trend intervals: every trend check uses the two-sided ``1 - ALPHA`` (95 %)
#: CI of :func:`~rlpipe.analysis.trend.trend_slope_robust` (OLS slope, fixed-b HAC t with
#: Vogelsang's J correction), valid for stationary noise of any autocorrelation and for a random
#: walk. "learning" = CI above 0: a **one-sided test at ALPHA / 2 = 2.5 %** (plus the gain
#: threshold); the "unstable" reward checks look at the other side at :data:`ALPHA_UNSTABLE`. The
#: goal (bench/trend_power.py) is at most 5 % false "learning" and 5 % false "unstable" on
#: trendless runs of 12, 60 and 200 points; the AR(1)-corrected t used before let AR(2) noise
#: and random walks through at 2-3 times that.
ALPHA = 0.05
#: Level of the two reward checks of ``unstable`` (collapse after a peak, steady drop): each is a
#: **one-sided test at ALPHA_UNSTABLE / 2 = 1.25 %** ("the 97.5 % CI lies below 0"), so the two
#: together stay under 2.5 % nominal. Stricter than ALPHA because the collapse check tests the
#: late half only after seeing a dip (peak - late >= REWARD_DROP), which inflates its size: at
#: 2.5 % per check, random walks were called unstable 4-5 % of the time (bench/trend_power.py).
ALPHA_UNSTABLE = 0.025
#: Named in the evidence (``reward_slope_method``) so the report can say how the CI was built.
TREND_METHOD = TREND_METHOD_ROBUST
#: Below this many logged reward values a trend cannot be estimated (t with n-2 df is useless).
MIN_POINTS = 5
#: Early/late windows are the first/last 20% of the logged points (at least one point): long
#: enough to average out step noise, short enough to describe the start and the end.
WINDOW_FRAC = 0.2
#: A significant slope must also amount to at least this much reward over the run (fitted slope x
#: step span): 2 points of accuracy. Even with the AR(1)-corrected CI, a long run can make a
#: negligible drift "significant".
LEARNING_MIN_GAIN = 0.02
#: A smoothed reward curve whose whole range is below this did not move at all.
FLAT_RANGE = 0.02
#: |reward| at or below this at every step counts as "always zero".
ZERO_TOL = 1e-12
#: Median grad norm at or below this: no gradient reaches the weights.
GRAD_ZERO = 1e-8
#: Entropy collapse: the late entropy fell below this fraction of the early one ...
ENTROPY_COLLAPSE_RATIO = 0.1
#: ... or below this absolute value (nats/token): sampling has become (nearly) deterministic, so
#: the k samples of a group stop differing and GRPO loses its signal.
ENTROPY_FLOOR = 0.01
#: Gradient explosion: a step whose grad norm exceeds the run's median by this factor ...
GRAD_SPIKE_FACTOR = 100.0
#: ... or a late-window median grad norm this many times the early-window median.
GRAD_GROWTH_FACTOR = 10.0
#: Late mean KL to the reference (nats/token) above this: the policy ran far from the base; healthy
#: GRPO/PPO runs stay around 1e-3..1e-1.
KL_MAX = 1.0
#: Late mean fraction of tokens whose ratio was clipped above this: updates too large for the
#: trust region (PPO practice aims at ~0.1-0.2).
CLIP_RATIO_HIGH = 0.3
#: Late fraction of completions truncated at the length cap above this is a problem ...
TRUNCATION_HIGH = 0.5
#: ... and an instability when it rose by at least this much during the run (length drift); when
#: it was high from the start the model never stops (EOS / chat template), which is not drift.
TRUNCATION_DRIFT = 0.25
#: Reward collapse: the late-window mean is this far below the smoothed peak (and the late-half
#: slope is significantly negative), or the whole-run fitted change is at least this negative.
#: Larger than LEARNING_MIN_GAIN on purpose: calling a run unstable on a noise-sized dip is worse
#: than missing a small decline, which the report shows anyway.
REWARD_DROP = 0.05
#: Late-window mean explained variance of a PPO value head below this: it predicts returns
#: worse than a constant would.
EXPLAINED_VARIANCE_POOR = 0.0
#: A PPO value loss whose late median is this many times the early median is diverging.
VALUE_LOSS_GROWTH = 10.0
#: ``advantages/std`` at or below this on average: advantages carry no signal.
ADV_STD_ZERO = 1e-8

# metric names, first match wins (TRL GRPO first, then TRL PPOTrainer spellings)
REWARD_KEYS = ("reward", "objective/scores")
KL_KEYS = ("kl", "objective/kl")
ENTROPY_KEYS = ("entropy", "objective/entropy")
CLIP_KEYS = ("clip_ratio/region_mean", "clip_ratio", "policy/clipfrac_avg")
TRUNCATION_KEYS = ("completions/clipped_ratio",)
LENGTH_KEYS = ("completions/mean_length",)
GRAD_KEYS = ("grad_norm",)
LR_KEYS = ("learning_rate",)
LOSS_KEYS = ("loss",)
VALUE_LOSS_KEYS = ("value_loss", "loss/value_avg")
EV_KEYS = ("explained_variance",)
ADV_STD_KEYS = ("advantages/std",)
ADV_MEAN_KEYS = ("advantages/mean",)
ZERO_STD_KEYS = ("frac_reward_zero_std",)
REWARD_STD_KEYS = ("reward_std",)

#: Metrics whose NaN/inf means the run diverged.
_MUST_BE_FINITE = (REWARD_KEYS, GRAD_KEYS, LOSS_KEYS, KL_KEYS, VALUE_LOSS_KEYS, ADV_MEAN_KEYS)

VERDICTS = ("learning", "flat", "unstable")


@dataclass
class Verdict:
    """``verdict`` in :data:`VERDICTS`; ``causes`` human-readable problems (warnings for a
    learning run); ``evidence`` JSON-friendly numbers behind the verdict (None when unknown)."""

    verdict: str
    causes: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# series helpers


@dataclass
class _Series:
    key: str
    steps: np.ndarray  # of finite values
    values: np.ndarray  # finite only
    bad_steps: list[float]  # steps where the value was NaN/inf

    def __len__(self) -> int:
        return len(self.values)

    def early(self) -> float:
        return float(self.values[: _window(len(self))].mean())

    def late(self) -> float:
        return float(self.values[-_window(len(self)) :].mean())

    def early_median(self) -> float:
        return float(np.median(self.values[: _window(len(self))]))

    def late_median(self) -> float:
        return float(np.median(self.values[-_window(len(self)) :]))


def _window(n: int) -> int:
    return max(1, int(round(WINDOW_FRAC * n)))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    return float(value)


def _series(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> _Series | None:
    """The first of ``keys`` logged in any row, as (step, value) sorted by step."""
    for key in keys:
        points = []
        for i, row in enumerate(rows):
            value = _number(row.get(key))
            if value is None:
                continue
            step = _number(row.get("step"))
            points.append((step if step is not None and math.isfinite(step) else float(i), value))
        if points:
            points.sort(key=lambda p: p[0])
            steps = np.array([p[0] for p in points])
            values = np.array([p[1] for p in points])
            ok = np.isfinite(values)
            return _Series(key, steps[ok], values[ok], [float(s) for s in steps[~ok]])
    return None


def _clip_series(rows: Sequence[Mapping[str, Any]]) -> _Series | None:
    """Clip ratio: a region/total key when logged, else TRL's ``low_mean + high_mean``."""
    found = _series(rows, CLIP_KEYS)
    if found is not None:
        return found
    low, high = _series(rows, ("clip_ratio/low_mean",)), _series(rows, ("clip_ratio/high_mean",))
    if low is None or high is None:
        return low or high
    common, il, ih = np.intersect1d(low.steps, high.steps, return_indices=True)
    return _Series("clip_ratio/low_mean+high_mean", common, low.values[il] + high.values[ih], [])


def _smooth(values: np.ndarray) -> np.ndarray:
    """Trailing-free moving average over ~10% of the points: the range/peak of raw per-step
    rewards is mostly noise, that of the smoothed curve is the trend."""
    w = max(1, len(values) // 10)
    if w == 1:
        return values
    return np.convolve(values, np.ones(w) / w, mode="valid")


def _clean(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


# ----------------------------------------------------------------------------------------------
# the diagnosis


def diagnose_run(metrics: Sequence[Mapping[str, Any]]) -> Verdict:
    """Classify a run as learning / flat / unstable from its logged metrics (one dict per step).

    Rows without a metric are skipped for that metric (TRL's end-of-training summary row, eval
    rows), so the metrics.jsonl of :class:`rlpipe.train.callbacks.MetricsFileCallback` can be
    passed as read. Order of decision: any instability sign -> ``unstable``; else a reward
    trend whose 95% CI (robust to any autocorrelation and to random-walk noise,
    :func:`~rlpipe.analysis.trend.trend_slope_robust`) is above 0 -- a one-sided test at 2.5 % --
    and whose fitted gain is at least :data:`LEARNING_MIN_GAIN` -> ``learning``; else ``flat``.
    The reward checks of ``unstable`` (collapse after a peak, steady drop) are one-sided tests
    at 1.25 % each on the same kind of interval (97.5 % CI below 0, :data:`ALPHA_UNSTABLE`).
    """
    rows = [r for r in metrics if isinstance(r, Mapping)]
    evidence: dict[str, Any] = {"n_rows": len(rows)}
    unstable: list[str] = []
    flat: list[str] = []
    warnings: list[str] = []

    # -- divergence: non-finite values -------------------------------------------------------
    for keys in _MUST_BE_FINITE:
        s = _series(rows, keys)
        if s is not None and s.bad_steps:
            evidence[f"{s.key}_nonfinite"] = len(s.bad_steps)
            unstable.append(
                f"{s.key} is NaN/inf at {len(s.bad_steps)} step(s), first at step {s.bad_steps[0]:g}: "
                "the run diverged"
            )

    # -- reward trend ------------------------------------------------------------------------
    reward = _series(rows, REWARD_KEYS)
    learning = False
    if reward is None:
        flat.append("no reward logged: cannot tell whether the run learned")
    elif len(reward):
        learning = _reward_checks(reward, evidence, unstable, flat)

    # -- no signal / no gradient -------------------------------------------------------------
    zero_std = _series(rows, ZERO_STD_KEYS)
    reward_std = _series(rows, REWARD_STD_KEYS)
    identical = False
    if zero_std is not None and len(zero_std):
        evidence["frac_reward_zero_std_mean"] = float(zero_std.values.mean())
        identical = zero_std.values.mean() >= ZERO_STD_FRAC
    elif reward_std is not None and len(reward_std):
        identical = float(np.abs(reward_std.values).max()) <= ZERO_TOL
    if reward_std is not None and len(reward_std):
        evidence["reward_std_mean"] = float(reward_std.values.mean())
    if identical:
        flat.append("every group has identical rewards: GRPO advantages are zero (all right or all wrong)")

    lr = _series(rows, LR_KEYS)
    grad = _series(rows, GRAD_KEYS)
    if lr is not None and len(lr):
        evidence["learning_rate_max"] = float(np.abs(lr.values).max())
    if grad is not None and len(grad):
        evidence["grad_norm_median"] = float(np.median(grad.values))
        evidence["grad_norm_max"] = float(grad.values.max())
    no_gradient = True
    if lr is not None and len(lr) and float(np.abs(lr.values).max()) == 0.0:
        flat.append("learning_rate is 0 at every step: no gradient reaches the weights")
    elif grad is not None and len(grad) and float(np.median(grad.values)) <= GRAD_ZERO:
        flat.append(f"grad_norm ~ 0 (median {np.median(grad.values):.2g}): no gradient reaches the weights")
    else:
        no_gradient = False

    adv_std = _series(rows, ADV_STD_KEYS)
    if adv_std is not None and len(adv_std):
        evidence["advantages_std_mean"] = float(adv_std.values.mean())
        if float(np.abs(adv_std.values).mean()) <= ADV_STD_ZERO:
            flat.append("advantages/std ~ 0: advantages carry no learning signal")

    # -- gradients exploding -----------------------------------------------------------------
    if grad is not None and len(grad) >= 2:
        median = float(np.median(grad.values))
        if median > GRAD_ZERO and grad.values.max() > GRAD_SPIKE_FACTOR * median:
            i = int(np.argmax(grad.values))
            unstable.append(
                f"grad_norm exploded: {grad.values[i]:.3g} at step {grad.steps[i]:g} "
                f"vs median {median:.3g} (> {GRAD_SPIKE_FACTOR:g}x)"
            )
        elif (
            len(grad) >= 4
            and grad.early_median() > GRAD_ZERO
            and grad.late_median() > GRAD_GROWTH_FACTOR * grad.early_median()
        ):
            unstable.append(
                f"grad_norm grew {grad.late_median() / grad.early_median():.3g}x "
                f"({grad.early_median():.3g} -> {grad.late_median():.3g})"
            )

    # -- entropy -----------------------------------------------------------------------------
    entropy = _series(rows, ENTROPY_KEYS)
    if entropy is not None and len(entropy):
        e0, e1 = entropy.early(), entropy.late()
        evidence.update(entropy_first=e0, entropy_last=e1)
        if e0 <= ENTROPY_FLOOR:
            warnings.append(
                f"entropy ~ 0 from the start ({e0:.3g}): sampling is nearly deterministic, "
                "groups cannot differ -- raise the temperature"
            )
        elif len(entropy) >= 2 and (e1 <= ENTROPY_COLLAPSE_RATIO * e0 or e1 <= ENTROPY_FLOOR):
            warnings.append(
                f"entropy collapsed ({e0:.3g} -> {e1:.3g}): the policy became deterministic, "
                "exploration stopped"
            )

    # -- KL ------------------------------------------------------------------------------------
    kl = _series(rows, KL_KEYS)
    if kl is not None and len(kl):
        evidence["kl_last"] = kl.late()
        evidence["kl_max"] = float(kl.values.max())
        if kl.late() > KL_MAX:
            unstable.append(
                f"{kl.key} blew up: {kl.late():.3g} nats/token at the end (> {KL_MAX:g}): "
                "the policy ran away from the reference (reward hacking? raise beta / lower lr)"
            )

    # -- clip ratio ------------------------------------------------------------------------------
    clip = _clip_series(rows)
    if clip is not None and len(clip):
        evidence["clip_ratio_last"] = clip.late()
        if clip.late() > CLIP_RATIO_HIGH:
            unstable.append(
                f"clip ratio very high ({clip.late():.2f} > {CLIP_RATIO_HIGH:g}): updates exceed the "
                "trust region -- lower lr or the number of inner epochs"
            )

    # -- truncation / length drift ---------------------------------------------------------------
    trunc = _series(rows, TRUNCATION_KEYS)
    length = _series(rows, LENGTH_KEYS)
    if length is not None and len(length):
        evidence.update(mean_length_first=length.early(), mean_length_last=length.late())
    if trunc is not None and len(trunc):
        t0, t1 = trunc.early(), trunc.late()
        evidence.update(truncation_first=t0, truncation_last=t1)
        if t1 > TRUNCATION_HIGH and t1 - t0 >= TRUNCATION_DRIFT:
            unstable.append(
                f"completion length drifted to the cap: truncated {t0:.0%} -> {t1:.0%} of completions"
            )
        elif t1 > TRUNCATION_HIGH:
            flat.append(
                f"{t1:.0%} of completions hit the length cap throughout: the model never stops "
                "(check EOS / chat template / max_completion_length)"
            )

    # -- PPO value head ----------------------------------------------------------------------------
    ev = _series(rows, EV_KEYS)
    if ev is not None and len(ev):
        evidence["explained_variance_last"] = ev.late()
        if len(ev) >= 2 and ev.late() < EXPLAINED_VARIANCE_POOR:
            warnings.append(
                f"value head explains no variance (explained_variance {ev.late():.2f} at the end): "
                "advantages are mostly noise"
            )
    vloss = _series(rows, VALUE_LOSS_KEYS)
    if (
        vloss is not None
        and len(vloss) >= 4
        and vloss.early_median() > 0
        and vloss.late_median() > VALUE_LOSS_GROWTH * vloss.early_median()
    ):
        unstable.append(f"value loss diverging ({vloss.early_median():.3g} -> {vloss.late_median():.3g})")

    # -- decision ------------------------------------------------------------------------------------
    if unstable:
        verdict = "unstable"
    elif learning and not no_gradient:  # a reward that rises without any update is not learning
        verdict = "learning"
    else:
        verdict = "flat"
    no_trend = evidence.pop("reward_no_trend", None)
    if verdict == "flat" and no_trend:
        flat.append(no_trend)
    causes = unstable + flat + warnings
    return Verdict(verdict, causes, {k: _jsonable(v) for k, v in evidence.items()})


def _reward_checks(reward: _Series, evidence: dict[str, Any], unstable: list[str], flat: list[str]) -> bool:
    """Reward-based evidence; appends causes; returns whether the reward shows learning."""
    x, y = reward.steps, reward.values
    n = len(y)
    span = float(x[-1] - x[0]) if n else 0.0
    smooth = _smooth(y)
    evidence.update(
        n_steps=n,
        first_step=float(x[0]),
        last_step=float(x[-1]),
        reward_first=reward.early(),
        reward_last=reward.late(),
        reward_min=float(y.min()),
        reward_max=float(y.max()),
        reward_range=float(smooth.max() - smooth.min()),
    )
    if float(np.abs(y).max()) <= ZERO_TOL:
        flat.append("reward always 0: no learning signal -- check the scorer / prompt format / warm-up")
        return False
    if n < MIN_POINTS:
        flat.append(f"only {n} reward value(s) logged: too few to estimate a trend (need {MIN_POINTS})")
        return False
    trend = trend_slope_robust(x, y, alpha=ALPHA)
    gain = trend.slope * span
    evidence.update(
        reward_slope=trend.slope,
        reward_slope_lo=trend.lo,
        reward_slope_hi=trend.hi,
        reward_slope_p=trend.p,
        reward_slope_method=TREND_METHOD,
        reward_resid_ar1=residual_lag1(x, y),
        reward_gain=gain,
    )
    if math.isnan(trend.slope):  # every value logged at the same step
        flat.append(f"all {n} reward values share step {x[0]:g}: no trend can be estimated")
        return False
    if float(y.min()) == float(y.max()):
        flat.append(f"reward constant at {y[0]:.3g}: nothing varies, so nothing is learned")
        return False

    # a collapse after a peak (the overall slope may still be positive)
    peak_i = int(np.argmax(smooth))
    late = reward.late()
    level = f"{1.0 - ALPHA_UNSTABLE:.1%} CI"
    late_half = trend_slope_robust(x[n // 2 :], y[n // 2 :], alpha=ALPHA_UNSTABLE)
    whole = trend_slope_robust(x, y, alpha=ALPHA_UNSTABLE) if ALPHA_UNSTABLE != ALPHA else trend
    if smooth[peak_i] - late >= REWARD_DROP and late_half.hi < 0:
        unstable.append(
            f"reward collapsed: smoothed peak {smooth[peak_i]:.3g} -> {late:.3g} at the end "
            f"(late slope {late_half.slope:+.2g}/step, {level} below 0)"
        )
    elif whole.hi < 0 and -gain >= REWARD_DROP:
        unstable.append(
            f"reward dropping: slope {trend.slope:+.2g}/step, {level} [{whole.lo:+.2g}, {whole.hi:+.2g}], "
            f"{gain:+.3g} over the run"
        )

    if trend.lo > 0 and gain >= LEARNING_MIN_GAIN:
        return True
    if float(smooth.max() - smooth.min()) < FLAT_RANGE:
        evidence["reward_no_trend"] = (
            f"reward did not move: smoothed range {smooth.max() - smooth.min():.3g} < {FLAT_RANGE:g} "
            f"over {n} steps"
        )
    elif trend.lo > 0:
        evidence["reward_no_trend"] = (
            f"reward trend significant but negligible: {gain:+.3g} over the run (< {LEARNING_MIN_GAIN:g})"
        )
    elif trend.hi < 0:
        evidence["reward_no_trend"] = (
            f"reward drifting down: slope {trend.slope:+.2g}/step, "
            f"95% CI [{trend.lo:+.2g}, {trend.hi:+.2g}], {gain:+.3g} over the run"
        )
    else:
        evidence["reward_no_trend"] = "no significant reward trend (the 95% CI of the slope includes 0)"
    return False


def _jsonable(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return _clean(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value


def format_verdict(v: Verdict, name: str | None = None) -> str:
    """One line for logs and the report: verdict, reward movement and the causes, ``; ``-joined."""
    ev = v.evidence
    prefix = f"{name}: " if name else ""
    head = {"learning": "OK, learning", "flat": "WARNING: flat", "unstable": "WARNING: unstable"}.get(
        v.verdict, v.verdict
    )
    parts = []
    if ev.get("reward_first") is not None and ev.get("reward_last") is not None:
        move = (
            f"reward {ev['reward_first']:.3g} -> {ev['reward_last']:.3g} over {ev.get('n_steps', '?')} steps"
        )
        if ev.get("reward_slope") is not None and ev.get("reward_slope_lo") is not None:
            move += (
                f" (slope {ev['reward_slope']:+.2g}/step, 95% CI "
                f"[{ev['reward_slope_lo']:+.2g}, {ev['reward_slope_hi']:+.2g}])"
            )
        parts.append(move)
    parts.extend(v.causes)
    text = f"{prefix}{head}" + (" -- " + "; ".join(parts) if parts else "")
    return " ".join(text.split())


def diagnose_metrics_file(path: str | os.PathLike[str]) -> Verdict:
    """:func:`diagnose_run` on a ``metrics.jsonl`` as the trainers write it (empty file: no rows);
    a value that is not a finite number is an error naming the file and line."""
    return diagnose_run(read_metrics(path))


def warn_at_run_end(
    metrics_path: str | os.PathLike[str], name: str, logger: logging.Logger | None = None
) -> Verdict:
    """Diagnose a finished run and log the verdict: a WARNING unless the run is learning.

    Meant as the last call of a training job (and of the ``diagnose`` rule that runs right after
    it), so a run that silently did nothing says so where its owner looks first.
    """
    verdict = diagnose_metrics_file(metrics_path)
    line = format_verdict(verdict, name)
    (logger or logging.getLogger(__name__)).log(
        logging.INFO if verdict.verdict == "learning" else logging.WARNING, "%s", line
    )
    return verdict
