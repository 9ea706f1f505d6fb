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

**One estimand.** Every overall or domain number the report shows is a *mean over tasks* (each
task the mean over its items), as the GURU paper averages: :func:`macro_deltas` estimates exactly
that with one seed or several (seeds are a resampling level above items, never pooled items), so
a 20-item task weighs as much as a 200-item one however many seeds there are.

**Tests and multiplicity.** A delta's p-value and CI come from the bootstrap standard error with
the normal approximation (``point ± z·se``), so "the CI excludes 0" and "p < alpha" are the same
statement, and p-values are fine-grained enough for a Holm correction over hundreds of tests
(a percentile-bootstrap p cannot go below ``2 / (n_boot + 1)``). :func:`holm` adjusts a family.

Everything here is numpy-only (no scipy: analysis jobs run on slim CPU images) and deterministic
given ``seed``. Non-finite item scores (NaN: a missing or failed item) are dropped, never counted
as 0 -- callers that want "failed = wrong" must fill them first.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from rlpipe.eval.estimates import (
    BLOCK_ELEMENTS,
    CI,
    NAN,
    check_boot,
    ci_from_boot,
    finite_1d,
    resampled_means,
)

__all__ = [
    "CI",
    "Delta",
    "MacroAverage",
    "Trend",
    "holm",
    "macro_average",
    "macro_deltas",
    "paired_bootstrap_delta",
    "student_t_cdf",
    "student_t_ppf",
    "residual_ar1",
    "trend_slope",
    "trend_slope_ar1",
]

#: Above this many degrees of freedom Student's t is replaced by the standard normal: the
#: difference in the 97.5% quantile is < 2e-5, far below any reported precision.
_T_NORMAL_DF = 100_000


class Trend(NamedTuple):
    """An OLS slope (units of ``values`` per unit of ``steps``), its CI and two-sided p-value."""

    slope: float
    lo: float
    hi: float
    p: float


@dataclass(frozen=True)
class Delta:
    """A paired difference ``mean(a) - mean(b)`` with its bootstrap CI and p-value.

    ``se`` is the standard deviation of the bootstrap replicates (spread by ``sqrt(n / (n - 1))``
    per task, see ``_unbiased``); the ``1 - alpha`` CI is ``delta ± t_{1-alpha/2, df} * se`` and
    ``p_value`` the two-sided p of ``delta / se`` under Student's t (``df`` = items - tasks), so
    ``significant`` (``p_value < alpha``) and "the CI excludes 0" always agree. This is one test,
    uncorrected: families of tests are corrected with :func:`holm`. Undefined comparisons (fewer
    than 2 items) have NaN CI/p and ``significant=False``.
    """

    delta: float
    lo: float
    hi: float
    p_value: float
    significant: bool
    se: float = NAN
    n_items: int = 0
    n_seeds: tuple[int, int] = (1, 1)


@dataclass(frozen=True)
class MacroAverage:
    """Mean over tasks (each the mean of its items), with every domain's mean of its tasks.

    ``mean/se/lo/hi`` are for the overall mean over tasks; ``domains`` and ``tasks`` hold the same
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


def normal_p(point: float, se: float) -> float:
    """Two-sided p of ``point / se`` under the standard normal; a zero ``se`` gives 0 or 1."""
    if not (math.isfinite(point) and math.isfinite(se)):
        return NAN
    if se <= 0.0:
        return 1.0 if point == 0.0 else 0.0
    return math.erfc(abs(point) / se / math.sqrt(2.0))


def _delta_from_boot(
    point: float,
    boots: np.ndarray,
    alpha: float,
    n_items: int,
    n_seeds: tuple[int, int],
    df: int | None = None,
) -> Delta:
    """A Delta from bootstrap replicates: ``se`` their sd, the test Student's t with ``df`` (normal
    when None). With few items per task the studentised delta has heavier tails than the normal,
    which matters at the small levels a Holm correction over hundreds of tests asks for."""
    se = float(np.std(boots, ddof=1)) if len(boots) > 1 else NAN
    if df is None or df > _T_NORMAL_DF:
        q = NormalDist().inv_cdf(1.0 - alpha / 2.0)
        p = normal_p(point, se)
    else:
        q = student_t_ppf(1.0 - alpha / 2.0, df)
        p = t_p(point, se, df)
    half = q * se
    return Delta(float(point), point - half, point + half, p, bool(p < alpha), se, n_items, n_seeds)


def t_p(point: float, se: float, df: int) -> float:
    """Two-sided p of ``point / se`` under Student's t with ``df``; a zero ``se`` gives 0 or 1."""
    if not (math.isfinite(point) and math.isfinite(se)):
        return NAN
    if se <= 0.0:
        return 1.0 if point == 0.0 else 0.0
    return min(1.0, 2.0 * (1.0 - student_t_cdf(abs(point) / se, df)))


