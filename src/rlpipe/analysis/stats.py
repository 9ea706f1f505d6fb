"""Statistics for the report: bootstrap CIs, pass@k, paired deltas, macro averages and trends.

Why the bootstrap: item scores are bounded and usually binary, benchmarks are small (tens to a few
hundred items) and the quantities the report needs (a macro average over domains of tasks, a
difference between two models on the same items, a difference pooled over training seeds) have no
convenient closed-form variance. A percentile bootstrap over *items* assumes nothing about the
score distribution and extends naturally to those designs:

* paired   -- the same item indices are drawn for both models, so the per-item difficulty cancels
              and the CI reflects only the models' disagreement (far narrower than two separate
              CIs, and the right test for "did B beat A on this benchmark");
* stratified -- items are resampled within each task, so every task keeps its size and the
              macro average keeps its weights;
* hierarchical -- with several training seeds, seeds are resampled first and items second, so
              the CI also covers seed-to-seed variance (a single lucky seed must not "win").

Everything here is numpy-only (no scipy: analysis jobs run on slim CPU images) and deterministic
given ``seed``. Non-finite item scores (NaN: a missing or failed item) are dropped, never counted
as 0 -- callers that want "failed = wrong" must fill them first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "CI",
    "Delta",
    "MacroAverage",
    "Trend",
    "avg_at_k",
    "best_checkpoint",
    "bootstrap_mean_ci",
    "hierarchical_bootstrap_delta",
    "item_pass_at_k",
    "item_scores",
    "macro_average",
    "overfitting_check",
    "overfitting_flag",
    "paired_bootstrap_delta",
    "paired_macro_delta",
    "pass_at_k",
    "student_t_cdf",
    "student_t_ppf",
    "trend_slope",
]

#: Bootstrap replicates are drawn in blocks of at most this many resampled values, so memory stays
#: bounded (~16 MB of indices) whatever the number of items.
_BLOCK_ELEMENTS = 2_000_000

#: A sample "is correct" for pass@k when its score is 1 up to this float tolerance.
CORRECT_TOL = 1e-9

#: Above this many degrees of freedom Student's t is replaced by the standard normal: the
#: difference in the 97.5% quantile is < 2e-5, far below any reported precision.
_T_NORMAL_DF = 100_000

_NAN = float("nan")


class CI(NamedTuple):
    """A mean with its bootstrap standard error and percentile confidence interval."""

    mean: float
    se: float
    lo: float
    hi: float


class Trend(NamedTuple):
    """An OLS slope (units of ``values`` per unit of ``steps``), its CI and two-sided p-value."""

    slope: float
    lo: float
    hi: float
    p: float


@dataclass(frozen=True)
class Delta:
    """A paired difference ``mean(a) - mean(b)`` with its bootstrap CI and p-value.

    ``significant`` is True when the ``1 - alpha`` percentile CI excludes 0. ``p_value`` is the
    two-sided bootstrap p obtained by inverting the same percentile interval
    (``2 * min(P*(delta <= 0), P*(delta >= 0))`` with a +1 correction), so ``p_value < alpha``
    and ``significant`` agree up to that correction. Undefined comparisons (fewer than 2 items)
    have NaN CI/p and ``significant=False``.
    """

    delta: float
    lo: float
    hi: float
    p_value: float
    significant: bool
    se: float = _NAN
    n_items: int = 0
    n_seeds: tuple[int, int] = (1, 1)


@dataclass(frozen=True)
class MacroAverage:
    """Macro average over domains (each the mean of its tasks, each the mean of its items).

    ``mean/se/lo/hi`` are for the overall macro average; ``domains`` and ``tasks`` hold the same
    for every domain and every task (``tasks[domain][task]``), all from one stratified bootstrap.
    """

    mean: float
    se: float
    lo: float
    hi: float
    domains: dict[str, CI] = field(default_factory=dict)
    tasks: dict[str, dict[str, CI]] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# helpers


def _check_boot(n_boot: int, alpha: float) -> None:
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _finite_1d(values: ArrayLike, what: str = "values") -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D item scores, got shape {arr.shape}")
    return arr[np.isfinite(arr)]


def _resampled_means(rng: np.random.Generator, x: np.ndarray, n_boot: int) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement, same size) of the 1-D array ``x``."""
    n = len(x)
    out = np.empty(n_boot)
    block = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, n_boot, block):
        m = min(block, n_boot - start)
        idx = rng.integers(0, n, size=(m, n))
        out[start : start + m] = x[idx].mean(axis=1)
    return out


