"""Which checkpoint of a run to keep, when to stop, and whether the run overfits.

* **Best checkpoint** per domain and overall: chosen on *validation* when the trainer logged a
  validation metric at checkpoint steps (``validation_reward`` / ``validation_reward/<domain>``
  rows in ``metrics.jsonl``, written by early stopping), then *reported on test*. Without a
  validation metric the choice falls back to the test scores and says so (``basis: "test"``):
  picking and reporting on the same items is optimistically biased.
* **Optimal stopping point**: the earliest checkpoint whose overall score is not significantly
  below the best one (paired, stratified bootstrap over the same test items). Training past it
  bought nothing measurable.
* **Overfitting flag**: some checkpoint after the best is significantly worse than the best
  (:func:`rlpipe.analysis.stats.overfitting_check`, Bonferroni-corrected over later checkpoints).

"Overall" is the mean over tasks (the report's ``mean`` column); a domain's score is the mean of
its tasks.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlpipe.analysis.stats import macro_average, overfitting_check, paired_macro_delta

#: task -> item id -> item score (mean over its samples)
Items = Mapping[str, Mapping[str, float]]

VALIDATION_KEY = "validation_reward"
OVERALL = "overall"


def validation_series(metrics: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, float]]:
    """``overall``/domain -> step -> validation value, from metrics rows (last value per step wins)."""
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for row in metrics:
        step = row.get("step")
        if not isinstance(step, int | float):
            continue
        for key, value in row.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                continue
            if key == VALIDATION_KEY:
                out[OVERALL][int(step)] = float(value)
            elif key.startswith(VALIDATION_KEY + "/"):
                out[key.split("/", 1)[1]][int(step)] = float(value)
    return dict(out)


def _tree(items: Items, tasks: Sequence[str], task_domain: Mapping[str, str], by: str) -> dict[str, Any]:
    """``{group: {task: aligned item scores}}``: group = domain, or each task its own group."""
    tree: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    for task in tasks:
        ids = sorted(items[task])
        group = task_domain[task] if by == "domain" else task
        tree[group][task] = np.array([items[task][i] for i in ids], dtype=float)
    return dict(tree)


def _aligned(items: Mapping[int, Items], tasks: Sequence[str]) -> dict[int, dict[str, dict[str, float]]]:
    """Restrict every step to the items all steps evaluated (they should be the same)."""
    common = {t: set.intersection(*(set(items[s].get(t, {})) for s in items)) for t in tasks}
    return {s: {t: {i: items[s][t][i] for i in common[t]} for t in tasks} for s in items}


def _score(items: Items, tasks: Sequence[str], domain: str | None, task_domain: Mapping[str, str]) -> float:
    chosen = [t for t in tasks if domain is None or task_domain[t] == domain]
    return float(np.mean([np.mean(list(items[t].values())) for t in chosen]))


def _argmax(values: Mapping[int, float]) -> int:
    """Step with the highest value; ties go to the earliest (less training, less drift)."""
    best = max(values.values())
    return min(s for s, v in values.items() if v == best)


def select_run(
    items: Mapping[int, Items],
    task_domain: Mapping[str, str],
    validation: Mapping[str, Mapping[int, float]] | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Best checkpoints, stopping point and overfitting flag of one run.

    ``items`` maps every evaluated step of the run (0 = its base model) to its test item scores.
    """
    steps = sorted(items)
    tasks = sorted(task_domain)
    domains = sorted(set(task_domain.values()))
    items = _aligned(items, tasks)
    validation = validation or {}
    test = {
        key: {s: _score(items[s], tasks, None if key == OVERALL else key, task_domain) for s in steps}
        for key in [OVERALL, *domains]
    }
    best: dict[str, dict[str, Any]] = {}
    for key in [OVERALL, *domains]:
        val = {s: v for s, v in validation.get(key, {}).items() if s in items}
        basis = "validation" if val else "test"
        step = _argmax(val if val else test[key])
        if key == OVERALL:
            ci = macro_average(_tree(items[step], tasks, task_domain, "task"), n_boot=n_boot, seed=seed)
            lo, hi = ci.lo, ci.hi
        else:
            ci = macro_average(_tree(items[step], tasks, task_domain, "domain"), n_boot=n_boot, seed=seed)
            lo, hi = ci.domains[key].lo, ci.domains[key].hi
        best[key] = {
            "step": step,
            "basis": basis,
            "validation": val.get(step),
            "test": test[key][step],
            "test_lo": lo,
            "test_hi": hi,
        }

    overall = best[OVERALL]["step"]
    trees = {s: _tree(items[s], tasks, task_domain, "task") for s in steps}
    stop = overall
    for s in steps:
        if s >= overall:
            break
        d = paired_macro_delta(trees[s], trees[overall], n_boot=n_boot, seed=seed)
        if not (d.significant and d.delta < 0):
            stop = s
            break
    pooled = {s: np.concatenate([trees[s][t][t] for t in tasks]) for s in steps}
    later = overfitting_check(steps, [pooled[s] for s in steps], overall, n_boot=n_boot, seed=seed)
    worse = {s: d for s, d in later.items() if d.significant and d.delta < 0}
    worst = min(worse, key=lambda s: worse[s].delta) if worse else None
    final = steps[-1]
    return {
        "steps": steps,
        "test": test,
        "best": best,
        "stop_step": stop,
        "stop_fraction": stop / final if final else math.nan,
        "overfitting": bool(worse),
        "overfit_step": worst,
        "overfit_delta": worse[worst].delta if worst is not None else None,
        "overfit_lo": worse[worst].lo if worst is not None else None,
        "overfit_hi": worse[worst].hi if worst is not None else None,
        "final_step": final,
        "has_validation": any(validation.get(k) for k in validation),
    }
