"""rlpipe.analysis.stats against cases with known answers (closed forms, tables, hand computations)."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest

from rlpipe.analysis import stats
from rlpipe.analysis.stats import (
    CI,
    Delta,
    holm,
    macro_average,
    macro_deltas,
    paired_bootstrap_delta,
    student_t_cdf,
    student_t_ppf,
)
from rlpipe.eval.estimates import avg_at_k, bootstrap_mean_ci, item_pass_at_k, item_scores, pass_at_k

# ---------------------------------------------------------------------------------------------
# bootstrap_mean_ci


def test_bootstrap_ci_of_large_normal_sample_matches_normal_theory() -> None:
    rng = np.random.default_rng(123)
    sigma, n = 2.0, 5000
    x = rng.normal(10.0, sigma, n)
    mean, se, lo, hi = bootstrap_mean_ci(x, n_boot=2000, seed=1)
    expected_se = x.std(ddof=1) / math.sqrt(n)
    assert mean == pytest.approx(x.mean())
    assert se == pytest.approx(expected_se, rel=0.1)
    assert lo == pytest.approx(x.mean() - 1.96 * expected_se, abs=0.25 * expected_se)
    assert hi == pytest.approx(x.mean() + 1.96 * expected_se, abs=0.25 * expected_se)


def test_bootstrap_ci_is_deterministic_given_seed_and_varies_with_it() -> None:
    x = np.random.default_rng(0).random(50)
    assert bootstrap_mean_ci(x, seed=7) == bootstrap_mean_ci(x, seed=7)
    assert bootstrap_mean_ci(x, seed=7).lo != bootstrap_mean_ci(x, seed=8).lo


def test_bootstrap_ci_alpha_widens_interval() -> None:
    x = np.random.default_rng(0).random(200)
    narrow, wide = bootstrap_mean_ci(x, alpha=0.5), bootstrap_mean_ci(x, alpha=0.01)
    assert wide.lo < narrow.lo < narrow.hi < wide.hi


def test_bootstrap_ci_edge_cases() -> None:
    assert all(math.isnan(v) for v in bootstrap_mean_ci([]))
    assert all(math.isnan(v) for v in bootstrap_mean_ci([np.nan, np.nan]))
    one = bootstrap_mean_ci([0.4])
    assert one.mean == 0.4 and math.isnan(one.se) and math.isnan(one.lo) and math.isnan(one.hi)
    const = bootstrap_mean_ci([1.0] * 10)
    assert const == CI(1.0, 0.0, 1.0, 1.0)
    # NaNs are dropped, not counted as zero
    assert bootstrap_mean_ci([1.0, np.nan, 0.0]).mean == 0.5
    with pytest.raises(ValueError):
        bootstrap_mean_ci([1.0, 2.0], alpha=1.5)
    with pytest.raises(ValueError):
        bootstrap_mean_ci([1.0, 2.0], n_boot=0)


def test_bootstrap_ci_of_binary_scores_covers_true_rate() -> None:
    rng = np.random.default_rng(5)
    x = (rng.random(400) < 0.3).astype(float)
    ci = bootstrap_mean_ci(x)
    assert ci.lo < 0.3 < ci.hi
    assert ci.se == pytest.approx(math.sqrt(0.3 * 0.7 / 400), rel=0.15)


def test_bootstrap_many_items_is_chunked_and_still_right() -> None:
    x = np.random.default_rng(1).normal(0, 1, 20_000)  # 2000 x 20000 > one block
    ci = bootstrap_mean_ci(x, n_boot=300)
    assert ci.se == pytest.approx(1 / math.sqrt(20_000), rel=0.2)


# ---------------------------------------------------------------------------------------------
# item scores, avg@k, pass@k


def test_item_scores_and_avg_at_k() -> None:
    s = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.5, 0.5, 1.0, np.nan]])
    np.testing.assert_allclose(item_scores(s), [0.75, 0.0, 2 / 3])
    assert avg_at_k(s) == pytest.approx((0.75 + 0.0 + 2 / 3) / 3)
    np.testing.assert_allclose(item_scores([1.0, 0.0]), [1.0, 0.0])
    assert math.isnan(item_scores([[np.nan, np.nan]])[0])
    assert math.isnan(avg_at_k([[np.nan]]))


def test_pass_at_k_hand_computed() -> None:
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2))  # 0.7
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 = c/n
    assert pass_at_k(4, 1, 4) == 1.0  # n - c < k: some correct sample is always drawn
    assert pass_at_k(200, 13, 100) == pytest.approx(1 - math.comb(187, 100) / math.comb(200, 100))


def test_pass_at_k_equals_enumeration_over_subsets() -> None:
    correct = [1, 0, 0, 1, 0, 1]
    for k in range(1, 7):
        subsets = list(combinations(correct, k))
        expected = sum(any(s) for s in subsets) / len(subsets)
        assert pass_at_k(6, 3, k) == pytest.approx(expected)


@pytest.mark.parametrize(("n", "c", "k"), [(0, 0, 1), (5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_pass_at_k_rejects_invalid(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_item_pass_at_k_counts_only_full_score_as_correct() -> None:
    s = np.array(
        [
            [1.0, 0.0, 0.0, 1.0, 0.0],  # c = 2
            [0.9, 0.9, 0.9, 0.9, 0.9],  # partial credit: never a pass
            [1.0, np.nan, np.nan, np.nan, np.nan],  # n = 1 < k
        ]
    )
    out = item_pass_at_k(s, 2)
    assert out[0] == pytest.approx(0.7)
    assert out[1] == 0.0
    assert math.isnan(out[2])


# ---------------------------------------------------------------------------------------------
# paired deltas


def test_paired_delta_of_identical_arrays_is_zero_and_not_significant() -> None:
    a = np.random.default_rng(0).random(100)
    d = paired_bootstrap_delta(a, a.copy())
    assert isinstance(d, Delta)
    assert d.delta == 0.0 and d.lo == 0.0 and d.hi == 0.0
    assert not d.significant
    assert d.p_value == 1.0


def test_paired_delta_detects_a_clear_shift() -> None:
    rng = np.random.default_rng(1)
    b = rng.random(200)
    a = np.clip(b + 0.1 + rng.normal(0, 0.05, 200), 0, None)
    d = paired_bootstrap_delta(a, b)
    assert d.delta == pytest.approx((a - b).mean())
    assert d.significant and d.lo > 0 and d.p_value < 0.01
    # sign convention: a - b
    assert paired_bootstrap_delta(b, a).delta == pytest.approx(-d.delta)
    assert paired_bootstrap_delta(b, a).hi < 0


def test_paired_is_more_powerful_than_unpaired_on_correlated_items() -> None:
    # item difficulty varies a lot; the model difference is small but consistent
    rng = np.random.default_rng(2)
    difficulty = rng.random(60)
    a, b = difficulty + 0.02, difficulty
    d = paired_bootstrap_delta(a, b)
    assert d.significant
    ci_a, ci_b = bootstrap_mean_ci(a), bootstrap_mean_ci(b)
    assert ci_a.lo < ci_b.hi  # the separate CIs overlap: unpaired would not see it


def test_paired_delta_no_difference_is_rarely_significant() -> None:
    """Under the null the false-positive rate is about alpha (checked over 100 datasets)."""
    rng = np.random.default_rng(3)
    hits = 0
    for i in range(100):
        a, b = (rng.random(40) < 0.5).astype(float), (rng.random(40) < 0.5).astype(float)
        hits += paired_bootstrap_delta(a, b, n_boot=400, seed=i).significant
    assert hits <= 12


def test_paired_delta_ci_matches_normal_theory() -> None:
    rng = np.random.default_rng(4)
    d = rng.normal(0.3, 1.0, 3000)
    res = paired_bootstrap_delta(d, np.zeros_like(d))
    se = d.std(ddof=1) / math.sqrt(len(d))
    assert res.se == pytest.approx(se, rel=0.1)
    assert res.lo == pytest.approx(d.mean() - 1.96 * se, abs=0.25 * se)


def test_paired_delta_edge_cases() -> None:
    with pytest.raises(ValueError):
        paired_bootstrap_delta([1.0, 2.0], [1.0])
    one = paired_bootstrap_delta([1.0], [0.0])
    assert one.delta == 1.0 and math.isnan(one.lo) and not one.significant
    empty = paired_bootstrap_delta([], [])
    assert math.isnan(empty.delta) and not empty.significant
    # items with a NaN on either side are dropped pairwise
    d = paired_bootstrap_delta([1.0, np.nan, 1.0, 0.0], [0.0, 1.0, np.nan, 0.0])
    assert d.n_items == 2 and d.delta == 0.5


def test_seeds_are_a_resampling_level_not_pooled_items() -> None:
    rng = np.random.default_rng(5)
    items = rng.random(300)
    seed_effect_a = np.array([0.30, -0.25, 0.0])  # seeds of a disagree a lot
    a = items + 0.05 + seed_effect_a[:, None]
    b = np.stack([items, items + 0.001, items - 0.001])
    hier = macro_deltas({"t": a}, {"t": b}).mean
    assert hier.n_seeds == (3, 3) and hier.n_items == 300
    assert hier.delta == pytest.approx(a.mean() - b.mean())
    assert not hier.significant  # seed noise swamps +0.05
    # pooling the seeds and bootstrapping items only would wrongly claim significance
    pooled = paired_bootstrap_delta(a.mean(axis=0), b.mean(axis=0))
    assert pooled.significant
    assert (hier.hi - hier.lo) > 5 * (pooled.hi - pooled.lo)


def test_consistent_seeds_are_significant() -> None:
    rng = np.random.default_rng(6)
    items = rng.random(200)
    a = np.stack([items + 0.1 + rng.normal(0, 0.01, 200) for _ in range(3)])
    b = np.stack([items + rng.normal(0, 0.01, 200) for _ in range(2)])
    d = macro_deltas({"t": a}, {"t": b}).mean
    assert d.n_seeds == (3, 2)
    assert d.significant and d.lo > 0.05


def test_macro_deltas_checks_its_input() -> None:
    with pytest.raises(ValueError, match="paired items"):
        macro_deltas({"t": np.zeros((2, 5))}, {"t": np.zeros((2, 6))})
    with pytest.raises(ValueError, match="different tasks"):
        macro_deltas({"t": np.zeros(5)}, {"u": np.zeros(5)})
    with pytest.raises(ValueError, match="same seeds"):
        macro_deltas({"t": np.zeros((2, 5)), "u": np.zeros((3, 5))}, {"t": np.zeros(5), "u": np.zeros(5)})
    with pytest.raises(ValueError, match="group"):
        macro_deltas({"t": np.zeros(5)}, {"t": np.zeros(5)}, {"g": ["nope"]})


def test_one_estimand_whatever_the_number_of_seeds() -> None:
    """The audit's counter-example: a 200-item task at -0.10 and a 20-item task at +0.30.

    The mean over tasks is +0.10 with one seed and with the same seed twice; pooling the items of
    both tasks (what the seeds path did) gave -0.064 [-0.109, -0.023] and flipped the sign.
    """
    big_a, big_b = np.r_[np.zeros(20), np.ones(180)], np.r_[np.ones(20), np.ones(180)]  # -0.10
    small_a, small_b = np.r_[np.ones(6), np.zeros(14)], np.zeros(20)  # +0.30
    one = macro_deltas({"big": big_a, "small": small_a}, {"big": big_b, "small": small_b})
    twice = macro_deltas(
        {"big": np.stack([big_a, big_a]), "small": np.stack([small_a, small_a])},
        {"big": np.stack([big_b, big_b]), "small": np.stack([small_b, small_b])},
    )
    assert one.mean.delta == pytest.approx(0.10) and twice.mean.delta == pytest.approx(0.10)
    assert one.tasks["big"].delta == pytest.approx(-0.10) and one.tasks["small"].delta == pytest.approx(0.30)
    assert twice.mean.lo < 0.10 < twice.mean.hi


def test_holm_adjusts_step_down_and_keeps_nan() -> None:
    # hand computation: sorted p 0.01, 0.02, 0.04 (m = 3) -> 0.03, 0.04, 0.04 (monotone)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    adjusted = holm([0.5, float("nan"), 0.001])
    assert (
        adjusted[0] == pytest.approx(0.5) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.002)
    )
    assert holm([]) == []
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 2 x 0.8 caps at 1; monotone


def test_holm_controls_the_family_wise_error_rate_by_simulation() -> None:
    """2000 families of 50 independent null p-values: any rejection in <= 5 % (+ 2 SE) of them."""
    rng = np.random.default_rng(11)
    p = rng.random((2000, 50))
    any_rejected = np.mean([min(holm(row)) < 0.05 for row in p])
    assert any_rejected <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 2000)
    assert np.mean((p < 0.05).any(axis=1)) > 0.9  # uncorrected: nearly every family "finds" something


# ---------------------------------------------------------------------------------------------
# macro average


def test_macro_average_weights_tasks_equally() -> None:
    scores = {
        "math": {"add": np.ones(1000), "mul": np.zeros(10)},  # domain mean 0.5 (tasks equal)
        "code": {"py": np.full(20, 0.2)},
        "chat": np.full(5, 0.8),  # a domain given directly as items is its own task
    }
    m = macro_average(scores)
    assert m.mean == pytest.approx((1 + 0 + 0.2 + 0.8) / 4)  # the mean over tasks
    assert m.domains["math"].mean == pytest.approx(0.5)
    assert m.tasks["chat"]["chat"].mean == pytest.approx(0.8)
    # every item constant within its task: no sampling variance anywhere
    assert m.lo == pytest.approx(m.mean) and m.hi == pytest.approx(m.mean) and m.se == pytest.approx(0)


def test_macro_average_stratified_se_matches_closed_form() -> None:
    """Var(mean over T tasks) = sum_t var_t / n_t / T^2 for independent task means."""
    rng = np.random.default_rng(8)
    tree = {
        "a": {"t1": rng.normal(0, 1, 400), "t2": rng.normal(0, 2, 100)},
        "b": {"t3": rng.normal(0, 0.5, 200)},
    }
    m = macro_average(tree, n_boot=4000)
    var = tree["a"]["t1"].var() / 400 + tree["a"]["t2"].var() / 100 + tree["b"]["t3"].var() / 200
    var /= 9  # three tasks
    assert m.se == pytest.approx(math.sqrt(var), rel=0.1)
    assert m.lo < m.mean < m.hi


def test_macro_average_ignores_dict_order_and_empty_tasks() -> None:
    rng = np.random.default_rng(9)
    x, y = rng.random(30), rng.random(40)
    m1 = macro_average({"d1": {"t": x, "empty": []}, "d2": {"u": y}})
    m2 = macro_average({"d2": {"u": y}, "d1": {"t": x}})
    assert (m1.mean, m1.lo, m1.hi) == (m2.mean, m2.lo, m2.hi)
    assert "empty" not in m1.tasks["d1"]
    assert math.isnan(macro_average({}).mean)


def test_macro_deltas_per_task_group_and_overall() -> None:
    rng = np.random.default_rng(10)
    base = {"t1": rng.random(100), "t2": rng.random(50), "t3": rng.random(80)}
    better = {t: x + 0.05 for t, x in base.items()}
    groups = {"math": ["t1", "t2"], "code": ["t3"]}
    d = macro_deltas(better, base, groups)
    assert d.mean.delta == pytest.approx(0.05) and d.groups["math"].delta == pytest.approx(0.05)
    assert d.mean.significant and d.mean.lo == pytest.approx(0.05) and d.mean.n_items == 230
    same = macro_deltas(base, base, groups)
    assert same.mean.delta == 0.0 and not same.mean.significant
    noisy = {t: x + rng.normal(0, 0.3, len(x)) for t, x in base.items()}
    nd = macro_deltas(noisy, base, groups)
    assert nd.mean.lo < nd.mean.delta < nd.mean.hi
    assert nd.mean.delta == pytest.approx(np.mean([nd.tasks[t].delta for t in base]))


# ---------------------------------------------------------------------------------------------
# Student's t

# two-sided 95% critical values from a printed t table
T_TABLE_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 10: 2.228, 20: 2.086, 30: 2.042, 120: 1.980}


@pytest.mark.parametrize(("df", "expected"), sorted(T_TABLE_975.items()))
def test_t_quantile_matches_table(df: int, expected: float) -> None:
    assert student_t_ppf(0.975, df) == pytest.approx(expected, abs=1e-3)


def test_t_distribution_known_values() -> None:
    assert student_t_cdf(0.0, 7) == 0.5
    assert student_t_cdf(1.0, 1) == pytest.approx(0.75)  # Cauchy: 1/2 + atan(1)/pi
    assert student_t_cdf(math.sqrt(3), 3) == pytest.approx(0.5 + (math.pi / 4 + 0.5) / math.pi)
    assert student_t_cdf(2.0, 2) == pytest.approx(0.5 + 0.5 * 2 / math.sqrt(6))  # df=2 closed form
    assert student_t_cdf(-2.0, 9) == pytest.approx(1 - student_t_cdf(2.0, 9))
    assert student_t_ppf(0.995, 10) == pytest.approx(3.169, abs=1e-3)
    assert student_t_ppf(0.025, 5) == pytest.approx(-2.571, abs=1e-3)
    assert student_t_ppf(0.975, 10**6) == pytest.approx(1.959964, abs=1e-4)
    assert student_t_ppf(0.975, 5000) == pytest.approx(1.96043, abs=1e-4)
    for df in (1, 2, 7, 50):
        for q in (0.6, 0.9, 0.999):
            assert student_t_cdf(student_t_ppf(q, df), df) == pytest.approx(q, abs=1e-10)
    with pytest.raises(ValueError):
        student_t_cdf(1.0, 0)
    with pytest.raises(ValueError):
        student_t_ppf(0.5, 2.5)  # type: ignore[arg-type]


def test_the_report_trend_of_an_exact_line_has_a_zero_width_ci() -> None:
    from rlpipe.analysis.trend import trend_slope_robust

    steps = np.arange(0, 100, 10)
    slope, lo, hi, p = trend_slope_robust(steps, 0.003 * steps + 0.1)
    assert slope == pytest.approx(0.003)
    assert lo == slope == hi
    assert p == 0.0
    flat = trend_slope_robust(steps, np.full(10, 0.4))
    assert flat.slope == 0.0 and flat.lo == 0.0 and flat.hi == 0.0 and flat.p == 1.0


def test_module_exports_exist() -> None:
    for name in stats.__all__:
        assert hasattr(stats, name), name
