"""Statistics for the report: paired deltas over seeds x items, macro averages, Holm, trends.

**One estimand.** Every overall or domain number the report shows is a *mean over tasks* (each
task the mean over its items), as the GURU paper averages, with one seed or several, so a 20-item
task weighs as much as a 200-item one.

**Two kinds of claim.** A difference between two evaluated checkpoints varies with the items the
suite drew and, if it is read as a statement about two *training configurations*, with the
training seed too. :func:`macro_deltas` estimates both parts for the crossed design the report
has (every seed answers the same items) by variance components, not by resampling seeds and then
items of the same matrix (which counts each seed's item noise twice), and labels each delta with
the claim its variance supports: ``checkpoint`` (one seed per side, no declared seed variance) or
``configuration`` (seed variance estimated from the seeds, or declared by the experiment).
bench/stats_error_rates.py measures coverage, power and false positives by simulation with
training-seed variance in every null.

**Tests and multiplicity.** Each delta's p-value and CI come from the same standard error and
Student's t (``point +- t * se``), so "the CI excludes 0" and "p < alpha" are the same statement;
:func:`holm` adjusts a family. A single task's paired delta (:func:`paired_bootstrap_delta`) and
the macro average's CIs (:func:`macro_average`) take their standard error from a bootstrap over
items.

Everything here is numpy-only (no scipy: analysis jobs run on slim CPU images) and deterministic
given ``seed``. Non-finite item scores (NaN: a missing or failed item) are dropped and the drop is
stated (``Delta.caveats``), never counted as 0.
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
    "CHECKPOINT",
    "CONFIGURATION",
    "DELTA_METHOD",
    "macro_deltas",
    "seeds_for_power",
    "paired_bootstrap_delta",
    "student_t_cdf",
    "student_t_ppf",
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
    """A paired difference ``mean(a) - mean(b)`` with its CI and p-value.

    The ``1 - alpha`` CI is ``delta ± t_{1-alpha/2, df} * se`` and ``p_value`` the two-sided p of
    ``delta / se`` under Student's t with ``df``, so ``significant`` (``p_value < alpha``) and "the
    CI excludes 0" always agree. This is one test, uncorrected: families of tests are corrected
    with :func:`holm`. ``level`` says what the delta is a claim about (:data:`CHECKPOINT` or
    :data:`CONFIGURATION`), ``seed_source`` where its seed variance ``seed_var`` came from
    (``"seeds"``, ``"declared"`` or None), ``caveats`` what was left out and why. Undefined
    comparisons (fewer than 2 items) have NaN CI/p and ``significant=False``.
    """

    delta: float
    lo: float
    hi: float
    p_value: float
    significant: bool
    se: float = NAN
    n_items: int = 0
    n_seeds: tuple[int, int] = (1, 1)
    df: int = 0
    level: str = "checkpoint"
    seed_source: str | None = None
    seed_var: float = NAN
    caveats: tuple[str, ...] = ()


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


def t_p(point: float, se: float, df: int) -> float:
    """Two-sided p of ``point / se`` under Student's t with ``df``; a zero ``se`` gives 0 or 1."""
    if not (math.isfinite(point) and math.isfinite(se)):
        return NAN
    if se <= 0.0:
        return 1.0 if point == 0.0 else 0.0
    return min(1.0, 2.0 * (1.0 - student_t_cdf(abs(point) / se, df)))


def undefined_delta(
    point: float, n_items: int, n_seeds: tuple[int, int] = (1, 1), caveats: tuple[str, ...] = ()
) -> Delta:
    """A comparison with no CI (too few items): NaN CI and p, never significant."""
    return Delta(float(point), NAN, NAN, NAN, False, NAN, n_items, n_seeds, caveats=caveats)


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
        return undefined_delta(NAN, 0)
    point = float(d.mean())
    if n == 1:
        return undefined_delta(point, 1)
    boots = resampled_means(np.random.default_rng(seed), d, int(n_boot))
    se = float(np.std(_unbiased(point, boots, n), ddof=1))
    return _delta(point, se, n - 1, alpha, n, (1, 1), CHECKPOINT, None, NAN, ())


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


