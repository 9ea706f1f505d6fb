"""rlpipe.analysis.rliable by simulation: do the intervals keep the error rates they promise?

The population throughout: an evaluation suite of ``T`` tasks with fixed task means ``mu_t`` and
seed-to-seed standard deviations ``sd_t``; a training seed's score on task ``t`` is
``mu_t + sd_t * N(0, 1)``, independently across seeds and tasks. The estimands are expectations
over seeds with the tasks held fixed (the stratified bootstrap resamples seeds, not tasks):

* the mean over tasks: ``mean_t mu_t``;
* the IQM: the interquartile mean of the equal-weight mixture of the task distributions -- what
  the pooled 25 % trimmed mean converges to as the number of seeds grows (closed form below);
* ``P(X > Y)``: per task ``Phi(delta_t / (sd_t * sqrt(2)))`` for X shifted by ``delta_t`` over Y,
  averaged over tasks (0.5 for identical configurations).
"""

from __future__ import annotations

import json
import math
import time
from statistics import NormalDist

import numpy as np
import pytest

from rlpipe.analysis.rliable import (
    FEW_SEEDS,
    MIN_IQM_SCORES,
    improvement_ci,
    iqm,
    mean_over_tasks,
    probability_of_improvement,
    stratified_bootstrap_ci,
    summarise,
)

PHI = NormalDist()

T = 30
MU = np.linspace(0.2, 0.8, T)
SD = np.linspace(0.05, 0.15, T)


def _draw(rng: np.random.Generator, n_seeds: int, shift: float = 0.0) -> np.ndarray:
    return MU + shift * SD + SD * rng.standard_normal((n_seeds, T))


def _mixture_iqm(mu: np.ndarray, sd: np.ndarray) -> float:
    """IQM of the equal-weight mixture of N(mu_t, sd_t): quartiles by bisection, then the closed form
    ``E[X; q1 < X < q3] = sum_t (mu_t (Phi(b) - Phi(a)) + sd_t (phi(a) - phi(b))) / T``."""

    def cdf(x: float) -> float:
        return float(np.mean([PHI.cdf((x - m) / s) for m, s in zip(mu, sd, strict=True)]))

    def quantile(p: float) -> float:
        lo, hi = float(mu.min() - 10 * sd.max()), float(mu.max() + 10 * sd.max())
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
        return (lo + hi) / 2

    q1, q3 = quantile(0.25), quantile(0.75)
    total = 0.0
    for m, s in zip(mu, sd, strict=True):
        a, b = (q1 - m) / s, (q3 - m) / s
        total += m * (PHI.cdf(b) - PHI.cdf(a)) + s * (PHI.pdf(a) - PHI.pdf(b))
    return 2 * total / len(mu)  # divided by the middle half's probability 1/2


def test_mixture_iqm_matches_a_large_sample() -> None:
    # The estimand itself, checked once against brute force: 20,000 seeds per task.
    rng = np.random.default_rng(5)
    assert iqm(_draw(rng, 20_000)) == pytest.approx(_mixture_iqm(MU, SD), abs=1e-3)


# ---------------------------------------------------------------------------------------------
# (a) coverage of the true mean over tasks and the true IQM


@pytest.mark.parametrize(
    ("n_seeds", "floor", "ceiling"),
    [
        # Measured with 3,000 trials x 2,000 replicates (30 tasks): mean 0.918, IQM 0.913 with 5 seeds;
        # mean 0.943, IQM 0.943 with 10 seeds (and 0.879 / 0.880 with 3). The percentile bootstrap
        # undercovers with few seeds, as theory says: a resample of n runs has (n - 1) / n of the
        # sample's variance, so the 95 % interval is really a ``2 * Phi(1.96 * sqrt((n-1)/n)) - 1``
        # interval: 0.920 for n = 5, 0.937 for n = 10. This run (600 trials x 500 replicates, SE
        # ~0.01) gives mean 0.925, IQM 0.922 with 5 seeds and mean 0.907, IQM 0.923 with 10 (2,000
        # trials of the 10-seed case with 500 replicates: 0.933 / 0.934, so 0.907 is a low draw);
        # the band is around the achievable values, not the nominal 0.95.
        (5, 0.85, 0.97),
        (10, 0.88, 0.98),
    ],
)
def test_stratified_bootstrap_ci_covers_the_true_mean_and_iqm(
    n_seeds: int, floor: float, ceiling: float
) -> None:
    rng = np.random.default_rng(100 + n_seeds)
    true_mean, true_iqm = float(MU.mean()), _mixture_iqm(MU, SD)
    trials, hit_mean, hit_iqm = 600, 0, 0
    for _ in range(trials):
        x = _draw(rng, n_seeds)
        m = stratified_bootstrap_ci(x, mean_over_tasks, reps=500, alpha=0.05, rng=rng)
        q = stratified_bootstrap_ci(x, iqm, reps=500, alpha=0.05, rng=rng)
        hit_mean += m.lo <= true_mean <= m.hi
        hit_iqm += q.lo <= true_iqm <= q.hi
    print(f"{n_seeds} seeds: mean coverage {hit_mean / trials:.3f}, IQM coverage {hit_iqm / trials:.3f}")
    assert floor <= hit_mean / trials <= ceiling, hit_mean / trials
    assert floor <= hit_iqm / trials <= ceiling, hit_iqm / trials


