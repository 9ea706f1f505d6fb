"""Comparisons: seed families, paired vs hierarchical bootstrap, only significant changes listed."""

from __future__ import annotations

import numpy as np
import pytest

from rlpipe.analysis.compare import compare, delta_dict, families, significant_changes

TASK_DOMAIN = {"addition": "math", "sorting": "logic", "program": "simulation"}


def table(p: dict[str, float], n: int = 150, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {t: {f"{t}{i}": float(rng.random() < p[t]) for i in range(n)} for t in TASK_DOMAIN}


def test_families_group_seed_suffixes_only() -> None:
    runs = {"grpo_s0": {"seed": 0}, "grpo_s1": {"seed": 1}, "pc_s0": {"seed": 0}, "lora": {"seed": 0}}
    assert families(runs) == {"grpo": ["grpo_s0", "grpo_s1"], "pc_s0": ["pc_s0"], "lora": ["lora"]}


def test_compare_single_runs_finds_a_real_gain_and_no_change() -> None:
    base = table({"addition": 0.3, "sorting": 0.5, "program": 0.5}, seed=1)
    better = {**base, "addition": {i: 1.0 for i in base["addition"]}}  # every addition item solved
    items = {("a", 10): better, ("b", 10): base}
    out = compare(items, TASK_DOMAIN, [("a", 10)], [("b", 10)])
    add = out["tasks"]["addition"]
    assert add.significant and add.delta == pytest.approx(1 - np.mean(list(base["addition"].values())))
    assert out["domains"]["math"].delta == pytest.approx(add.delta)
    assert out["domains"]["logic"].delta == 0.0 and not out["domains"]["logic"].significant
    assert out["mean"].delta == pytest.approx(add.delta / 3)  # mean over three tasks
    assert out["n_seeds"] == (1, 1)


def test_compare_over_seeds_uses_the_hierarchical_bootstrap() -> None:
    p = {"addition": 0.4, "sorting": 0.4, "program": 0.4}
    items = {("a_s0", 5): table(p, seed=1), ("a_s1", 5): table(p, seed=2), ("b", 5): table(p, seed=3)}
    out = compare(items, TASK_DOMAIN, [("a_s0", 5), ("a_s1", 5)], [("b", 5)])
    assert out["n_seeds"] == (2, 1) and out["mean"].n_seeds == (2, 1)
    assert not out["mean"].significant  # same underlying rates


def test_significant_changes_lists_only_significant_ones() -> None:
    def d(delta, lo, hi):
        return {
            "delta": delta,
            "lo": lo,
            "hi": hi,
            "p": 0.01,
            "significant": lo > 0 or hi < 0,
            "n_items": 100,
        }

    rows = [
        {
            "run": "x",
            "ref": "grpo@10",
            "domains": {"math": d(0.1, 0.05, 0.15), "logic": d(-0.02, -0.05, 0.01)},
            "tasks": {"addition": d(0.1, 0.05, 0.15), "sorting": d(-0.08, -0.12, -0.04)},
        }
    ]
    ups, downs = significant_changes(rows)
    assert [(e["level"], e["name"]) for e in ups] == [("domain", "math"), ("task", "addition")]
    assert [(e["level"], e["name"]) for e in downs] == [("task", "sorting")]
    assert (
        delta_dict(
            compare(
                {
                    ("a", 1): table({t: 0.5 for t in TASK_DOMAIN}),
                    ("b", 1): table({t: 0.5 for t in TASK_DOMAIN}),
                },
                TASK_DOMAIN,
                [("a", 1)],
                [("b", 1)],
            )["mean"]
        )["delta"]
        == 0.0
    )