#: What a delta is a claim about. ``checkpoint``: these evaluated checkpoints (one training run
#: each), on the population of items the suite samples; the training seed's variance is not in
#: the CI. ``configuration``: the training configurations, seed-to-seed variance included
#: (estimated from the experiment's seeds or declared in ``statistics.seed_sd``).
CHECKPOINT, CONFIGURATION = "checkpoint", "configuration"

#: How :func:`macro_deltas` builds its intervals, in words the report quotes.
DELTA_METHOD = (
    "crossed seeds x items variance components (paired over items; seed variance pooled over both "
    "sides, net of the item noise in each seed's mean), Student's t on the seeds' degrees of freedom "
    "(the items' with one seed a side)"
)


@dataclass(frozen=True)
class _Side:
    """One arm's ``[seeds, items]`` scores of one task, reduced to what the variance needs."""

    item_means: np.ndarray  # [items]: mean over seeds
    seed_means: np.ndarray  # [seeds]: mean over items
    resid_ms: float  # seeds x items interaction mean square (NaN with one seed)


def _side(x: np.ndarray) -> _Side:
    s, n = x.shape
    if n == 0:
        return _Side(np.zeros(0), np.full(s, NAN), NAN)
    seed_means = x.mean(axis=1)
    item_means = x.mean(axis=0)
    resid_ms = NAN
    if s > 1 and n > 1:
        r = x - seed_means[:, None] - item_means[None, :] + x.mean()
        resid_ms = float((r * r).sum() / ((s - 1) * (n - 1)))
    return _Side(item_means, seed_means, resid_ms)


def _point(a: _Side, b: _Side) -> float:
    """A task's delta: the difference of its seed-averaged item means (NaN with no item)."""
    return float(a.item_means.mean() - b.item_means.mean()) if len(a.item_means) else NAN


