"""Claims that hold when training seeds vary (issue 22), by simulation through the report's own code.

Every null here has training-seed variance: a configuration's runs differ by a seed effect shared by
all tasks (sd 0.013, the embedded default's measured seed-to-seed sd of the gain over base) plus a
per-task seed effect, on top of item difficulty and k-sample evaluation noise. Each rate is checked
with two binomial standard errors of its simulation. At HEAD 172c17d these fail: one seed per side
was starred as a configuration difference in 85 % of null experiments, 3-vs-3 CIs were ~1.9x too
wide, 1-item tasks gave zero-width CIs, and a missing task raised a bare KeyError.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlpipe.analysis.compare import compare, comparison_row, correct, significant_changes
from rlpipe.analysis.selection import choose_winner, select_run
from rlpipe.analysis.stats import CHECKPOINT, CONFIGURATION, macro_deltas, seeds_for_power

K = 4
SEED_SD, TASK_SEED_SD = 0.013, 0.02


def allowance(rate: float, n: int) -> float:
    return rate + 2 * math.sqrt(rate * (1 - rate) / n)


def band(rate: float, n: int) -> tuple[float, float]:
    half = 2 * math.sqrt(rate * (1 - rate) / n)
    return rate - half, rate + half


def evaluate(rng: np.random.Generator, difficulty: np.ndarray, effect: float, seeds: int) -> np.ndarray:
    """``[seeds, tasks, items]`` avg@K scores of one configuration trained with ``seeds`` seeds."""
    tasks = difficulty.shape[0]
    shift = rng.normal(0, SEED_SD, (seeds, 1, 1)) + rng.normal(0, TASK_SEED_SD, (seeds, tasks, 1))
    p = np.clip(difficulty[None] + effect + shift, 0, 1)
    return rng.binomial(K, p) / K


def as_items(scores: np.ndarray, name: str, step: int = 1) -> dict:
    """The report's item table for the seeds of one configuration: ``(run, step) -> task -> id -> score``."""
    return {
        (f"{name}_s{s}", step): {
            f"t{t:02d}": {f"i{i}": float(scores[s, t, i]) for i in range(scores.shape[2])}
            for t in range(scores.shape[1])
        }
        for s in range(scores.shape[0])
    }


def experiment(rng, configs: int, seeds: int, tasks: int = 30, items: int = 60, effects=None):
    difficulty = rng.beta(2, 2, (tasks, items))
    effects = effects or [0.0] * configs
    table: dict = {}
    for c in range(configs):
        table.update(as_items(evaluate(rng, difficulty, effects[c], seeds), f"c{c}"))
    return table


def domains(tasks: int = 30) -> dict[str, str]:
    return {f"t{t:02d}": f"d{t % 3}" for t in range(tasks)}


def arm(c: int, seeds: int) -> list[tuple[str, int]]:
    return [(f"c{c}_s{s}", 1) for s in range(seeds)]


# ---------------------------------------------------------------------------------------------
# 1. one seed per configuration is not a claim about configurations


def test_one_seed_makes_no_configuration_claim_and_several_seeds_hold_the_error_rate() -> None:
    """6 identical configurations x 30 tasks, every one trained with other seeds (issue: 85 % of
    such experiments starred an overall difference, 37 % a domain or task one, 11.9 % a winner)."""
    rng = np.random.default_rng(22)
    n_exp, td = 150, domains()
    starred = {1: {"overall": 0, "changes": 0}, 3: {"overall": 0, "changes": 0}}
    for seeds in (1, 3):
        for _ in range(n_exp):
            table = experiment(rng, 6, seeds)
            rows = [
                comparison_row(f"c{c}", "c0", compare(table, td, arm(c, seeds), arm(0, seeds)))
                for c in range(1, 6)
            ]
            correct(rows, "vs baseline")
            ups, downs = significant_changes(rows)
            config = [e for e in ups + downs if e["claim"] == CONFIGURATION]
            overall = [r for r in rows if r["mean"]["significant"] and r["mean"]["claim"] == CONFIGURATION]
            starred[seeds]["overall"] += bool(overall)
            starred[seeds]["changes"] += bool(config)
            assert {r["mean"]["claim"] for r in rows} == {CHECKPOINT if seeds == 1 else CONFIGURATION}
    assert starred[1] == {"overall": 0, "changes": 0}  # one seed: nothing is said about configurations
    assert starred[3]["overall"] / n_exp <= allowance(0.05, n_exp)
    assert starred[3]["changes"] / n_exp <= allowance(0.05, n_exp)