def _ci_from_boot(point: float, boots: np.ndarray, alpha: float) -> CI:
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    se = float(np.std(boots, ddof=1)) if len(boots) > 1 else _NAN
    return CI(float(point), se, float(lo), float(hi))


def _delta_from_boot(
    point: float, boots: np.ndarray, alpha: float, n_items: int, n_seeds: tuple[int, int]
) -> Delta:
    ci = _ci_from_boot(point, boots, alpha)
    n_boot = len(boots)
    tail = min(int(np.sum(boots <= 0)), int(np.sum(boots >= 0)))
    p = min(1.0, 2.0 * (tail + 1) / (n_boot + 1))
    significant = bool(ci.lo > 0 or ci.hi < 0)
    return Delta(float(point), ci.lo, ci.hi, p, significant, ci.se, n_items, n_seeds)


def _undefined_delta(point: float, n_items: int, n_seeds: tuple[int, int] = (1, 1)) -> Delta:
    return Delta(float(point), _NAN, _NAN, _NAN, False, _NAN, n_items, n_seeds)


# --------------------------------------------------------------------------------------------
# means and pass@k


def bootstrap_mean_ci(values: ArrayLike, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> CI:
    """Mean of item scores with a percentile-bootstrap ``1 - alpha`` CI, resampling items.

    Returns ``CI(mean, se, lo, hi)`` (a NamedTuple, so ``mean, se, lo, hi = ...`` works); ``se``
    is the standard deviation of the bootstrap means. NaNs are dropped. With no finite value
    everything is NaN; with a single item the mean is returned but ``se/lo/hi`` are NaN -- one
    item says nothing about uncertainty, and a zero-width interval would claim certainty.
    """
    _check_boot(n_boot, alpha)
    x = _finite_1d(values)
    if len(x) == 0:
        return CI(_NAN, _NAN, _NAN, _NAN)
    mean = float(x.mean())
    if len(x) == 1:
        return CI(mean, _NAN, _NAN, _NAN)
    boots = _resampled_means(np.random.default_rng(seed), x, int(n_boot))
    return _ci_from_boot(mean, boots, alpha)


def item_scores(sample_scores: ArrayLike) -> np.ndarray:
    """Per-item mean over the k samples of ``sample_scores[items, k]`` (the items of avg@k).

    A 1-D input is taken as one sample per item and returned as floats. NaN samples (ragged k
    padded with NaN) are ignored; an item with no finite sample is NaN.
    """
    arr = np.asarray(sample_scores, dtype=float)
    if arr.ndim == 1:
        return arr.copy()
    if arr.ndim != 2:
        raise ValueError(f"sample_scores must be [items, k], got shape {arr.shape}")
    finite = np.isfinite(arr)
    counts = finite.sum(axis=1)
    sums = np.where(finite, arr, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def avg_at_k(sample_scores: ArrayLike) -> float:
    """avg@k: the mean over items of the per-item mean score of k samples (NaN items dropped).

    Averaging per item first weights every item equally even when some have fewer samples.
    For a CI, use ``bootstrap_mean_ci(item_scores(sample_scores))``.
    """
    per_item = item_scores(sample_scores)
    per_item = per_item[np.isfinite(per_item)]
    return float(per_item.mean()) if len(per_item) else _NAN


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one item from ``n`` samples of which ``c`` are correct (Chen et al. 2021).

    ``1 - C(n - c, k) / C(n, k)``: the probability that k samples drawn without replacement from
    the n contain at least one correct one. Computed as a product
    ``1 - prod_{i=n-c+1..n} (1 - k / i)`` so large n never overflows a binomial coefficient.
    Requires ``0 <= c <= n`` and ``1 <= k <= n``.
    """
    n, c, k = int(n), int(c), int(k)
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"need n >= 1 and 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=float)))


def item_pass_at_k(sample_scores: ArrayLike, k: int) -> np.ndarray:
    """Per-item unbiased pass@k from ``sample_scores[items, n]``; a sample is correct iff score == 1.

    Partial credit (0 < score < 1) is *not* a pass: pass@k asks whether a fully correct answer
    is among k tries. NaN samples are ignored (n is the per-item count of finite samples); items
    with fewer than k finite samples get NaN. Feed the result to ``bootstrap_mean_ci`` for a CI.
    """
    arr = np.asarray(sample_scores, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"sample_scores must be [items, n], got shape {arr.shape}")
    finite = np.isfinite(arr)
    ns = finite.sum(axis=1)
    cs = (finite & (arr >= 1.0 - CORRECT_TOL)).sum(axis=1)
    return np.array([pass_at_k(n, c, k) if n >= k else np.nan for n, c in zip(ns, cs, strict=True)])


# --------------------------------------------------------------------------------------------
# paired comparisons


def paired_bootstrap_delta(
    a: ArrayLike, b: ArrayLike, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> Delta:
    """Paired bootstrap of ``mean(a) - mean(b)`` over items (``a[i]`` and ``b[i]`` = same item).

    1-D inputs are item scores; items where either side is NaN are dropped. 2-D inputs are
    ``[seeds, items]`` and go to :func:`hierarchical_bootstrap_delta` (one seed on both sides
    reduces to the 1-D case). Positive delta means ``a`` scored higher.
    """
    _check_boot(n_boot, alpha)
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if xa.ndim == 2 or xb.ndim == 2:
        xa, xb = np.atleast_2d(xa), np.atleast_2d(xb)
        if xa.shape[0] == 1 and xb.shape[0] == 1:
            xa, xb = xa[0], xb[0]
        else:
            return hierarchical_bootstrap_delta(xa, xb, n_boot=n_boot, alpha=alpha, seed=seed)
    if xa.shape != xb.shape or xa.ndim != 1:
        raise ValueError(f"paired scores need the same items: shapes {xa.shape} vs {xb.shape}")
    keep = np.isfinite(xa) & np.isfinite(xb)
    d = xa[keep] - xb[keep]
    n = len(d)
    if n == 0:
        return _undefined_delta(_NAN, 0)
    point = float(d.mean())
    if n == 1:
        return _undefined_delta(point, 1)
    boots = _resampled_means(np.random.default_rng(seed), d, int(n_boot))
    return _delta_from_boot(point, boots, alpha, n, (1, 1))


def hierarchical_bootstrap_delta(
    a: ArrayLike, b: ArrayLike, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> Delta:
    """Bootstrap of ``mean(a) - mean(b)`` for ``a[seeds_a, items]`` and ``b[seeds_b, items]``.

    Each replicate resamples the seeds of ``a`` and of ``b`` independently (seed i of one
    model has nothing to do with seed i of the other: they are separate training runs), then
    resamples items with one index set shared by both sides (items are paired). The CI thus
    covers both seed-to-seed and item variance. With 2-3 seeds the seed level of the bootstrap
    is coarse (few distinct resamples) -- the CI is honest about that by being wide.

    Items must be complete (no NaN) and the same on both sides. The point estimate is the
    difference of grand means.
    """
    _check_boot(n_boot, alpha)
    xa, xb = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    if xa.ndim != 2 or xb.ndim != 2 or xa.shape[1] != xb.shape[1]:
        raise ValueError(f"need [seeds, items] arrays over the same items: {xa.shape} vs {xb.shape}")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(xb))):
        raise ValueError("hierarchical bootstrap needs complete [seeds, items] scores (found NaN)")
    sa, n = xa.shape
    sb = xb.shape[0]
    seeds = (int(sa), int(sb))
    if n == 0:
        return _undefined_delta(_NAN, 0, seeds)
    point = float(xa.mean() - xb.mean())
    if n == 1 and sa == 1 and sb == 1:
        return _undefined_delta(point, 1, seeds)
    rng = np.random.default_rng(seed)
    n_boot = int(n_boot)
    boots = np.empty(n_boot)
    block = max(1, _BLOCK_ELEMENTS // (n + sa + sb))
    for start in range(0, n_boot, block):
        m = min(block, n_boot - start)
        wa = _seed_weights(rng.integers(0, sa, size=(m, sa)), sa)  # [m, sa]
        wb = _seed_weights(rng.integers(0, sb, size=(m, sb)), sb)
        per_item = wa @ xa - wb @ xb  # [m, items]: seed-resampled per-item difference
        items = rng.integers(0, n, size=(m, n))
        boots[start : start + m] = np.take_along_axis(per_item, items, axis=1).mean(axis=1)
    return _delta_from_boot(point, boots, alpha, int(n), seeds)


def _seed_weights(idx: np.ndarray, s: int) -> np.ndarray:
    """Rows of resampled seed indices -> rows of weights (counts / s) summing to 1."""
    return (idx[:, :, None] == np.arange(s)).sum(axis=1) / s


# --------------------------------------------------------------------------------------------
# macro averages


ScoreTree = Mapping[str, Mapping[str, ArrayLike] | ArrayLike]


def _tree(scores: ScoreTree) -> dict[str, dict[str, np.ndarray]]:
    """Normalise ``domain -> task -> item scores`` (or ``domain -> item scores``), sorted, NaN-free.

    Keys are sorted so the result (and the RNG stream) does not depend on dict order. Tasks
    with no finite item and domains with no task are dropped.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    for domain in sorted(scores):
        tasks = scores[domain]
        if not isinstance(tasks, Mapping):
            tasks = {domain: tasks}
        kept = {}
        for task in sorted(tasks):
            x = _finite_1d(tasks[task], f"scores[{domain!r}][{task!r}]")
            if len(x):
                kept[task] = x
        if kept:
            out[domain] = kept
    return out


def _stratified(tree: dict[str, dict[str, np.ndarray]], n_boot: int, seed: int) -> tuple[Any, ...]:
    """Point estimates and bootstrap replicates of every task, domain and the macro average."""
    rng = np.random.default_rng(seed)
    task_pt: dict[str, dict[str, float]] = {}
    task_bt: dict[str, dict[str, np.ndarray]] = {}
    dom_pt: dict[str, float] = {}
    dom_bt: dict[str, np.ndarray] = {}
    for domain, tasks in tree.items():
        task_pt[domain] = {t: float(x.mean()) for t, x in tasks.items()}
        task_bt[domain] = {t: _resampled_means(rng, x, n_boot) for t, x in tasks.items()}
        dom_pt[domain] = float(np.mean(list(task_pt[domain].values())))
        dom_bt[domain] = np.mean(np.stack(list(task_bt[domain].values())), axis=0)
    macro_pt = float(np.mean(list(dom_pt.values())))
    macro_bt = np.mean(np.stack(list(dom_bt.values())), axis=0)
    return macro_pt, macro_bt, dom_pt, dom_bt, task_pt, task_bt


def macro_average(scores: ScoreTree, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> MacroAverage:
    """Macro average of ``scores[domain][task] = item scores`` with a stratified bootstrap CI.

    Task score = mean of its items; domain score = unweighted mean of its tasks; macro = unweighted
    mean of domains -- so a big task cannot drown a small domain. A domain may map directly to
    item scores (it is then its own single task). The bootstrap resamples items *within* each
    task (strata keep their sizes), and one set of replicates gives the overall, per-domain and
    per-task CIs consistently. A task with a single item contributes no sampling variance.
    """
    _check_boot(n_boot, alpha)
    tree = _tree(scores)
    if not tree:
        return MacroAverage(_NAN, _NAN, _NAN, _NAN)
    macro_pt, macro_bt, dom_pt, dom_bt, task_pt, task_bt = _stratified(tree, int(n_boot), seed)
    overall = _ci_from_boot(macro_pt, macro_bt, alpha)
    return MacroAverage(
        overall.mean,
        overall.se,
        overall.lo,
        overall.hi,
        domains={d: _ci_from_boot(dom_pt[d], dom_bt[d], alpha) for d in tree},
        tasks={d: {t: _ci_from_boot(task_pt[d][t], task_bt[d][t], alpha) for t in tree[d]} for d in tree},
    )


def paired_macro_delta(
    a: ScoreTree, b: ScoreTree, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> Delta:
    """Paired, stratified bootstrap of ``macro(a) - macro(b)`` over the same domains/tasks/items.

    The macro average is linear, so ``macro(a) - macro(b) = macro(a - b)`` item by item: the
    per-item differences are bootstrapped within each task (same items drawn for both models).
    Both trees must have the same domains, tasks and item counts (raises ``ValueError``
    otherwise: comparing on different task sets would silently mislead); items where either
    side is NaN are dropped from that task.
    """
    _check_boot(n_boot, alpha)
    diff: dict[str, dict[str, np.ndarray]] = {}
    if set(a) != set(b):
        raise ValueError(f"different domains: {sorted(a)} vs {sorted(b)}")
    for domain in a:
        ta, tb = a[domain], b[domain]
        ta = ta if isinstance(ta, Mapping) else {domain: ta}
        tb = tb if isinstance(tb, Mapping) else {domain: tb}
        if set(ta) != set(tb):
            raise ValueError(f"domain {domain!r}: different tasks {sorted(ta)} vs {sorted(tb)}")
        diff[domain] = {}
        for task in ta:
            xa, xb = np.asarray(ta[task], dtype=float), np.asarray(tb[task], dtype=float)
            if xa.shape != xb.shape or xa.ndim != 1:
                raise ValueError(
                    f"{domain}/{task}: paired items need equal 1-D shapes, {xa.shape} vs {xb.shape}"
                )
            diff[domain][task] = np.where(np.isfinite(xa) & np.isfinite(xb), xa - xb, np.nan)
    tree = _tree(diff)
    if not tree:
        return _undefined_delta(_NAN, 0)
    n_items = sum(len(x) for tasks in tree.values() for x in tasks.values())
    macro_pt, macro_bt, *_ = _stratified(tree, int(n_boot), seed)
    if all(len(x) < 2 for tasks in tree.values() for x in tasks.values()):
        return _undefined_delta(macro_pt, n_items)
    return _delta_from_boot(macro_pt, macro_bt, alpha, n_items, (1, 1))


# --------------------------------------------------------------------------------------------
# Student's t without scipy


def _t_two_sided_mass(t: float, df: int) -> float:
    """``P(|T| <= t)`` for Student's t with integer ``df``, exactly, for ``t >= 0``.

    Closed-form finite series for integer degrees of freedom (Abramowitz & Stegun 26.7.3-4),
    with ``theta = atan(t / sqrt(df))``:

    * odd df:  ``(2/pi) * (theta + sin(theta) * sum_j u_j)``, ``u_0 = cos(theta)``,
      ``u_j = u_{j-1} * cos^2(theta) * 2j / (2j + 1)``, ``j < (df - 1) / 2`` (empty for df = 1);
    * even df: ``sin(theta) * sum_j v_j``, ``v_0 = 1``, ``v_j = v_{j-1} * cos^2(theta) * (2j - 1) / 2j``,
      ``j < df / 2``.

    The terms are built with a cumulative product (vectorised, exact up to float rounding), so
    no special function or table is needed and the result is accurate to ~1e-15.
    """
    theta = math.atan2(t, math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    c2 = c * c
    if df % 2 == 1:
        m = (df - 1) // 2  # number of cos^(odd) terms
        total = 0.0
        if m > 0:
            j = np.arange(1, m, dtype=float)
            terms = c * np.concatenate(([1.0], np.cumprod(c2 * 2 * j / (2 * j + 1))))
            total = float(terms.sum())
        return min(1.0, (2.0 / math.pi) * (theta + s * total))
    m = df // 2
    j = np.arange(1, m, dtype=float)
    terms = np.concatenate(([1.0], np.cumprod(c2 * (2 * j - 1) / (2 * j))))
    return min(1.0, s * float(terms.sum()))


def _check_df(df: int) -> int:
    if float(df) != int(df) or int(df) < 1:
        raise ValueError(f"df must be a positive integer, got {df}")
    return int(df)


def student_t_cdf(t: float, df: int) -> float:
    """``P(T <= t)`` for Student's t with a positive integer ``df`` (normal beyond 1e5 df)."""
    df = _check_df(df)
    if math.isnan(t):
        return _NAN
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    if df > _T_NORMAL_DF:
        return 0.5 * (1.0 + math.erf(t / math.sqrt(2.0)))
    mass = _t_two_sided_mass(abs(t), df)
    return 0.5 + 0.5 * mass if t >= 0 else 0.5 - 0.5 * mass


def student_t_ppf(q: float, df: int) -> float:
    """Quantile of Student's t: the ``t`` with ``student_t_cdf(t, df) == q``.

    Numerical inverse of the exact CDF by bisection (monotone, so it cannot fail): the bracket
    is doubled until it contains the root, then halved ~100 times to float precision. Agrees
    with printed tables (e.g. 12.706 for q=0.975, df=1; 2.228 for df=10; 1.960 as df -> inf).
    """
    df = _check_df(df)
    if not 0.0 < q < 1.0:
        if q == 0.0:
            return -math.inf
        if q == 1.0:
            return math.inf
        raise ValueError(f"q must be in [0, 1], got {q}")
    if q < 0.5:
        return -student_t_ppf(1.0 - q, df)
    if q == 0.5:
        return 0.0
    lo, hi = 0.0, 2.0
    while student_t_cdf(hi, df) < q and hi < 1e12:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# --------------------------------------------------------------------------------------------
# trends and checkpoints


def trend_slope(steps: ArrayLike, values: ArrayLike, alpha: float = 0.05) -> Trend:
    """OLS slope of ``values`` on ``steps`` with a ``1 - alpha`` t-interval and two-sided p.

    Standard simple regression: ``se = sqrt(RSS / (n - 2) / Sxx)``, CI ``slope +- t_{1-alpha/2,
    n-2} * se``, p from Student's t with ``n - 2`` df (computed here without scipy, see
    :func:`student_t_ppf`). Pairs with a non-finite step or value are dropped. Fewer than 3
    points, or all steps equal, give ``Trend(nan, nan, nan, nan)`` instead of raising: the
    report must survive a run that logged twice. An exact line has a zero-width CI (p = 0, or
    p = 1 for a constant). Assumes independent residuals; for autocorrelated training curves the
    CI is optimistic, so callers should also require a minimum effect size.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    x, y = np.asarray(steps, dtype=float).ravel(), np.asarray(values, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"steps and values differ in length: {x.shape} vs {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = len(x)
    nan4 = Trend(_NAN, _NAN, _NAN, _NAN)
    if n < 3:
        return nan4
    dx, dy = x - x.mean(), y - y.mean()
    sxx = float(dx @ dx)
    if sxx <= 0.0:
        return nan4
    slope = float(dx @ dy) / sxx
    resid = dy - slope * dx
    rss, tss = float(resid @ resid), float(dy @ dy)
    if rss <= 1e-20 * tss:  # exact line up to rounding: report it exactly
        rss = 0.0
    se = math.sqrt(rss / (n - 2) / sxx)
    tq = student_t_ppf(1.0 - alpha / 2.0, n - 2)
    if se == 0.0:
        p = 1.0 if slope == 0.0 else 0.0
    else:
        p = min(1.0, 2.0 * (1.0 - student_t_cdf(abs(slope) / se, n - 2)))
    return Trend(slope, slope - tq * se, slope + tq * se, p)


def best_checkpoint(steps: Sequence[int], scores_per_step: Sequence[ArrayLike]) -> int:
    """The step whose item scores have the highest mean (NaN dropped); ties go to the earliest.

    Preferring the earliest among ties prefers less training (cheaper, less drift from the base).
    Raises ``ValueError`` when no step has a finite mean.
    """
    if len(steps) != len(scores_per_step):
        raise ValueError(f"{len(steps)} steps but {len(scores_per_step)} score arrays")
    best, best_mean = None, -math.inf
    for step, scores in sorted(zip(steps, scores_per_step, strict=True), key=lambda p: p[0]):
        x = np.asarray(scores, dtype=float)
        x = x[np.isfinite(x)]
        if len(x) and float(x.mean()) > best_mean:
            best, best_mean = step, float(x.mean())
    if best is None:
        raise ValueError("no checkpoint has a finite score")
    return int(best)


def overfitting_check(
    steps: Sequence[int],
    scores_per_step: Sequence[ArrayLike],
    best_step: int,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[int, Delta]:
    """``later - best`` paired deltas for every checkpoint after ``best_step``.

    Each later checkpoint is compared with the best on the same items (1-D item scores, or
    ``[seeds, items]``) by :func:`paired_bootstrap_delta` at a Bonferroni level
    ``alpha / m`` (m = number of later checkpoints): with many checkpoints, one would otherwise
    look "significantly worse" by chance. The best step is itself chosen as a maximum, which
    biases the comparison towards "worse"; the correction partly offsets that too.
    """
    if len(steps) != len(scores_per_step):
        raise ValueError(f"{len(steps)} steps but {len(scores_per_step)} score arrays")
    by_step = {int(s): x for s, x in zip(steps, scores_per_step, strict=True)}
    if int(best_step) not in by_step:
        raise ValueError(f"best_step {best_step} is not among the steps {sorted(by_step)}")
    later = sorted(s for s in by_step if s > int(best_step))
    if not later:
        return {}
    level = alpha / len(later)
    best = by_step[int(best_step)]
    return {s: paired_bootstrap_delta(by_step[s], best, n_boot=n_boot, alpha=level, seed=seed) for s in later}


def overfitting_flag(
    steps: Sequence[int],
    scores_per_step: Sequence[ArrayLike],
    best_step: int,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> bool:
    """True when some checkpoint after ``best_step`` is significantly worse than the best.

    "Significantly" = its paired bootstrap CI against the best (Bonferroni-corrected, see
    :func:`overfitting_check`) lies entirely below 0. False when the best is the last step.
    """
    checks = overfitting_check(steps, scores_per_step, best_step, n_boot=n_boot, alpha=alpha, seed=seed)
    return any(d.significant and d.delta < 0 for d in checks.values())