def test_iqm_ignores_one_diverged_seed_that_moves_the_mean() -> None:
    rng = np.random.default_rng(3)
    x = _draw(rng, 5)
    broken = x.copy()
    broken[0, :3] = -10.0  # one seed diverged on three tasks
    assert abs(mean_over_tasks(broken) - mean_over_tasks(x)) > 0.1
    assert abs(iqm(broken) - iqm(x)) < 0.02


# ---------------------------------------------------------------------------------------------
# (b) probability of improvement


def test_p_improve_of_identical_configurations_is_one_half_within_its_ci() -> None:
    # Measured with 2,000 trials x 2,000 replicates: 0.5 lies in the CI in 0.947 of them with 5 seeds
    # each (0.937 with 3, 0.949 with 10) -- closer to nominal than the mean's CI, as both samples'
    # variances enter. This run: 300 trials, SE ~0.013.
    rng = np.random.default_rng(11)
    trials, inside, points = 300, 0, []
    for _ in range(trials):
        e = improvement_ci(_draw(rng, 5), _draw(rng, 5), reps=500, rng=rng)
        inside += e.lo <= 0.5 <= e.hi
        points.append(e.point)
    print(f"P(X>Y) identical: 0.5 inside the CI in {inside / trials:.3f}")
    assert 0.85 <= inside / trials <= 0.98, inside / trials
    assert np.mean(points) == pytest.approx(0.5, abs=0.01)  # unbiased: X and Y are exchangeable


def test_p_improve_ci_covers_a_known_probability() -> None:
    # X shifted by half a seed-sd on every task: P(X > Y) = Phi(0.5 / sqrt(2)) = 0.638 on each.
    # Measured with 2,000 trials x 2,000 replicates: coverage 0.950 with 5 seeds each (0.926 with 3,
    # 0.942 with 10). This run: 300 trials.
    rng = np.random.default_rng(12)
    truth = PHI.cdf(0.5 / math.sqrt(2))
    trials, inside = 300, 0
    for _ in range(trials):
        e = improvement_ci(_draw(rng, 5, shift=0.5), _draw(rng, 5), reps=500, rng=rng)
        inside += e.lo <= truth <= e.hi
    print(f"P(X>Y) = {truth:.3f}: coverage {inside / trials:.3f}")
    assert 0.85 <= inside / trials <= 0.98, inside / trials


def test_p_improve_of_a_clearly_better_configuration_is_near_one() -> None:
    rng = np.random.default_rng(13)
    x, y = _draw(rng, 5, shift=3.0), _draw(rng, 5)  # true P = Phi(3 / sqrt(2)) = 0.983 per task
    e = improvement_ci(x, y, reps=2000, rng=rng)
    assert e.point >= 0.95
    assert e.lo is not None and e.lo > 0.9
    assert probability_of_improvement(y, x) == pytest.approx(1 - e.point)  # ties would count 1/2


def test_p_improve_counts_ties_as_one_half() -> None:
    x = np.array([[1.0, 0.0], [0.0, 0.0]])
    y = np.array([[1.0, 1.0], [0.0, 1.0]])
    # task 0: pairs (1,1) tie, (1,0) win, (0,1) loss, (0,0) tie -> 0.5; task 1: all losses -> 0
    assert probability_of_improvement(x, y) == pytest.approx(0.25)


# ---------------------------------------------------------------------------------------------
# (c) degenerate inputs


def test_one_seed_gives_a_point_value_with_a_caveat_never_a_zero_width_ci() -> None:
    rng = np.random.default_rng(0)
    out = summarise({"base": _draw(rng, 1), "new": _draw(rng, 1, shift=1.0), "many": _draw(rng, 5)})
    base = out["configs"]["base"]
    assert base["mean"]["lo"] is None and base["mean"]["hi"] is None
    assert "one seed" in base["caveat"]
    assert base["iqm"] is not None and base["iqm"]["lo"] is None  # 30 scores: IQM yes, CI no
    for pair in out["pairs"]:  # new vs base, many vs base: base's half of the bootstrap is degenerate
        assert pair["lo"] is None and pair["hi"] is None
        assert "'base'" in pair["caveat"] and "one seed" in pair["caveat"]
        assert 0.0 <= pair["p_improve"] <= 1.0