def test_a_winner_is_never_named_from_one_seed_and_rarely_among_equal_seeded_configurations() -> None:
    rng = np.random.default_rng(119)
    n_exp, td = 150, domains(10)
    named = {1: 0, 3: 0}
    for seeds in (1, 3):
        for _ in range(n_exp):
            table = experiment(rng, 4, seeds, tasks=10)
            validation = {f"c{c}": float(rng.normal()) for c in range(4)}  # validation is noise too

            def delta(a: str, b: str, table=table, seeds=seeds):
                return compare(table, td, arm(int(a[1:]), seeds), arm(int(b[1:]), seeds))["mean"]

            named[seeds] += choose_winner(validation, delta)["winner"] is not None
    assert named[1] == 0
    assert named[3] / n_exp <= allowance(0.05, n_exp)


def test_a_declared_seed_sd_gives_configuration_coverage_with_one_seed() -> None:
    """Coverage of the true configuration difference with one seed a side was 69 %; a declared
    seed sd (here the true one) brings it to 95 %, and the checkpoint-level CI is labelled as such."""
    rng = np.random.default_rng(5)
    true_sd = math.sqrt(SEED_SD**2 + TASK_SEED_SD**2 / 30)
    n_exp, td, effect = 400, domains(), 0.03
    covered = {"declared": 0, "undeclared": 0}
    for _ in range(n_exp):
        table = experiment(rng, 2, 1, effects=[effect, 0.0])
        declared = compare(table, td, arm(0, 1), arm(1, 1), seed_sd=true_sd)["mean"]
        plain = compare(table, td, arm(0, 1), arm(1, 1))["mean"]
        assert declared.level == CONFIGURATION and declared.seed_source == "declared"
        assert plain.level == CHECKPOINT
        covered["declared"] += declared.lo <= effect <= declared.hi
        covered["undeclared"] += plain.lo <= effect <= plain.hi
    lo, hi = band(0.95, n_exp)
    assert lo <= covered["declared"] / n_exp <= hi
    assert covered["undeclared"] / n_exp < 0.8  # why a checkpoint CI must not be read as one


# ---------------------------------------------------------------------------------------------
# 2. seeds x items crossed: coverage, width and power


@pytest.mark.parametrize("seeds", [2, 3, 5])
@pytest.mark.parametrize("seed_sd", [SEED_SD, 0.0])
def test_crossed_variance_covers_at_95_percent_and_is_not_twice_too_wide(seeds: int, seed_sd: float) -> None:
    """Issue: 3 vs 3 covered 98 % (100 % without seed variance) with a half-width 1.9x (2.0x) the
    true sd. Goal 93-97 % with and without seed variance; the width is what Student's t on the
    seeds' degrees of freedom costs, no more."""
    rng = np.random.default_rng(1000 + seeds)
    n_exp, tasks, items, effect = 400, 20, 80, 0.03
    hits, points, half = 0, [], []
    for _ in range(n_exp):
        difficulty = rng.beta(2, 2, (tasks, items))

        def arm_scores(e: float, difficulty: np.ndarray = difficulty) -> np.ndarray:
            shift = rng.normal(0, seed_sd, (seeds, 1, 1)) + rng.normal(0, 1.5 * seed_sd, (seeds, tasks, 1))
            return rng.binomial(K, np.clip(difficulty[None] + e + shift, 0, 1)) / K

        a, b = arm_scores(effect), arm_scores(0.0)
        d = macro_deltas(
            {f"t{t}": a[:, t] for t in range(tasks)}, {f"t{t}": b[:, t] for t in range(tasks)}
        ).mean
        hits += d.lo <= effect <= d.hi
        points.append(d.delta)
        half.append((d.hi - d.lo) / 2)
    coverage = hits / n_exp
    assert 0.93 - 0.02 <= coverage <= 0.97 + 0.02, coverage  # 400 experiments: +-2 points of noise
    from rlpipe.analysis.stats import student_t_ppf

    width = np.median(half) / (1.96 * np.std(points))
    # t_{0.975, 2(s-1)} / 1.96 is the price of estimating the seed variance; 2.0x was the old excess
    assert width <= 1.15 * student_t_ppf(0.975, 2 * (seeds - 1)) / 1.96, width


