"""Checkpoint selection, stopping point and overfitting flag on item scores with a known story."""

from __future__ import annotations

import numpy as np
import pytest

from rlpipe.analysis.selection import select_run

TASK_DOMAIN = {"addition": "math", "sorting": "logic"}


def items(p_add: float, p_sort: float, n: int = 200, shift: int = 0) -> dict:
    """Deterministic binary items: round(p * n) consecutive items solved, starting at ``shift``."""
    k_add, k_sort = round(p_add * n), round(p_sort * n)
    return {
        "addition": {f"a{i}": float(shift <= i < shift + k_add) for i in range(n)},
        "sorting": {f"s{i}": float(i < k_sort) for i in range(n)},
    }


def test_rise_then_collapse_picks_the_peak_flags_overfitting_and_an_early_stop() -> None:
    # step 100 solves 4 addition items more than step 50 (2 lost, 6 gained): a difference of noise size
    steps = {0: items(0.2, 0.2), 50: items(0.6, 0.6), 100: items(0.62, 0.6, shift=2), 150: items(0.3, 0.3)}
    sel = select_run(steps, TASK_DOMAIN)
    best = sel["best"]["overall"]
    assert best["step"] == 100 and best["basis"] == "test"
    assert best["test"] == pytest.approx(0.61)
    assert best["test_lo"] < 0.61 < best["test_hi"]
    # step 50 is only 0.01 below the best on 400 items: not significantly below, but not shown within
    # the 0.01 margin either -> undetermined, never "training beyond it bought nothing"
    assert sel["verdict"] == "undetermined" and sel["stop_step"] is None
    assert sel["undetermined_step"] == 50 and sel["stop_delta"] == pytest.approx(-0.01)
    assert sel["stop_lo"] < -0.01 < sel["stop_hi"]
    # with a 5-point margin the same difference is shown equivalent: stop at 50
    wide = select_run(steps, TASK_DOMAIN, margin=0.05)
    assert wide["verdict"] == "equivalent" and wide["stop_step"] == 50
    assert wide["stop_fraction"] == pytest.approx(1 / 3)
    # step 150 is far below the best: overfitting
    assert sel["overfitting"] and sel["overfit_step"] == 150
    assert sel["overfit_delta"] == pytest.approx(-0.31) and sel["overfit_hi"] < 0
    assert sel["best"]["math"]["step"] == 100 and sel["best"]["logic"]["step"] == 50  # tie -> earliest
    assert not sel["has_validation"]


def test_a_monotone_run_neither_overfits_nor_stops_early() -> None:
    steps = {0: items(0.1, 0.1), 10: items(0.4, 0.4), 20: items(0.8, 0.8)}
    sel = select_run(steps, TASK_DOMAIN)
    assert sel["best"]["overall"]["step"] == 20 and sel["stop_step"] == 20 and not sel["overfitting"]
    assert sel["verdict"] == "needed"


def test_validation_chooses_and_test_reports() -> None:
    test = {0: items(0.1, 0.1), 10: items(0.2, 0.2), 20: items(0.8, 0.8)}
    # on the validation items step 10 looks best overall, step 20 best on math
    validation = {0: items(0.1, 0.1, n=60), 10: items(0.5, 0.9, n=60), 20: items(0.6, 0.3, n=60)}
    sel = select_run(test, TASK_DOMAIN, validation)
    assert sel["has_validation"]
    assert sel["best"]["overall"] == pytest.approx(
        {
            "step": 10,
            "basis": "validation",
            "validation": 0.7,
            "test": 0.2,
            "test_lo": sel["best"]["overall"]["test_lo"],
            "test_hi": sel["best"]["overall"]["test_hi"],
        }
    )
    assert sel["best"]["math"]["step"] == 20 and sel["best"]["math"]["basis"] == "validation"
    assert sel["best"]["logic"]["step"] == 10
    assert np.isfinite(sel["best"]["logic"]["test_lo"])
    # the test split then says step 20 is far better: no overfitting can be claimed after 10
    assert not sel["overfitting"]


def test_overfitting_is_task_weighted_like_the_best_step() -> None:
    """The audit's case: the best step was chosen task-weighted but overfitting was tested on
    pooled items, so one big task's drop decided it. Mean over tasks, the drop is not significant."""
    n_big, n_small = 1000, 40
    base = {"big": {f"b{i}": 0.0 for i in range(n_big)}, "small": {f"s{i}": 0.0 for i in range(n_small)}}
    best = {
        "big": {f"b{i}": float(i < 600) for i in range(n_big)},
        "small": {f"s{i}": float(i < 20) for i in range(n_small)},
    }
    later = {  # big task -0.10 (significant on its own), small task +0.06
        "big": {f"b{i}": float(i < 500) for i in range(n_big)},
        "small": {f"s{i}": float(i < 22) for i in range(n_small)},
    }
    sel = select_run(
        {0: base, 10: best, 20: later}, {"big": "d", "small": "d"}, {0: base, 10: best, 20: later}
    )
    pooled_drop = (500 + 22) / (n_big + n_small) - (600 + 20) / (n_big + n_small)
    assert pooled_drop < -0.09  # what the pooled check tested, and flagged
    assert sel["best"]["overall"]["step"] == 10
    assert not sel["overfitting"]  # task-weighted drop (-0.10 + 0.05) / 2 = -0.025 is within noise


def test_overfitting_uses_holm_over_the_later_checkpoints() -> None:
    """A decline significant at 5 % on its own (z ~ 2.5) is not after Holm over 10 checkpoints."""
    rng = np.random.default_rng(13)
    best = (rng.random(400) < 0.5).astype(float)
    ones, zeros = np.flatnonzero(best == 1), np.flatnonzero(best == 0)
    later = best.copy()
    later[ones[:25]] = 0.0  # 25 items lost, 10 gained: delta = -15/400
    later[zeros[:10]] = 1.0

    def run(values: np.ndarray) -> dict:
        return {"t": {str(i): float(v) for i, v in enumerate(values)}}

    steps = {0: run(best), **{s: run(later) for s in range(100, 1100, 100)}}
    sel = select_run(steps, {"t": "d"}, steps)
    assert sel["best"]["overall"]["step"] == 0 and sel["later_tested"] == 10
    assert not sel["overfitting"]
    one_later = select_run({0: run(best), 100: run(later)}, {"t": "d"}, {0: run(best), 100: run(later)})
    assert one_later["overfitting"]  # a single later checkpoint: the 5 % level
