"""Checkpoint selection, stopping point and overfitting flag on item scores with a known story."""

from __future__ import annotations

import numpy as np
import pytest

from rlpipe.analysis.selection import select_run, validation_series

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
    # step 50 is only 0.01 below the best on 400 items: not significant -> stop there
    assert sel["stop_step"] == 50 and sel["stop_fraction"] == pytest.approx(1 / 3)
    # step 150 is far below the best: overfitting
    assert sel["overfitting"] and sel["overfit_step"] == 150
    assert sel["overfit_delta"] == pytest.approx(-0.31) and sel["overfit_hi"] < 0
    assert sel["best"]["math"]["step"] == 100 and sel["best"]["logic"]["step"] == 50  # tie -> earliest
    assert not sel["has_validation"]


def test_a_monotone_run_neither_overfits_nor_stops_early() -> None:
    steps = {0: items(0.1, 0.1), 10: items(0.4, 0.4), 20: items(0.8, 0.8)}
    sel = select_run(steps, TASK_DOMAIN)
    assert sel["best"]["overall"]["step"] == 20 and sel["stop_step"] == 20 and not sel["overfitting"]


def test_validation_chooses_and_test_reports() -> None:
    metrics = [
        {"step": 10, "validation_reward": 0.7, "validation_reward/math": 0.2},
        {"step": 20, "validation_reward": 0.5, "validation_reward/math": 0.9, "reward": 0.1},
        {"step": 20, "loss": 0.3},
    ]
    val = validation_series(metrics)
    assert val == {"overall": {10: 0.7, 20: 0.5}, "math": {10: 0.2, 20: 0.9}}
    steps = {0: items(0.1, 0.1), 10: items(0.2, 0.2), 20: items(0.8, 0.8)}
    sel = select_run(steps, TASK_DOMAIN, val)
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
    assert sel["best"]["logic"]["basis"] == "test"  # no validation metric for logic: labelled fallback
    assert np.isfinite(sel["best"]["logic"]["test_lo"])