def _seed_component(sides: Sequence[Sequence[_Side]], n_items: Sequence[int]) -> tuple[float, float, int]:
    """Seed-to-seed variance of a mean over ``len(n_items)`` tasks, pooled over the sides.

    ``sides[j][t]`` is side j's task t. Per side with s >= 2 seeds: the sample variance of its
    seeds' means over the tasks (s - 1 df), pooled over the sides with weights s - 1 as in a
    one-way ANOVA (one seed variance for the compared configurations). Returns ``(raw, noise,
    df)``: ``raw`` that pooled variance, which *includes* each seed mean's item noise; ``noise``
    the pooled estimate of that item noise, ``interaction / n`` averaged over the tasks (the
    crossed design's expected mean squares: the seeds x items residual mean square estimates the
    interaction with ``(s - 1)(n - 1)`` df). ``(nan, nan, 0)`` when no side has two seeds.
    """
    raw = noise = 0.0
    df = 0
    k = len(n_items)
    for tasks in sides:
        s = len(tasks[0].seed_means)
        if s < 2:
            continue
        means = np.mean([t.seed_means for t in tasks], axis=0)
        raw += (s - 1) * float(np.var(means, ddof=1))
        noise += (s - 1) * sum(t.resid_ms / n for t, n in zip(tasks, n_items, strict=True)) / (k * k)
        df += s - 1
    return (raw / df, noise / df, df) if df else (NAN, NAN, 0)


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
    *,
    alpha: float = 0.05,
    seed_sd: float | None = None,
    b_fixed: bool = False,
) -> MacroDeltas:
    """``a - b`` as a mean over tasks, per task, per group and overall, for seeds x items crossed.

    ``a[task]`` is ``[seeds_a, items]`` (or ``[items]`` for one seed), ``b[task]`` likewise, the
    same items in the same order on both sides (every seed answers the same items: seeds and items
    are *crossed*). The model of one side's task is ``y[s, i] = mu + seed[s] + item[i] + e[s, i]``
    and a difference's variance has two parts:

    * **items** -- the variance over items of the seed-averaged paired difference ``d_i``, over n:
      ``var(d) / n``. It holds the items' disagreement and each side's interaction noise
      ``e / s`` exactly once;
    * **seeds** -- ``sigma_seed^2 * (1 / s_a + 1 / s_b)``, with ``sigma_seed^2`` the variance of a
      seed's mean over the chosen tasks *net of its item noise* (:func:`_seed_component`), pooled
      over both sides. Resampling seeds and then items of the same matrix (the old hierarchical
      bootstrap) counted every seed's item noise twice and gave CIs about twice too wide.

    Degrees of freedom: the seeds' (``s_a + s_b - 2``, pooled) when the seed part is estimated --
    exact when the seed-mean spread dominates, conservative when the items' disagreement does --
    else the items' (``sum(n_t - 1)``). The test is Student's t, the CI ``delta +- t * se``.

    **Which claim.** With two or more seeds on some side, the seed part is estimated and the
    delta is a claim about *configurations* (``level = "configuration"``). With one seed on each
    side it is not observable: the delta is then a claim about *these two checkpoints* on the
    suite's item population (``level = "checkpoint"``), unless ``seed_sd`` -- the sd of a
    configuration's mean over all tasks across training seeds, declared by the experiment -- is
    given: it then enters the overall ``mean`` (only: it says nothing about one task or domain) as
    a known variance. ``b_fixed``: ``b`` is one fixed model (a base model), with no seed variance.

    **Degenerate input never gives a silent number** (``Delta.caveats`` says what happened):
    items with a NaN on some seed of either side are dropped from that task; a task left with
    fewer than 2 items has an undefined delta (NaN CI, never significant) and is left out of every
    group and of the mean, which are then over the remaining tasks; a group with no task left is
    undefined. Different tasks on the two sides, or a task whose seed count differs from the
    others', raise ``ValueError`` naming it.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if seed_sd is not None and not (math.isfinite(seed_sd) and seed_sd >= 0.0):
        raise ValueError(f"seed_sd must be a finite number >= 0, got {seed_sd}")
    if set(a) != set(b):
        raise ValueError(
            f"different tasks on the two sides: only in a {sorted(set(a) - set(b))}, "
            f"only in b {sorted(set(b) - set(a))}"
        )
    tasks = sorted(a)
    if not tasks:
        raise ValueError("no task to compare")
    groups = {g: sorted(ts) for g, ts in (groups or {}).items()}
    for g, ts in groups.items():
        if not ts or not set(ts) <= set(tasks):
            raise ValueError(f"group {g!r}: tasks {ts} are not a non-empty subset of {tasks}")
    sides: dict[str, tuple[_Side, _Side]] = {}
    n_items: dict[str, int] = {}
    notes: dict[str, list[str]] = {t: [] for t in tasks}
    seeds: tuple[int, int] | None = None
    for t in tasks:
        ma, mb = _seed_matrix(a[t], f"a[{t!r}]"), _seed_matrix(b[t], f"b[{t!r}]")
        if ma.shape[1] != mb.shape[1]:
            raise ValueError(f"task {t!r}: paired items differ in number, {ma.shape[1]} vs {mb.shape[1]}")
        if seeds is None:
            seeds = (ma.shape[0], mb.shape[0])
        elif (ma.shape[0], mb.shape[0]) != seeds:
            raise ValueError(
                f"task {t!r} has {ma.shape[0]} vs {mb.shape[0]} seeds, other tasks {seeds[0]} vs {seeds[1]}: "
                "every task needs the same seeds on each side"
            )
        keep = np.isfinite(ma).all(axis=0) & np.isfinite(mb).all(axis=0)
        dropped = int((~keep).sum())
        if dropped:
            notes[t].append(f"{t}: {dropped} of {len(keep)} items dropped (NaN score on some side or seed)")
        n_items[t] = int(keep.sum())
        if n_items[t] < 2:
            notes[t].append(f"{t}: {n_items[t]} usable item(s), no CI (needs 2); left out of every mean")
        sides[t] = (_side(ma[:, keep]), _side(mb[:, keep]))
    assert seeds is not None
    usable = [t for t in tasks if n_items[t] >= 2]

    def summary(chosen: Sequence[str], declared: float | None) -> Delta:
        caveats = tuple(c for t in chosen for c in notes[t])
        kept = [t for t in chosen if t in usable]
        n_total = sum(n_items[t] for t in kept)
        points = {t: _point(*sides[t]) for t in chosen}
        if not kept:
            finite = all(map(math.isfinite, points.values()))
            return undefined_delta(
                float(np.mean(list(points.values()))) if finite else NAN,
                sum(n_items[t] for t in chosen),
                seeds,
                caveats,
            )
        k = len(kept)
        pt = float(np.mean([points[t] for t in kept]))
        item_var = sum(
            float(np.var(sides[t][0].item_means - sides[t][1].item_means, ddof=1)) / n_items[t] for t in kept
        ) / (k * k)
        item_df = sum(n_items[t] - 1 for t in kept)
        both = [[sides[t][0] for t in kept]] + ([] if b_fixed else [[sides[t][1] for t in kept]])
        raw, noise, seed_df = _seed_component(both, [n_items[t] for t in kept])
        weight = 1.0 / seeds[0] + (0.0 if b_fixed else 1.0 / seeds[1])
        if seed_df:
            # The seed means' spread (raw, s - 1 df each side) carries their item noise; that
            # noise is also in var(d) / n, so it is taken out of the item part, where it is known
            # to thousands of df, and counted once, in the seed part.
            level, source, seed_var = CONFIGURATION, "seeds", max(raw - noise, 0.0)
            seed_part, item_part = raw * weight, max(item_var - noise * weight, 0.0)
        elif declared is not None:
            level, source, seed_var = CONFIGURATION, "declared", declared**2
            seed_part, item_part = seed_var * weight, item_var
        else:
            level, source, seed_var, seed_part, item_part = CHECKPOINT, None, 0.0, 0.0, item_var
        var = item_part + seed_part
        # t on the seeds' df, not Welch-Satterthwaite: with the seed part estimated on a few df,
        # Satterthwaite's df rises exactly when that estimate is low by chance, and the tails thin
        # out -- 2-5x too many p < 0.001 at 3 seeds, which a Holm correction over hundreds of task
        # tests turned into an 11 % family-wise error (tests/analysis/test_seed_claims.py).
        df = seed_df if source == "seeds" else item_df
        return _delta(pt, math.sqrt(var), max(1, df), alpha, n_total, seeds, level, source, seed_var, caveats)

    return MacroDeltas(
        mean=summary(tasks, seed_sd),
        groups={g: summary(ts, None) for g, ts in sorted(groups.items())},
        tasks={t: summary([t], None) for t in tasks},
    )


def _delta(
    point: float,
    se: float,
    df: int,
    alpha: float,
    n_items: int,
    n_seeds: tuple[int, int],
    level: str,
    seed_source: str | None,
    seed_var: float,
    caveats: tuple[str, ...],
) -> Delta:
    """A Delta from its standard error: ``point +- t_{1 - alpha/2, df} * se`` and the t test."""
    if df > _T_NORMAL_DF:
        q, p = NormalDist().inv_cdf(1.0 - alpha / 2.0), normal_p(point, se)
    else:
        q, p = student_t_ppf(1.0 - alpha / 2.0, df), t_p(point, se, df)
    return Delta(
        float(point), point - q * se, point + q * se, p, bool(p < alpha), se, n_items, n_seeds,
        df=df, level=level, seed_source=seed_source, seed_var=seed_var, caveats=caveats,
    )  # fmt: skip


def seeds_for_power(
    delta: float, d: Delta, *, alpha: float = 0.05, power: float = 0.8, max_seeds: int = 64
) -> int | None:
    """Seeds per configuration that would separate two configurations at ``delta`` with ``power``.

    From ``d``'s own variance parts: its seed variance (``d.seed_var``, estimated or declared) and
    its item variance, which more seeds shrink only through the interaction noise (kept fixed
    here: a conservative choice). With s seeds per side the test is t with ``2 (s - 1)`` df (pooled)
    and power ``P(|T| > t_crit)`` is computed by the normal shift approximation. ``None`` when ``d``
    has no seed variance (a checkpoint-level delta), ``delta`` is 0 or more than ``max_seeds`` are
    needed.
    """
    if d.level != CONFIGURATION or not (math.isfinite(delta) and delta) or not math.isfinite(d.seed_var):
        return None
    weight = 1.0 / d.n_seeds[0] + 1.0 / d.n_seeds[1]
    item_var = max(d.se**2 - d.seed_var * weight, 0.0)
    z_power = NormalDist().inv_cdf(power)
    for s in range(2, max_seeds + 1):
        se = math.sqrt(item_var + 2.0 * d.seed_var / s)
        if se == 0.0 or abs(delta) / se - student_t_ppf(1.0 - alpha / 2.0, 2 * (s - 1)) >= z_power:
            return s
    return None


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