def test_three_seeds_are_at_least_as_powerful_as_one_seed_with_a_declared_sd() -> None:
    """Issue: power 48 % with 3 seeds against 56 % with 1. More seeds must not buy less power."""
    rng = np.random.default_rng(31)
    n_exp, td, effect = 200, domains(), 0.03
    true_sd = math.sqrt(SEED_SD**2 + TASK_SEED_SD**2 / 30)
    power = {1: 0, 3: 0}
    for seeds in (1, 3):
        for _ in range(n_exp):
            table = experiment(rng, 2, seeds, effects=[effect, 0.0])
            d = compare(table, td, arm(0, seeds), arm(1, seeds), seed_sd=true_sd if seeds == 1 else None)
            power[seeds] += d["mean"].significant
    assert power[3] >= power[1] and power[3] / n_exp > 0.35


def test_seeds_needed_deliver_the_promised_power_by_simulation() -> None:
    """The seed count the report names for a difference of +0.03 reaches ~80 % power when the
    experiment is rerun with that many seeds (the pilot has 8 seeds a side so that its variance
    estimate, not the formula, is what is checked)."""
    rng = np.random.default_rng(3)
    tasks, items, effect = 30, 60, 0.03

    def arms(seeds: int) -> tuple[dict, dict]:
        difficulty = rng.beta(2, 2, (tasks, items))
        a, b = evaluate(rng, difficulty, effect, seeds), evaluate(rng, difficulty, 0.0, seeds)
        return {f"t{t}": a[:, t] for t in range(tasks)}, {f"t{t}": b[:, t] for t in range(tasks)}

    needed = seeds_for_power(effect, macro_deltas(*arms(8)).mean)
    assert needed is not None and 2 <= needed <= 20
    n_exp = 200
    power = sum(macro_deltas(*arms(needed)).mean.significant for _ in range(n_exp)) / n_exp
    assert 0.8 - 0.12 <= power <= 0.97, (needed, power)
    one_seed = macro_deltas(*arms(1)).mean
    assert one_seed.level == CHECKPOINT and seeds_for_power(effect, one_seed) is None


# ---------------------------------------------------------------------------------------------
# 3. degenerate input: a clear error or a stated caveat, never a silent number


def test_one_item_tasks_are_left_out_with_a_caveat_not_given_zero_variance() -> None:
    """Fifteen 1-item tasks gave a 78 % false-positive rate (zero-width CIs, p = 0)."""
    rng = np.random.default_rng(15)
    n_exp, hits = 300, 0
    for _ in range(n_exp):
        p = rng.random(15)
        a = {f"t{t}": [float(rng.random() < p[t])] for t in range(15)}
        b = {f"t{t}": [float(rng.random() < p[t])] for t in range(15)}
        a["big"], b["big"] = (rng.random(100) < 0.5).astype(float), (rng.random(100) < 0.5).astype(float)
        d = macro_deltas(a, b)
        hits += d.mean.significant
        assert math.isnan(d.tasks["t0"].lo) and not d.tasks["t0"].significant
        assert any("t0: 1 usable item" in c for c in d.mean.caveats)
    assert hits / n_exp <= allowance(0.05, n_exp)


def test_an_all_nan_task_does_not_make_the_overall_nan() -> None:
    rng = np.random.default_rng(0)
    a = {"t1": rng.random(50), "t2": np.full(50, np.nan)}
    b = {"t1": rng.random(50), "t2": rng.random(50)}
    d = macro_deltas(a, b)
    assert math.isfinite(d.mean.delta) and math.isfinite(d.mean.lo)
    assert d.mean.delta == pytest.approx(d.tasks["t1"].delta)
    assert any("t2: 50 of 50 items dropped" in c for c in d.mean.caveats)


def test_a_task_missing_from_one_run_is_a_stated_caveat_not_a_key_error() -> None:
    rng = np.random.default_rng(1)
    table = experiment(rng, 2, 1, tasks=6)
    del table[("c1_s0", 1)]["t03"]
    out = compare(table, domains(6), arm(0, 1), arm(1, 1))
    assert math.isfinite(out["mean"].delta)
    assert any("t03: not evaluated for c1_s0@1" in c for c in out["mean"].caveats)
    assert math.isnan(out["tasks"]["t03"].delta) and out["tasks"]["t03"].caveats
    with pytest.raises(ValueError, match="no evaluation scores for c9_s0@1"):
        compare(table, domains(6), [("c9_s0", 1)], arm(1, 1))