def _undefined_delta(point: float, n_items: int, n_seeds: tuple[int, int] = (1, 1)) -> Delta:
    return Delta(float(point), NAN, NAN, NAN, False, NAN, n_items, n_seeds)


# --------------------------------------------------------------------------------------------
# means and pass@k


# --------------------------------------------------------------------------------------------
# paired comparisons


def paired_bootstrap_delta(
    a: ArrayLike, b: ArrayLike, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> Delta:
    """Paired bootstrap of ``mean(a) - mean(b)`` over items (``a[i]`` and ``b[i]`` = same item).

    1-D item scores of one task and one seed; items where either side is NaN are dropped.
    Positive delta means ``a`` scored higher. Several tasks or seeds: :func:`macro_deltas`.
    """
    check_boot(n_boot, alpha)
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if xa.shape != xb.shape or xa.ndim != 1:
        raise ValueError(f"paired scores need the same 1-D items: shapes {xa.shape} vs {xb.shape}")
    keep = np.isfinite(xa) & np.isfinite(xb)
    d = xa[keep] - xb[keep]
    n = len(d)
    if n == 0:
        return _undefined_delta(NAN, 0)
    point = float(d.mean())
    if n == 1:
        return _undefined_delta(point, 1)
    boots = resampled_means(np.random.default_rng(seed), d, int(n_boot))
    return _delta_from_boot(point, _unbiased(point, boots, n), alpha, n, (1, 1), df=n - 1)


def _unbiased(point: float, boots: np.ndarray, n: int) -> np.ndarray:
    """Replicates spread by ``sqrt(n / (n - 1))``: the bootstrap variance of a mean of n values is
    ``(n - 1) / n`` times the unbiased one (too narrow for the 20-50 item tasks of some suites)."""
    return point + math.sqrt(n / (n - 1)) * (boots - point) if n > 1 else boots


@dataclass(frozen=True)
class MacroDeltas:
    """``a - b`` for every task, every group of tasks and overall (the mean over all tasks)."""

    mean: Delta
    groups: dict[str, Delta]
    tasks: dict[str, Delta]


def _seed_matrix(x: ArrayLike, what: str) -> np.ndarray:
    m = np.asarray(x, dtype=float)
    m = m[None, :] if m.ndim == 1 else m
    if m.ndim != 2:
        raise ValueError(f"{what}: need [seeds, items] or [items] scores, got shape {m.shape}")
    return m


def macro_deltas(
    a: Mapping[str, ArrayLike],
    b: Mapping[str, ArrayLike],
    groups: Mapping[str, Sequence[str]] | None = None,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> MacroDeltas:
    """Hierarchical, stratified, paired bootstrap of ``a - b`` as a mean over tasks.

    ``a[task]`` is ``[seeds_a, items]`` (or ``[items]`` for one seed), ``b[task]`` likewise, the
    same items in the same order on both sides. A seed is one training run evaluated on every
    task, so each replicate resamples the seeds of ``a`` and of ``b`` once for all tasks
    (independently: seed i of one configuration has nothing to do with seed i of another), then
    the items of each task (one index set for both sides: items are paired). A task's delta is
    the difference of its seed-averaged item means; a group's (a domain's) the mean of its tasks';
    ``mean`` the mean over all tasks. One set of replicates serves all of them.

    With several seeds the test is Student's t with Welch-Satterthwaite degrees of freedom
    (``_satterthwaite_df``: about ``seeds_a + seeds_b - 2`` when seeds disagree) and the seed
    deviations are spread to their unbiased size (``_spread_seeds``): with 3 seeds per side and
    seed-to-seed variance, a normal test on the plain bootstrap called 14 % of null comparisons
    significant. A side with one seed has no observable seed variance; the CI then
    covers only the other side's seeds and the items, as it must.

    Items where some seed of either side is NaN are dropped from that task; a task left with
    fewer than 2 items gets an undefined delta and is still averaged by its point estimate.
    """
    check_boot(n_boot, alpha)
    if set(a) != set(b):
        raise ValueError(f"different tasks: {sorted(a)} vs {sorted(b)}")
    tasks = sorted(a)
    if not tasks:
        raise ValueError("no task to compare")
    groups = {g: sorted(ts) for g, ts in (groups or {}).items()}
    for g, ts in groups.items():
        if not ts or not set(ts) <= set(tasks):
            raise ValueError(f"group {g!r}: tasks {ts} are not a non-empty subset of {tasks}")
    xa, xb = {}, {}
    for t in tasks:
        ma, mb = _seed_matrix(a[t], f"a[{t!r}]"), _seed_matrix(b[t], f"b[{t!r}]")
        if ma.shape[1] != mb.shape[1]:
            raise ValueError(f"task {t!r}: paired items differ in number, {ma.shape[1]} vs {mb.shape[1]}")
        keep = np.isfinite(ma).all(axis=0) & np.isfinite(mb).all(axis=0)
        xa[t], xb[t] = _spread_seeds(ma[:, keep]), _spread_seeds(mb[:, keep])
    sa, sb = {xa[t].shape[0] for t in tasks}, {xb[t].shape[0] for t in tasks}
    if len(sa) != 1 or len(sb) != 1:
        raise ValueError(f"every task needs the same seeds on each side: {sorted(sa)} vs {sorted(sb)}")
    seeds = (sa.pop(), sb.pop())
    point = {t: float(xa[t].mean() - xb[t].mean()) if xa[t].shape[1] else NAN for t in tasks}
    n_boot = int(n_boot)
    boots = {t: np.full(n_boot, point[t]) for t in tasks}
    rng = np.random.default_rng(seed)
    largest = max(x.shape[1] for x in xa.values())
    block = max(1, BLOCK_ELEMENTS // max(1, largest + sum(seeds)))
    for start in range(0, n_boot, block):
        m = min(block, n_boot - start)
        wa = _seed_weights(rng.integers(0, seeds[0], size=(m, seeds[0])), seeds[0])  # [m, seeds_a]
        wb = _seed_weights(rng.integers(0, seeds[1], size=(m, seeds[1])), seeds[1])
        for t in tasks:
            n = xa[t].shape[1]
            if n < 2:
                continue
            per_item = wa @ xa[t] - wb @ xb[t]  # [m, items]: seed-resampled per-item difference
            idx = rng.integers(0, n, size=(m, n))
            boots[t][start : start + m] = np.take_along_axis(per_item, idx, axis=1).mean(axis=1)

    boots = {t: _unbiased(point[t], boots[t], xa[t].shape[1]) for t in tasks}

    def summary(chosen: Sequence[str]) -> Delta:
        n_items = sum(xa[t].shape[1] for t in chosen)
        pt = float(np.mean([point[t] for t in chosen]))
        if all(xa[t].shape[1] < 2 for t in chosen) and seeds == (1, 1):
            return _undefined_delta(pt, n_items, seeds)
        replicates = np.mean([boots[t] for t in chosen], axis=0)
        # Items minus strata: n - 1 for one task; many tasks of many items are close to normal.
        df = max(1, n_items - len(chosen))
        if max(seeds) > 1:
            df = _satterthwaite_df(replicates, [xa[t] for t in chosen], [xb[t] for t in chosen], df)
        return _delta_from_boot(pt, replicates, alpha, n_items, seeds, df)

    return MacroDeltas(
        mean=summary(tasks),
        groups={g: summary(ts) for g, ts in sorted(groups.items())},
        tasks={t: summary([t]) for t in tasks},
    )


def _satterthwaite_df(replicates: np.ndarray, a: list[np.ndarray], b: list[np.ndarray], item_df: int) -> int:
    """Degrees of freedom of a delta whose variance is part seed-to-seed, part item sampling.

    The seed part is estimated from the spread of each side's seed means (over the chosen tasks;
    ``sa - 1`` and ``sb - 1`` degrees of freedom), the item part is the rest of the bootstrap
    variance; Welch-Satterthwaite combines them. Identical seeds give the items' df, seeds that
    disagree a lot give about ``sa + sb - 2``: a 3-vs-3 comparison is then judged on t with ~4 df.
    """
    total = float(np.var(replicates, ddof=1))
    parts = []
    for side in (a, b):
        s = side[0].shape[0]
        if s > 1:
            seed_means = np.mean([x.mean(axis=1) for x in side], axis=0)  # [seeds]
            parts.append((float(np.var(seed_means, ddof=1)) / s, s - 1))
    seed_var = sum(v for v, _ in parts)
    item_var = max(total - seed_var, 0.0)
    denominator = sum(v * v / d for v, d in parts) + item_var * item_var / item_df
    if denominator <= 0.0:
        return item_df
    return int(max(1, min(item_df, math.floor((seed_var + item_var) ** 2 / denominator))))


def _spread_seeds(x: np.ndarray) -> np.ndarray:
    """``[seeds, items]`` with each seed's deviation from the seed mean spread by
    ``sqrt(s / (s - 1))``: resampling s seeds underestimates the seed-to-seed variance by
    ``(s - 1) / s`` (a third with 3 seeds). The mean over seeds is unchanged."""
    s = x.shape[0]
    if s < 2:
        return x
    centre = x.mean(axis=0, keepdims=True)
    return centre + math.sqrt(s / (s - 1)) * (x - centre)


def _seed_weights(idx: np.ndarray, s: int) -> np.ndarray:
    """Rows of resampled seed indices -> rows of weights (counts / s) summing to 1."""
    return (idx[:, :, None] == np.arange(s)).sum(axis=1) / s


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values of one family of tests (NaN stays NaN, not counted).

    Rejecting where the adjusted p is below ``alpha`` keeps the family-wise error rate (the
    chance of any false "significant") at ``alpha`` under any dependence between the tests, which
    the report's tests have: every run is compared with the same baseline on the same items.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(len(p), NAN)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    running = 0.0
    for rank, i in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


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
            x = finite_1d(tasks[task], f"scores[{domain!r}][{task!r}]")
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
        task_bt[domain] = {t: resampled_means(rng, x, n_boot) for t, x in tasks.items()}
        dom_pt[domain] = float(np.mean(list(task_pt[domain].values())))
        dom_bt[domain] = np.mean(np.stack(list(task_bt[domain].values())), axis=0)
    macro_pt = float(np.mean([v for tasks in task_pt.values() for v in tasks.values()]))
    macro_bt = np.mean(np.stack([v for tasks in task_bt.values() for v in tasks.values()]), axis=0)
    return macro_pt, macro_bt, dom_pt, dom_bt, task_pt, task_bt


def macro_average(scores: ScoreTree, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> MacroAverage:
    """Macro average of ``scores[domain][task] = item scores`` with a stratified bootstrap CI.

    Task score = mean of its items; domain score = unweighted mean of its tasks; overall =
    unweighted mean of all tasks (the report's one estimand), so a big task cannot drown a small
    one. A domain may map directly to
    item scores (it is then its own single task). The bootstrap resamples items *within* each
    task (strata keep their sizes), and one set of replicates gives the overall, per-domain and
    per-task CIs consistently. A task with a single item contributes no sampling variance.
    """
    check_boot(n_boot, alpha)
    tree = _tree(scores)
    if not tree:
        return MacroAverage(NAN, NAN, NAN, NAN)
    macro_pt, macro_bt, dom_pt, dom_bt, task_pt, task_bt = _stratified(tree, int(n_boot), seed)
    overall = ci_from_boot(macro_pt, macro_bt, alpha)
    return MacroAverage(
        overall.mean,
        overall.se,
        overall.lo,
        overall.hi,
        domains={d: ci_from_boot(dom_pt[d], dom_bt[d], alpha) for d in tree},
        tasks={d: {t: ci_from_boot(task_pt[d][t], task_bt[d][t], alpha) for t in tree[d]} for d in tree},
    )


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
        return NAN
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    if df > _T_NORMAL_DF:
        return 0.5 * (1.0 + math.erf(t / math.sqrt(2.0)))
    mass = _t_two_sided_mass(abs(t), df)
    return 0.5 + 0.5 * mass if t >= 0 else 0.5 - 0.5 * mass


@functools.lru_cache(maxsize=4096)
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
    CI is optimistic -- use :func:`trend_slope_ar1` for verdicts (same slope, robust CI).
    """
    return _trend(steps, values, alpha, autocorrelated=False)[0]


#: AR(1) coefficients used by :func:`trend_slope_ar1` are clipped to this range: beyond 0.97 a
#: 60-step series is indistinguishable from a random walk (n_eff < 1, the test already has 1 df),
#: and below -0.9 the variance would shrink to almost nothing on the strength of one estimate.
AR1_PHI_RANGE = (-0.9, 0.97)

#: How :func:`trend_slope_ar1` builds its interval, in words the report can quote.
TREND_METHOD_AR1 = "OLS slope, AR(1)-corrected standard error, t with n_eff - 2 df"


def _ar1_form(a: np.ndarray, b: np.ndarray, phi: float) -> float:
    """``sum_ij a_i b_j phi^|i - j|`` (``a' R b`` with the AR(1) correlation matrix), O(n^2) in C."""
    n = len(a)
    lags = np.abs(np.arange(-(n - 1), n))
    return float(np.correlate(a, b, mode="full") @ np.power(phi, lags))


def _trend(
    steps: ArrayLike, values: ArrayLike, alpha: float, autocorrelated: bool = True
) -> tuple[Trend, float, int]:
    """:func:`trend_slope_ar1` plus the AR(1) coefficient and the t degrees of freedom it used.

    With ``autocorrelated=False`` the coefficient is fixed at 0, which reduces every formula to
    plain OLS (``x'Rx = Sxx``, ``tr(MR) = n - 2``, ``n - 2`` df): :func:`trend_slope`."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    x, y = np.asarray(steps, dtype=float).ravel(), np.asarray(values, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"steps and values differ in length: {x.shape} vs {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    order = np.argsort(x[keep], kind="stable")  # autocorrelation is along the steps
    x, y = x[keep][order], y[keep][order]
    n = len(x)
    nan = (Trend(NAN, NAN, NAN, NAN), NAN, 0)
    if n < 3:
        return nan
    dx, dy = x - x.mean(), y - y.mean()
    sxx = float(dx @ dx)
    if sxx <= 0.0:
        return nan
    slope = float(dx @ dy) / sxx
    resid = dy - slope * dx
    rss, tss = float(resid @ resid), float(dy @ dy)
    phi = 0.0
    if rss <= 1e-20 * tss:  # exact line up to rounding: report it exactly
        rss = 0.0
    elif autocorrelated and n >= 5:  # the bias correction needs n > 4; with fewer points phi stays 0
        r1 = float(resid[1:] @ resid[:-1]) / rss
        phi = min(max((r1 + 2.0 / n) / (1.0 - 4.0 / n), AR1_PHI_RANGE[0]), AR1_PHI_RANGE[1])
    x_r_x = _ar1_form(dx, dx, phi)
    ones = np.ones(n)
    tr_mr = n - _ar1_form(ones, ones, phi) / n - x_r_x / sxx  # E[RSS] / sigma^2 under AR(1)
    se = math.sqrt(rss / tr_mr * x_r_x) / sxx
    df = int(min(n - 2, max(1, math.floor(n * (1.0 - phi) / (1.0 + phi)) - 2)))
    tq = student_t_ppf(1.0 - alpha / 2.0, df)
    return Trend(slope, slope - tq * se, slope + tq * se, t_p(slope, se, df)), phi, df


def trend_slope_ar1(steps: ArrayLike, values: ArrayLike, alpha: float = 0.05) -> Trend:
    """OLS slope of ``values`` on ``steps`` with an autocorrelation-robust ``1 - alpha`` CI and p.

    Per-step training rewards are autocorrelated (the policy changes slowly, batches overlap in
    difficulty), and :func:`trend_slope`'s independent-residual t-interval is then far too
    narrow: with AR(1) noise of coefficient 0.9 and no trend, 60-step runs get a CI above 0 about
    a third of the time. Here the residuals are modelled as AR(1):

    1. ``phi``: lag-1 autocorrelation ``r1`` of the OLS residuals (in step order), corrected for
       its detrending bias ``E[r1] ~ phi - (2 + 4 phi) / n`` and clipped to
       :data:`AR1_PHI_RANGE` (0 with fewer than 5 points);
    2. ``Var(slope) = sigma^2 x'Rx / Sxx^2`` exactly, with ``R_ij = phi^|i-j|`` over the
       observations in step order and ``sigma^2 = RSS / tr(M R)`` (unbiased under AR(1));
    3. Student's t with ``n_eff - 2`` df, ``n_eff = n (1 - phi) / (1 + phi)`` (at least 1, at
       most ``n - 2``): the variance estimate rests on ``n_eff`` independent-looking points,
       and a strongly autocorrelated series gets a wide interval instead of a false "learning".

    Why this and not the alternatives (bench/trend_power.py: 60 steps, 2000 replicates, share of
    trendless series whose 95 % CI is above 0, nominal 2.5 %): OLS calls 32 % of phi = 0.9 series
    rising, Newey-West (Bartlett, 3 lags) 24 %, fixed-b Newey-West 9-11 %, a t-test on 10
    step-block means 14 %; 4-5 block means hold ~5 % but lose about half the power (17-22 %
    instead of 39 % at the default experiment's trend). This test gives 2.3 / 4.2 / 4.3 % at
    phi = 0 / 0.5 / 0.9 and keeps the OLS power when the noise is independent, which is what the
    default experiment's rewards look like. ``phi`` may come out negative (the interval then
    narrows, as it should).

    Pairs with a non-finite step or value are dropped; degenerate inputs give NaNs and an exact
    line a zero-width interval, as in :func:`trend_slope`. The slope itself is the OLS slope.
    """
    return _trend(steps, values, alpha)[0]


def residual_ar1(steps: ArrayLike, values: ArrayLike) -> float:
    """The bias-corrected, clipped AR(1) coefficient of the detrended ``values`` that
    :func:`trend_slope_ar1` uses (NaN when no trend can be fitted, 0 with fewer than 5 points)."""
    return _trend(steps, values, 0.05)[1]
