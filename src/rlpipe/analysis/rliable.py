"""Aggregate metrics of "Deep RL at the Edge of the Statistical Precipice" (Agarwal et al., 2021).

The report's headline is the mean over tasks of each configuration's per-task mean score. With a
handful of training seeds that point estimate hides how much of a difference between two
configurations is seed luck. The paper (and its ``rliable`` library, whose definitions this module
follows; the code is written anew in numpy) adds three things, computed here beside the mean:

* a **stratified bootstrap** over seeds x tasks: every task's runs (seeds) are resampled with
  replacement independently within that task, so each task keeps its number of runs and its weight,
  and the interval reflects seed-to-seed variance only (the tasks are the fixed evaluation suite,
  not a sample -- rliable's default ``task_bootstrap=False``);
* the **interquartile mean** (IQM): the mean of the middle 50 % of all (seed, task) scores pooled
  together. Unlike the median of task means it uses half of all runs, so its CI is much narrower
  than the median's with few seeds; unlike the mean it is not moved by one outlier run or one task
  on which every configuration scores extremely;
* the **probability of improvement** ``P(X > Y)``: per task, the chance that a random run of X
  beats a random run of Y (the Mann-Whitney U statistic over seed pairs divided by their number,
  ties counting 1/2), averaged over tasks. It asks "how often is X better" instead of "by how much
  on average", so one task with a large gain cannot carry it, and it is scale-free per task.

Intervals are percentile intervals of the stratified bootstrap, as rliable's default. Two honest
limits are returned as data, never hidden behind a number:

* a configuration with **one seed** has nothing to resample within a task: every replicate equals
  the observed data, so the "CI" would have zero width. Such a CI is reported as ``lo = hi =
  None`` with a caveat, as is any bootstrap distribution without spread (e.g. every seed scoring
  the same on every task);
* the percentile bootstrap **undercovers with few seeds** (a resample of n runs has (n-1)/n of the
  sample's variance, and the sample's spread itself is noisy). The simulations in
  ``tests/analysis/test_rliable.py`` measure it; with fewer than :data:`FEW_SEEDS` seeds a caveat
  says so.

Everything is numpy-only, vectorised over replicates (drawn in bounded-memory blocks) and
deterministic given ``seed``: each configuration and each pair draws from its own stream keyed by
the seed and its name(s), so adding a configuration does not change another's interval. Scores
must be finite (a NaN is a failed evaluation, and filling it is the caller's decision) and on
comparable scales across tasks (e.g. accuracies in [0, 1]) -- the IQM pools tasks together.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from rlpipe.eval.estimates import BLOCK_ELEMENTS

__all__ = [
    "FEW_SEEDS",
    "MIN_IQM_SCORES",
    "Estimate",
    "improvement_ci",
    "iqm",
    "mean_over_tasks",
    "probability_of_improvement",
    "stratified_bootstrap_ci",
    "summarise",
]

#: The IQM is reported only with at least this many (seed, task) scores. It is a 25 % trimmed mean
#: (rliable's ``trim_mean(scores, 0.25)``: ``floor(n / 4)`` scores cut from each end): below 4
#: scores nothing is cut and the "IQM" is just the mean; with 4-7 a single score is cut per side,
#: so one outlier too many on a side moves it fully. From 8 on at least two scores are cut on each
#: side and at least four remain in the middle, the smallest sample on which the IQM differs in
#: kind from the mean (robust to more than one extreme run per side) -- and the size at which
#: rliable's own examples start (e.g. 3 seeds x 3 tasks).
MIN_IQM_SCORES = 8

#: With fewer seeds than this per configuration a CI carries a caveat: the percentile bootstrap of
#: a handful of runs undercovers. Measured in simulation (tests/analysis/test_rliable.py, 30 tasks,
#: nominal 0.95): the mean's and IQM's CIs cover 0.88 with 3 seeds, 0.91-0.92 with 5, 0.94 with 10;
#: ``P(X > Y)``'s CI is closer to nominal (0.93 with 3 seeds, 0.95 with 5).
FEW_SEEDS = 5


Statistic = Callable[[np.ndarray], np.ndarray]


class Estimate(NamedTuple):
    """A point estimate and its percentile-bootstrap interval.

    ``lo`` and ``hi`` are None when the bootstrap cannot estimate the spread (one seed, or no
    variation between seeds); ``caveat`` then says why, and otherwise flags a known weakness (few
    seeds) or is None.
    """

    point: float
    lo: float | None
    hi: float | None
    caveat: str | None


# ---------------------------------------------------------------------------------------------
# Statistics. Each reduces the last two axes ``[seeds, tasks]`` and keeps any leading replicate
# axes, so one call evaluates a whole block of bootstrap replicates.


def mean_over_tasks(x: ArrayLike) -> np.ndarray | float:
    """The report's headline: the mean over tasks of each task's mean over seeds.

    Every task has the same number of runs within one configuration, so this is the plain mean of
    all ``[seeds, tasks]`` scores.
    """
    arr = np.asarray(x, dtype=float)
    out = arr.mean(axis=(-2, -1))
    return float(out) if out.ndim == 0 else out


def iqm(x: ArrayLike) -> np.ndarray | float:
    """Interquartile mean of all (seed, task) scores pooled: the 25 % trimmed mean.

    Cuts ``floor(n / 4)`` scores from each end of the ``n`` pooled scores and averages the rest
    (as ``scipy.stats.trim_mean(x, 0.25)``, which rliable uses). Why beside the mean: it ignores
    the lowest and highest quarter of runs, so a single diverged seed or a task on which all
    configurations saturate does not dominate, while still averaging half of all runs (far less
    noisy than the median of task means with few seeds). Pooling tasks assumes their scores share
    a scale. See :data:`MIN_IQM_SCORES` for when the result is meaningful.
    """
    arr = np.asarray(x, dtype=float)
    if arr.ndim < 2:
        raise ValueError(f"iqm expects [..., seeds, tasks] scores, got shape {arr.shape}")
    flat = arr.reshape(*arr.shape[:-2], -1)
    n = flat.shape[-1]
    if n == 0:
        raise ValueError("iqm of no scores")
    cut = n // 4
    # Partitioning at both trim points leaves exactly the middle scores between them (in any order).
    middle = np.partition(flat, (cut, n - cut - 1), axis=-1)[..., cut : n - cut]
    out = middle.mean(axis=-1)
    return float(out) if out.ndim == 0 else out


def probability_of_improvement(x: ArrayLike, y: ArrayLike) -> np.ndarray | float:
    """``P(X > Y)`` averaged over tasks: per task, the share of (run of X, run of Y) pairs that X wins.

    A tie counts 1/2 (the Mann-Whitney U statistic divided by ``m * k`` for ``m`` runs of X and
    ``k`` of Y), so identical configurations give exactly 0.5 and ``P(X > Y) + P(Y > X) = 1``.
    Why beside the mean difference: it says how *often* X beats Y rather than by how much on
    average, so one task with a huge gain cannot make up for losing on all others, and it does not
    depend on each task's score scale. It says nothing about the size of an improvement.

    ``x`` is ``[..., m, tasks]``, ``y`` is ``[..., k, tasks]`` (leading replicate axes broadcast).
    """
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.ndim < 2 or ya.ndim < 2 or xa.shape[-1] != ya.shape[-1]:
        raise ValueError(f"expected [..., runs, tasks] arrays with equal tasks, got {xa.shape}, {ya.shape}")
    xs = xa[..., :, None, :]
    ys = ya[..., None, :, :]
    wins = (xs > ys).mean(axis=(-3, -2)) + 0.5 * (xs == ys).mean(axis=(-3, -2))
    out = wins.mean(axis=-1)
    return float(out) if out.ndim == 0 else out


# ---------------------------------------------------------------------------------------------
# Bootstrap


def _check(reps: int, alpha: float) -> None:
    if int(reps) < 2:
        raise ValueError(f"reps must be >= 2, got {reps}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _resample(rng: np.random.Generator, scores: np.ndarray, m: int) -> np.ndarray:
    """``m`` stratified resamples of ``[seeds, tasks]``: seeds drawn with replacement per task."""
    n, t = scores.shape
    idx = rng.integers(0, n, size=(m, n, t))
    return scores[idx, np.arange(t)]


def _interval(point: float, boots: np.ndarray, alpha: float, caveat: str | None) -> Estimate:
    lo, hi = (float(v) for v in np.quantile(boots, [alpha / 2, 1 - alpha / 2]))
    if hi <= lo:
        why = (
            "the bootstrap interval has zero width: (nearly) every replicate gives the point value "
            "(seeds agree within each task, or every run of one configuration beats every run of the "
            "other on every task), so the bootstrap shows no uncertainty; point value only, no CI"
        )
        return Estimate(float(point), None, None, why)
    return Estimate(float(point), lo, hi, caveat)


def _one_seed(*who: str) -> str:
    subject = f"{' and '.join(who)} have one seed each" if len(who) > 1 else f"{who[0]} has one seed"
    return (
        f"{subject}: resampling seeds within a task returns the same data every time, so "
        "seed-to-seed variance is unknown; point value only, no CI"
    )


def _few_seeds(n: int) -> str | None:
    if n >= FEW_SEEDS:
        return None
    return (
        f"only {n} seeds: the percentile bootstrap undercovers with few runs per task "
        "(the interval is likely too narrow)"
    )


def stratified_bootstrap_ci(
    scores: ArrayLike,
    statistic: Statistic,
    reps: int = 2000,
    alpha: float = 0.05,
    rng: np.random.Generator | None = None,
    *,
    name: str = "the configuration",
) -> Estimate:
    """``statistic`` of one configuration's ``[seeds, tasks]`` scores with a stratified-bootstrap CI.

    Each replicate resamples, independently for every task, that task's seeds with replacement, and
    evaluates ``statistic`` (which must reduce the last two axes of a ``[reps, seeds, tasks]``
    block, as :func:`mean_over_tasks` and :func:`iqm` do). The interval is the percentile interval
    ``[alpha/2, 1 - alpha/2]`` of the replicates. With one seed -- or no variation between seeds --
    every replicate is the observed value: then ``lo = hi = None`` and a caveat instead of a
    zero-width interval.
    """
    _check(reps, alpha)
    arr = _as_matrix(scores, "scores")
    rng = np.random.default_rng() if rng is None else rng
    point = float(statistic(arr))
    n, t = arr.shape
    if n < 2:
        return Estimate(point, None, None, _one_seed(name))
    boots = np.empty(reps)
    block = max(1, BLOCK_ELEMENTS // (n * t))
    for start in range(0, reps, block):
        m = min(block, reps - start)
        boots[start : start + m] = statistic(_resample(rng, arr, m))
    return _interval(point, boots, alpha, _few_seeds(n))


def improvement_ci(
    x: ArrayLike,
    y: ArrayLike,
    reps: int = 2000,
    alpha: float = 0.05,
    rng: np.random.Generator | None = None,
    *,
    names: tuple[str, str] = ("X", "Y"),
) -> Estimate:
    """:func:`probability_of_improvement` of X over Y with rliable's CI.

    The CI resamples each configuration's runs independently, stratified by task (rliable's
    ``StratifiedIndependentBootstrap``): X's and Y's seeds are unrelated runs, not pairs. If either
    configuration has a single seed its half of the bootstrap is degenerate -- the CI would show
    only the other's seed variance (and with one seed each, none) -- so the point value comes back
    with no CI and a caveat.
    """
    _check(reps, alpha)
    xa = _as_matrix(x, "x")
    ya = _as_matrix(y, "y")
    if xa.shape[1] != ya.shape[1]:
        raise ValueError(f"x has {xa.shape[1]} tasks and y has {ya.shape[1]}")
    rng = np.random.default_rng() if rng is None else rng
    point = float(probability_of_improvement(xa, ya))
    (m, t), k = xa.shape, ya.shape[0]
    single = [repr(name) for name, n in zip(names, (m, k), strict=True) if n < 2]
    if single:
        return Estimate(point, None, None, _one_seed(*single))
    boots = np.empty(reps)
    block = max(1, BLOCK_ELEMENTS // (m * k * t))
    for start in range(0, reps, block):
        n = min(block, reps - start)
        boots[start : start + n] = probability_of_improvement(_resample(rng, xa, n), _resample(rng, ya, n))
    return _interval(point, boots, alpha, _few_seeds(min(m, k)))


# ---------------------------------------------------------------------------------------------
# Entry point


def _as_matrix(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name!r}: scores must be a non-empty [seeds, tasks] array, got shape {arr.shape}")
    bad = np.argwhere(~np.isfinite(arr))
    if len(bad):
        seed, task = (int(v) for v in bad[0])
        raise ValueError(
            f"{name!r}: non-finite score {arr[seed, task]} at seed {seed}, task index {task} "
            f"({len(bad)} in all); fill or drop failed evaluations before aggregating"
        )
    return arr


def _rng(seed: int, *names: str) -> np.random.Generator:
    """A stream keyed by the seed and the names, independent of which other names are present."""
    keys = [zlib.crc32(name.encode()) for name in names]
    return np.random.default_rng([int(seed), *keys, len(names)])


def _ci_dict(e: Estimate) -> dict[str, float | None]:
    return {"point": e.point, "lo": e.lo, "hi": e.hi}


def _pairs(
    names: Sequence[str], pairs: Sequence[tuple[str, str]] | None, reference: str | None
) -> list[tuple[str, str]]:
    if pairs is not None and reference is not None:
        raise ValueError("give pairs or reference, not both")
    if pairs is None:
        ref = names[0] if reference is None else reference
        if ref not in names:
            raise ValueError(f"reference {ref!r} is not a configuration (have {list(names)})")
        return [(name, ref) for name in names if name != ref]
    out = []
    for pair in pairs:
        x, y = pair
        for name in (x, y):
            if name not in names:
                raise ValueError(f"pair {pair!r}: {name!r} is not a configuration (have {list(names)})")
        if x == y:
            raise ValueError(f"pair {pair!r} compares a configuration with itself")
        out.append((x, y))
    return out


def summarise(
    scores: Mapping[str, ArrayLike],
    *,
    pairs: Sequence[tuple[str, str]] | None = None,
    reference: str | None = None,
    reps: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean, IQM and probability of improvement of each configuration, with stratified-bootstrap CIs.

    ``scores`` maps each configuration to its ``[seeds, tasks]`` scores (same tasks in the same
    order everywhere; seed counts may differ). ``pairs`` lists the ``(x, y)`` comparisons for
    ``P(X > Y)``; without it every configuration is compared with ``reference`` (default: the first
    configuration), as ``(configuration, reference)``.

    Returns plain JSON-able data::

        {"n_tasks": int, "reps": int, "alpha": float, "seed": int,
         "configs": {name: {"n_seeds": int, "n_scores": int,
                            "mean": {"point": float, "lo": float | None, "hi": float | None},
                            "iqm": {"point", "lo", "hi"} | None, "iqm_reason": str | None,
                            "caveat": str | None}},
         "pairs": [{"x": str, "y": str, "p_improve": float, "lo": float | None,
                    "hi": float | None, "caveat": str | None}]}

    ``lo``/``hi`` are None where the bootstrap is degenerate (one seed, or no spread), with the
    reason in ``caveat``; ``iqm`` is None below :data:`MIN_IQM_SCORES` scores, with ``iqm_reason``.
    """
    _check(reps, alpha)
    if not scores:
        raise ValueError("no configurations")
    mats = {str(name): _as_matrix(values, str(name)) for name, values in scores.items()}
    tasks = {name: m.shape[1] for name, m in mats.items()}
    if len(set(tasks.values())) > 1:
        raise ValueError(f"configurations have different task counts: {tasks}")
    names = list(mats)

    configs: dict[str, dict[str, Any]] = {}
    for name, mat in mats.items():
        rng = _rng(seed, name)
        mean = stratified_bootstrap_ci(mat, mean_over_tasks, reps, alpha, rng, name=repr(name))
        entry: dict[str, Any] = {
            "n_seeds": int(mat.shape[0]),
            "n_scores": int(mat.size),
            "mean": _ci_dict(mean),
            "iqm": None,
            "iqm_reason": None,
            "caveat": mean.caveat,
        }
        if mat.size < MIN_IQM_SCORES:
            entry["iqm_reason"] = (
                f"{mat.size} (seed, task) scores < {MIN_IQM_SCORES}: too few for the 25 % trims "
                "to make the IQM differ from the mean"
            )
        else:
            middle = stratified_bootstrap_ci(mat, iqm, reps, alpha, rng, name=repr(name))
            entry["iqm"] = _ci_dict(middle)
            if middle.caveat not in (None, mean.caveat):
                entry["caveat"] = "; ".join(c for c in (mean.caveat, f"IQM: {middle.caveat}") if c)
        configs[name] = entry

    compared = []
    for x, y in _pairs(names, pairs, reference):
        e = improvement_ci(mats[x], mats[y], reps, alpha, _rng(seed, x, y), names=(x, y))
        compared.append({"x": x, "y": y, "p_improve": e.point, "lo": e.lo, "hi": e.hi, "caveat": e.caveat})

    n_tasks = next(iter(tasks.values()))
    return {
        "n_tasks": n_tasks,
        "reps": int(reps),
        "alpha": float(alpha),
        "seed": int(seed),
        "configs": configs,
        "pairs": compared,
    }