def test_runs_with_different_seed_counts_pool_the_seed_variance() -> None:
    rng = np.random.default_rng(2)
    difficulty = rng.beta(2, 2, (10, 50))
    table = {
        **as_items(evaluate(rng, difficulty, 0.0, 3), "c0"),
        **as_items(evaluate(rng, difficulty, 0.0, 1), "c1"),
    }
    d = compare(table, domains(10), arm(0, 3), arm(1, 1))["mean"]
    assert d.n_seeds == (3, 1) and d.level == CONFIGURATION and d.seed_source == "seeds"
    with pytest.raises(ValueError, match="same seeds"):
        macro_deltas({"t": np.zeros((2, 5)), "u": np.zeros((3, 5))}, {"t": np.zeros(5), "u": np.zeros(5)})


def checkpoint_items(rng, p: float, tasks=("a", "b"), n: int = 200) -> dict:
    return {t: {f"{t}{i}": float(rng.random() < p) for i in range(n)} for t in tasks}


def test_a_task_missing_at_one_checkpoint_is_left_out_of_the_selection_with_a_caveat() -> None:
    """It gave stop_step 0, a NaN delta and "training beyond it bought no measurable gain"."""
    rng = np.random.default_rng(9)
    steps = {s: checkpoint_items(rng, 0.2 + s / 100) for s in (0, 10, 20, 30)}
    del steps[20]["b"]
    sel = select_run(steps, {"a": "math", "b": "logic"})
    assert sel["tasks"] == ["a"] and any("b: not evaluated at step(s) 20" in c for c in sel["caveats"])
    assert sel["best"]["overall"]["step"] == 30 and sel["verdict"] == "needed"
    assert all(math.isfinite(v) for v in sel["test"]["overall"].values())


def test_a_single_checkpoint_says_there_is_nothing_to_select() -> None:
    rng = np.random.default_rng(10)
    sel = select_run({0: checkpoint_items(rng, 0.5)}, {"a": "math", "b": "logic"})
    assert sel["best"]["overall"]["step"] == 0 and any(
        "only one evaluated checkpoint" in c for c in sel["caveats"]
    )


# ---------------------------------------------------------------------------------------------
# 4. stopping: "no measurable gain" only from an equivalence test


def test_a_run_still_improving_is_not_called_done() -> None:
    """Issue: runs still improving by +0.06 got "training beyond step N bought no measurable gain"
    in 82 % of simulations. Now that needs TOST within the margin, which +0.06 never passes."""
    rng = np.random.default_rng(12)
    n_exp, said_done = 200, 0
    for _ in range(n_exp):
        rates = {s: 0.3 + 0.06 * s / 50 for s in (0, 10, 20, 30, 40, 50)}
        steps = {s: checkpoint_items(rng, r, n=60) for s, r in rates.items()}
        sel = select_run(steps, {"a": "math", "b": "logic"})
        said_done += sel["verdict"] == "equivalent" and sel["stop_step"] < 50 - 10
    assert said_done / n_exp <= allowance(0.05, n_exp)


def test_an_item_with_a_failed_sample_keeps_its_other_samples(tmp_path) -> None:
    """The paired CIs average an item's finite samples, as the summary's avg@k does: one failed
    sample used to make the whole item NaN, silently dropping it from every comparison."""
    import json

    from rlpipe.analysis.aggregate import item_matrix
    from rlpipe.tracking.manifest import sidecar, write_sidecar

    path = tmp_path / "scores.jsonl"
    rows = [("a", 1.0), ("a", None), ("a", 0.0), ("b", None), ("b", None), ("c", 1.0)]
    path.write_text(
        "".join(json.dumps({"task": "t", "id": i, "score": s, "split": "test"}) + "\n" for i, s in rows)
    )
    write_sidecar(sidecar(path), [path])
    items = item_matrix(path)["t"]
    assert items["a"] == 0.5 and items["c"] == 1.0 and math.isnan(items["b"])


def test_an_item_with_no_finite_sample_does_not_hide_its_checkpoint() -> None:
    """Such an item is NaN in the item table; a task's score is then the mean of its other items,
    as in the statistics, instead of NaN (which took the whole checkpoint out of the selection)."""
    from rlpipe.analysis.aggregate import task_score

    assert task_score({"a": 1.0, "b": float("nan"), "c": 0.0}) == 0.5 and math.isnan(task_score({}))
    rng = np.random.default_rng(13)
    steps = {s: checkpoint_items(rng, 0.2 + s / 100) for s in (0, 10, 20, 30)}
    steps[30]["a"]["a0"] = float("nan")
    sel = select_run(steps, {"a": "math", "b": "logic"})
    assert sel["best"]["overall"]["step"] == 30 and math.isfinite(sel["test"]["overall"][30])
