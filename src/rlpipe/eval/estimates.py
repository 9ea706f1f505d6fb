"""Per-item score estimates of one evaluation: avg@k, pass@k, and a bootstrap CI of their mean.

What evaluation reports for one checkpoint (``rlpipe.eval.scoring``) and the statistics of the
report build on (``rlpipe.analysis.stats``, which imports these): one definition, at the lowest layer
that needs it. Items are the unit of resampling; non-finite item scores (NaN: a missing or failed
item) are dropped, never counted as 0.

Missing samples (a NaN in ``sample_scores[items, k]``: no completion, or no score, for that
(item, sample)) are treated differently by the two estimates, so that neither is silently a number
over a biased subset of items:

* avg@k (``item_scores``): an item is the mean of its finite samples -- unbiased per item, since the
  missing samples are draws of the same distribution -- and an item with no finite sample is NaN.
  The caller must count and state such items (``finite_counts``), as ``rlpipe.eval.scoring`` does.
* pass@k of a task (``task_pass_at_k``): NaN as soon as any item has fewer than k finite samples.
  Averaging only the items that kept k samples would drop exactly the items that time out or fail,
  which are usually the hard ones, and bias pass@k up; ``item_pass_at_k`` still gives the per-item
  values (NaN where n < k) for a caller that states its own subset.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "CI",
    "CORRECT_TOL",
    "avg_at_k",
    "bootstrap_mean_ci",
    "finite_counts",
    "item_pass_at_k",
    "item_scores",
    "pass_at_k",
    "task_pass_at_k",
]

#: Bootstrap replicates are drawn in blocks of at most this many resampled values, so memory stays
#: bounded (~16 MB of indices) whatever the number of items.
BLOCK_ELEMENTS = 2_000_000

#: A sample "is correct" for pass@k when its score is 1 up to this float tolerance.
CORRECT_TOL = 1e-9

NAN = float("nan")


class CI(NamedTuple):
    """A mean with its bootstrap standard error and percentile confidence interval."""

    mean: float
    se: float
    lo: float
    hi: float


def check_boot(n_boot: int, alpha: float) -> None:
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def finite_1d(values: ArrayLike, what: str = "values") -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D item scores, got shape {arr.shape}")
    return arr[np.isfinite(arr)]


def resampled_means(rng: np.random.Generator, x: np.ndarray, n_boot: int) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement, same size) of the 1-D array ``x``."""
    n = len(x)
    out = np.empty(n_boot)
    block = max(1, BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, n_boot, block):
        m = min(block, n_boot - start)
        idx = rng.integers(0, n, size=(m, n))
        out[start : start + m] = x[idx].mean(axis=1)
    return out


def ci_from_boot(point: float, boots: np.ndarray, alpha: float) -> CI:
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    se = float(np.std(boots, ddof=1)) if len(boots) > 1 else NAN
    return CI(float(point), se, float(lo), float(hi))


def bootstrap_mean_ci(values: ArrayLike, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> CI:
    """Mean of item scores with a percentile-bootstrap ``1 - alpha`` CI, resampling items.

    Returns ``CI(mean, se, lo, hi)`` (a NamedTuple, so ``mean, se, lo, hi = ...`` works); ``se``
    is the standard deviation of the bootstrap means. NaNs are dropped. With no finite value
    everything is NaN; with a single item the mean is returned but ``se/lo/hi`` are NaN -- one
    item says nothing about uncertainty, and a zero-width interval would claim certainty.
    """
    check_boot(n_boot, alpha)
    x = finite_1d(values)
    if len(x) == 0:
        return CI(NAN, NAN, NAN, NAN)
    mean = float(x.mean())
    if len(x) == 1:
        return CI(mean, NAN, NAN, NAN)
    boots = resampled_means(np.random.default_rng(seed), x, int(n_boot))
    return ci_from_boot(mean, boots, alpha)


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


def finite_counts(sample_scores: ArrayLike) -> np.ndarray:
    """Per-item number of finite samples of ``sample_scores[items, k]`` (1-D: one sample per item)."""
    arr = np.asarray(sample_scores, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"sample_scores must be [items, k], got shape {arr.shape}")
    return np.isfinite(arr).sum(axis=1)


def avg_at_k(sample_scores: ArrayLike) -> float:
    """avg@k: the mean over items of the per-item mean score of k samples (NaN items dropped).

    Averaging per item first weights every item equally even when some have fewer samples.
    For a CI, use ``bootstrap_mean_ci(item_scores(sample_scores))``.
    """
    per_item = item_scores(sample_scores)
    per_item = per_item[np.isfinite(per_item)]
    return float(per_item.mean()) if len(per_item) else NAN


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
    return np.array(
        [pass_at_k(n, c, k) if n >= k else np.nan for n, c in zip(ns, cs, strict=True)], dtype=float
    )


def task_pass_at_k(sample_scores: ArrayLike, k: int) -> float:
    """pass@k of a task: the mean over items of ``item_pass_at_k``, or NaN unless *every* item has at
    least k finite samples (and there is at least one item).

    Never the mean over the subset of items that kept k samples: the items that lose samples (time-outs,
    failed generations) tend to be the hard ones, so that subset's pass@k is biased up.
    """
    per_item = item_pass_at_k(sample_scores, k)
    if len(per_item) == 0 or not np.isfinite(per_item).all():
        return NAN
    return float(per_item.mean())