def test_no_seed_to_seed_variation_gives_no_ci() -> None:
    x = np.tile(np.linspace(0, 1, 10), (4, 1))  # every seed scores the same on every task
    e = stratified_bootstrap_ci(x, mean_over_tasks, rng=np.random.default_rng(0))
    assert e.lo is None and e.hi is None and "zero width" in e.caveat
    p = improvement_ci(x + 1.0, x, rng=np.random.default_rng(0))
    assert p.point == 1.0 and p.lo is None and "zero width" in p.caveat


def test_too_few_scores_give_no_iqm_with_a_reason() -> None:
    rng = np.random.default_rng(0)
    few = rng.random((3, 2))  # 6 scores
    enough = rng.random((4, 2))  # 8 scores
    out = summarise({"few": few, "enough": enough}, reps=200)
    assert MIN_IQM_SCORES == 8
    assert out["configs"]["few"]["iqm"] is None
    assert "6 (seed, task) scores" in out["configs"]["few"]["iqm_reason"]
    assert out["configs"]["enough"]["iqm"] is not None
    assert out["configs"]["enough"]["iqm_reason"] is None


def test_few_seeds_are_flagged() -> None:
    rng = np.random.default_rng(0)
    out = summarise({"a": _draw(rng, FEW_SEEDS - 1), "b": _draw(rng, FEW_SEEDS)}, reps=200)
    assert "undercovers" in out["configs"]["a"]["caveat"]
    assert out["configs"]["b"]["caveat"] is None
    assert "undercovers" in out["pairs"][0]["caveat"]


def test_nan_is_rejected_naming_the_configuration_and_task() -> None:
    rng = np.random.default_rng(0)
    bad = _draw(rng, 3)
    bad[1, 7] = np.nan
    with pytest.raises(ValueError, match=r"'grpo-lr3'.*task index 7"):
        summarise({"base": _draw(rng, 3), "grpo-lr3": bad})


def test_mismatched_task_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="different task counts"):
        summarise({"a": np.zeros((3, 4)), "b": np.zeros((3, 5))})
    with pytest.raises(ValueError, match="tasks"):
        improvement_ci(np.zeros((3, 4)), np.zeros((3, 5)))


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((0, 4)), np.zeros((2, 3, 4))])
def test_non_matrix_scores_are_rejected(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"'a'.*\[seeds, tasks\]"):
        summarise({"a": bad})


def test_bad_pairs_are_rejected() -> None:
    scores = {"a": np.zeros((2, 3)), "b": np.ones((2, 3))}
    with pytest.raises(ValueError, match="'c' is not a configuration"):
        summarise(scores, pairs=[("a", "c")])
    with pytest.raises(ValueError, match="itself"):
        summarise(scores, pairs=[("a", "a")])
    with pytest.raises(ValueError, match="not both"):
        summarise(scores, pairs=[("a", "b")], reference="a")


# ---------------------------------------------------------------------------------------------
# The entry point: shape, determinism, speed


def test_summarise_is_json_able_deterministic_and_fast() -> None:
    rng = np.random.default_rng(0)
    scores = {f"c{i}": _draw(rng, 5, shift=0.2 * i) for i in range(6)}
    summarise(scores)  # warm-up
    start = time.perf_counter()
    out = summarise(scores, reference="c0", reps=2000, seed=7)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0  # measured ~0.09 s for 6 configs x 5 seeds x 30 tasks x 2,000 replicates
    assert json.loads(json.dumps(out)) == out
    assert out == summarise(scores, reference="c0", reps=2000, seed=7)
    assert [(p["x"], p["y"]) for p in out["pairs"]] == [(f"c{i}", "c0") for i in range(1, 6)]
    entry = out["configs"]["c3"]
    assert entry["n_seeds"] == 5 and entry["n_scores"] == 150
    assert entry["mean"]["lo"] < entry["mean"]["point"] < entry["mean"]["hi"]
    assert entry["iqm"]["lo"] < entry["iqm"]["point"] < entry["iqm"]["hi"]
    # A configuration's CI does not depend on which others are summarised with it.
    alone = summarise({"c3": scores["c3"]}, reps=2000, seed=7)
    assert alone["configs"]["c3"] == entry
    assert summarise(scores, reps=2000, seed=8)["configs"]["c3"] != entry


def test_different_seed_counts_and_explicit_pairs() -> None:
    rng = np.random.default_rng(1)
    scores = {"a": _draw(rng, 3), "b": _draw(rng, 8, shift=2.0)}
    out = summarise(scores, pairs=[("b", "a"), ("a", "b")], reps=500)
    ba, ab = out["pairs"]
    assert ba["p_improve"] + ab["p_improve"] == pytest.approx(1.0)
    assert ba["lo"] > 0.5 and ab["hi"] < 0.5
    assert out["configs"]["a"]["n_seeds"] == 3 and out["configs"]["b"]["n_seeds"] == 8
