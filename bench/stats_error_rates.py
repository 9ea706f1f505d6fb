"""Error rates of the report's statistics by simulation, before (HEAD 2a370db) and after issue 12.

Every scenario has no true difference, so every "significant" result is a false positive, except
the estimand counter-example, whose right answer is known. "Before" runs the 2a370db code itself
(its ``analysis/stats.py`` and ``analysis/compare.py`` read from git), "after" the installed rlpipe.

    python bench/stats_error_rates.py --out bench/results/stats_error_rates.json

Writes the JSON and a markdown table next to it (``.md``). About 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from rlpipe.analysis.compare import compare, comparison_row, correct, significant_changes
from rlpipe.analysis.selection import choose_winner
from rlpipe.analysis.stats import macro_deltas

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "2a370db"
TASKS, DOMAINS, RUNS, ITEMS, K = 30, 3, 5, 100, 4
TASK_DOMAIN = {f"t{i:02d}": f"d{i % DOMAINS}" for i in range(TASKS)}


def old_modules() -> tuple[Any, Any]:
    """``(stats, compare)`` of the BEFORE commit, importable side by side with today's."""
    folder = Path(tempfile.mkdtemp(prefix="rlpipe-before-"))
    for name in ("stats", "compare"):
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{BEFORE}:src/rlpipe/analysis/{name}.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.replace("from rlpipe.analysis.stats import", "from before_stats import")
        (folder / f"before_{name}.py").write_text(text)
    sys.path.insert(0, str(folder))
    return importlib.import_module("before_stats"), importlib.import_module("before_compare")


def rows_of(compare_fn: Any, items: dict, n_boot: int, seed: int) -> list[dict]:
    rows = []
    for r in range(1, RUNS + 1):
        res = compare_fn(items, TASK_DOMAIN, [(f"r{r}", 1)], [("r0", 1)], n_boot=n_boot, seed=seed)
        rows.append(comparison_row(f"r{r}", "r0@1", res))
    return rows


def null_items(rng: np.random.Generator) -> dict:
    difficulty = rng.uniform(0.05, 0.95, size=(TASKS, ITEMS))
    out = {}
    for r in range(RUNS + 1):
        s = (rng.random((TASKS, ITEMS, K)) < difficulty[:, :, None]).mean(axis=-1)
        out[(f"r{r}", 1)] = {
            t: {f"{t}/{i}": float(s[j, i]) for i in range(ITEMS)} for j, t in enumerate(TASK_DOMAIN)
        }
    return out


def fwer(n_exp: int, old_compare: Any) -> dict[str, Any]:
    """30 tasks × 5 runs vs a baseline, all equal: share of experiments listing any significant change."""
    rng = np.random.default_rng(2026)
    before = after = headline_before = headline_after = 0
    for e in range(n_exp):
        items = null_items(rng)
        old = rows_of(old_compare.compare, items, 300, e)
        before += bool(sum(map(len, old_compare.significant_changes(old))))
        headline_before += any(r["mean"]["significant"] for r in old)
        new = rows_of(compare, items, 300, e)
        correct(new, "vs baseline")
        after += bool(sum(map(len, significant_changes(new))))
        headline_after += any(r["mean"]["significant"] for r in new)
    return {
        "experiments": n_exp,
        "any_change_listed": {"before": before / n_exp, "after": after / n_exp},
        "any_overall_delta_significant": {"before": headline_before / n_exp, "after": headline_after / n_exp},
    }


def seeds(n_exp: int, old_stats: Any) -> dict[str, Any]:
    """3 seeds per configuration, seed effect sd 0.03, 10 tasks: false-positive rate of the overall delta."""
    rng = np.random.default_rng(1)
    tasks, items, s = 10, 100, 3
    before = after = 0
    for e in range(n_exp):
        difficulty = rng.uniform(0.05, 0.95, (tasks, items))
        a, b = (
            np.clip(
                (rng.random((s, tasks, items, K)) < difficulty[None, :, :, None]).mean(-1)
                + rng.normal(0, 0.03, (s, 1, 1)),
                0,
                1,
            )
            for _ in range(2)
        )
        # before: seeds pooled with items, all tasks concatenated (compare.py's seeds path)
        before += old_stats.hierarchical_bootstrap_delta(
            a.reshape(s, -1), b.reshape(s, -1), n_boot=300, seed=e
        ).significant
        after += macro_deltas(
            {f"t{j}": a[:, j] for j in range(tasks)},
            {f"t{j}": b[:, j] for j in range(tasks)},
            n_boot=300,
            seed=e,
        ).mean.significant
    return {"experiments": n_exp, "false_positive_rate": {"before": before / n_exp, "after": after / n_exp}}


def winner(n_exp: int) -> dict[str, Any]:
    """Five equal configurations: share of experiments that name a winner."""
    rng = np.random.default_rng(7)
    configs, tasks, items = 5, 10, 100
    named = 0
    for e in range(n_exp):
        difficulty = rng.uniform(0.05, 0.95, size=(tasks, items))
        val, test = (
            (rng.random((configs, tasks, items, K)) < difficulty[None, :, :, None]).mean(-1) for _ in range(2)
        )

        def delta(x: str, y: str, test: np.ndarray = test, seed: int = e):
            i, j = int(x[1:]), int(y[1:])
            return macro_deltas(
                {f"t{t}": test[i, t] for t in range(tasks)},
                {f"t{t}": test[j, t] for t in range(tasks)},
                n_boot=300,
                seed=seed,
            ).mean

        named += (
            choose_winner({f"c{c}": float(val[c].mean()) for c in range(configs)}, delta)["winner"]
            is not None
        )
    # before: "Best run" was the highest test point estimate, named in every experiment
    return {"experiments": n_exp, "winner_named": {"before": 1.0, "after": named / n_exp}}


def estimand(old_compare: Any) -> dict[str, Any]:
    """The audit's counter-example: 200 items at -0.10 and 20 items at +0.30; mean over tasks +0.10."""
    big_a = {f"b{i}": float(i >= 20) for i in range(200)}
    small_a = {f"s{i}": float(i < 6) for i in range(20)}
    base = {"big": {f"b{i}": 1.0 for i in range(200)}, "small": {f"s{i}": 0.0 for i in range(20)}}
    td = {"big": "x", "small": "y"}
    items = {
        ("a", 1): {"big": big_a, "small": small_a},
        ("a2", 1): {"big": big_a, "small": small_a},
        ("b", 1): base,
    }
    out = {}
    for label, module in (("before", old_compare), ("after", sys.modules["rlpipe.analysis.compare"])):
        one = module.compare(items, td, [("a", 1)], [("b", 1)], n_boot=2000)["mean"]
        two = module.compare(items, td, [("a", 1), ("a2", 1)], [("b", 1)], n_boot=2000)["mean"]
        out[label] = {"one_seed": [one.delta, one.lo, one.hi], "same_seed_twice": [two.delta, two.lo, two.hi]}
    return out


def markdown(res: dict[str, Any]) -> str:
    f, s, w, e = res["fwer"], res["seeds"], res["winner"], res["estimand"]
    pct = lambda x: f"{100 * x:.1f} %"  # noqa: E731
    ci = lambda v: f"{v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]"  # noqa: E731
    lines = [
        f"# Error rates of the report's statistics ({res['date']}, numpy {res['numpy']})",
        "",
        f"Before = HEAD {BEFORE}'s analysis code, after = this commit's; same simulated data. Goal: ≤ 5 %.",
        "",
        "| scenario (no true difference) | experiments | before | after |",
        "|---|---|---|---|",
        f"| 30 tasks × 5 runs vs baseline: any significant change listed | {f['experiments']} | "
        f"{pct(f['any_change_listed']['before'])} | {pct(f['any_change_listed']['after'])} |",
        f"| same: any run's overall delta significant | {f['experiments']} | "
        f"{pct(f['any_overall_delta_significant']['before'])} | "
        f"{pct(f['any_overall_delta_significant']['after'])} |",
        f"| 3 vs 3 seeds (seed effect sd 0.03), overall delta significant | {s['experiments']} | "
        f"{pct(s['false_positive_rate']['before'])} | {pct(s['false_positive_rate']['after'])} |",
        f"| 5 equal configurations: a winner named | {w['experiments']} | "
        f"{pct(w['winner_named']['before'])} | {pct(w['winner_named']['after'])} |",
        "",
        "Estimand counter-example (200 items at −0.10, 20 items at +0.30; the mean over tasks is +0.10):",
        "",
        "| | one seed | the same seed twice |",
        "|---|---|---|",
        f"| before | {ci(e['before']['one_seed'])} | {ci(e['before']['same_seed_twice'])} |",
        f"| after | {ci(e['after']['one_seed'])} | {ci(e['after']['same_seed_twice'])} |",
        "",
        "The learning verdict's rates under autocorrelated rewards: `trend_power.md`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "stats_error_rates.json"))
    parser.add_argument("--experiments", type=int, default=200)
    args = parser.parse_args()
    t0 = time.monotonic()
    old_stats, old_compare = old_modules()
    res = {
        "date": dt.date.today().isoformat(),
        "numpy": np.__version__,
        "before_commit": BEFORE,
        "fwer": fwer(args.experiments, old_compare),
        "seeds": seeds(args.experiments, old_stats),
        "winner": winner(args.experiments),
        "estimand": estimand(old_compare),
    }
    res["seconds"] = round(time.monotonic() - t0, 1)
    out = Path(args.out)
    out.write_text(json.dumps(res, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(res))
    print(markdown(res))
    assert math.isfinite(res["seconds"])


if __name__ == "__main__":
    main()
