"""Which checkpoint of a run to keep, when to stop, whether the run overfits, and which
configuration (if any) wins.

Everything is the report's one estimand, the mean over tasks (a domain: the mean of its tasks), and
nothing is chosen on the items it is reported on:

* **Best checkpoint** per domain and overall: the step with the highest score on the suite's
  *validation* split (``split: validation`` items, :mod:`rlpipe.data.splits`), then *reported on
  test*. A suite without a validation split (``validation_fraction: 0``) falls back to choosing on
  test and says so (``basis: "test"``): choosing and reporting on the same items is optimistic.
* **Optimal stopping point**: the earliest checkpoint not significantly below the best one on test
  (paired bootstrap, Holm over the earlier checkpoints). Training past it bought nothing measurable.
* **Overfitting flag**: some checkpoint after the best is significantly worse than the best on
  test (Holm over the later checkpoints).
* **Winner** (:func:`choose_winner`): the configuration best on validation, named the winner only
  when it is significantly better on test than every other configuration (Holm over those
  comparisons); otherwise there is no significant winner and the top set is listed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rlpipe.analysis.stats import Delta, holm, macro_average, macro_deltas

#: task -> item id -> item score (mean over its samples)
Items = Mapping[str, Mapping[str, float]]

OVERALL = "overall"
ALPHA = 0.05


def _tree(items: Items, tasks: Sequence[str], task_domain: Mapping[str, str]) -> dict[str, Any]:
    """``{domain: {task: aligned item scores}}`` for :func:`macro_average`."""
    tree: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    for task in tasks:
        ids = sorted(items[task])
        tree[task_domain[task]][task] = np.array([items[task][i] for i in ids], dtype=float)
    return dict(tree)


def _aligned(items: Mapping[int, Items], tasks: Sequence[str]) -> dict[int, dict[str, dict[str, float]]]:
    """Restrict every step to the items all steps evaluated (they should be the same)."""
    common = {t: set.intersection(*(set(items[s].get(t, {})) for s in items)) for t in tasks}
    return {s: {t: {i: items[s][t][i] for i in sorted(common[t])} for t in tasks} for s in items}


def _score(items: Items, tasks: Sequence[str], domain: str | None, task_domain: Mapping[str, str]) -> float:
    chosen = [t for t in tasks if (domain is None or task_domain[t] == domain) and items[t]]
    return float(np.mean([np.mean(list(items[t].values())) for t in chosen])) if chosen else math.nan


def _argmax(values: Mapping[int, float]) -> int:
    """Step with the highest value; ties go to the earliest (less training, less drift)."""
    best = max(v for v in values.values() if v == v)
    return min(s for s, v in values.items() if v == best)


def _vs(
    items: Mapping[int, Items], tasks: Sequence[str], step: int, ref: int, n_boot: int, seed: int
) -> Delta:
    """Overall (mean over tasks) ``step - ref`` on the same items."""
    a = {t: [items[step][t][i] for i in items[step][t]] for t in tasks}
    b = {t: [items[ref][t][i] for i in items[step][t]] for t in tasks}
    return macro_deltas(a, b, n_boot=n_boot, seed=seed).mean


def _significantly_below(deltas: Mapping[int, Delta]) -> dict[int, tuple[Delta, float]]:
    """The steps whose delta to the best is negative and significant after Holm over ``deltas``."""
    steps = sorted(deltas)
    adjusted = holm([deltas[s].p_value for s in steps])
    pairs = zip(steps, adjusted, strict=True)
    return {s: (deltas[s], p) for s, p in pairs if p < ALPHA and deltas[s].delta < 0}


def select_run(
    test: Mapping[int, Items],
    task_domain: Mapping[str, str],
    validation: Mapping[int, Items] | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Best checkpoints, stopping point and overfitting flag of one run.

    ``test`` (and ``validation``, when the suite has that split) map every evaluated step of the
    run (0 = its base model) to its item scores.
    """
    steps = sorted(test)
    tasks = sorted(task_domain)
    domains = sorted(set(task_domain.values()))
    test = _aligned(test, tasks)
    has_val = bool(validation) and any(any(v.values()) for v in validation.values())
    val = _aligned(validation, tasks) if has_val else None
    basis = "validation" if val else "test"
    scores = {
        split: {
            key: {s: _score(chosen[s], tasks, None if key == OVERALL else key, task_domain) for s in steps}
            for key in [OVERALL, *domains]
        }
        for split, chosen in (("test", test), ("validation", val))
        if chosen is not None
    }
    best: dict[str, dict[str, Any]] = {}
    for key in [OVERALL, *domains]:
        step = _argmax(scores[basis][key])
        ci = macro_average(_tree(test[step], tasks, task_domain), n_boot=n_boot, seed=seed)
        lo, hi = (ci.lo, ci.hi) if key == OVERALL else (ci.domains[key].lo, ci.domains[key].hi)
        best[key] = {
            "step": step,
            "basis": basis,
            "validation": scores["validation"][key][step] if val else None,
            "test": scores["test"][key][step],
            "test_lo": lo,
            "test_hi": hi,
        }

    chosen = best[OVERALL]["step"]
    earlier = {s: _vs(test, tasks, s, chosen, n_boot, seed) for s in steps if s < chosen}
    below = _significantly_below(earlier)
    stop = min((s for s in earlier if s not in below), default=chosen)
    later = {s: _vs(test, tasks, s, chosen, n_boot, seed) for s in steps if s > chosen}
    worse = _significantly_below(later)
    worst = min(worse, key=lambda s: worse[s][0].delta) if worse else None
    final = steps[-1]
    return {
        "steps": steps,
        "test": scores["test"],
        "validation": scores.get("validation"),
        "best": best,
        "stop_step": stop,
        "stop_fraction": stop / final if final else math.nan,
        "overfitting": bool(worse),
        "overfit_step": worst,
        "overfit_delta": worse[worst][0].delta if worst is not None else None,
        "overfit_lo": worse[worst][0].lo if worst is not None else None,
        "overfit_hi": worse[worst][0].hi if worst is not None else None,
        "overfit_p_adj": worse[worst][1] if worst is not None else None,
        "later_tested": len(later),
        "earlier_tested": len(earlier),
        "final_step": final,
        "has_validation": val is not None,
    }


def choose_winner(
    validation_score: Mapping[str, float],
    test_delta: Callable[[str, str], Delta],
) -> dict[str, Any]:
    """The configuration best on validation, and whether it is significantly best on test.

    ``validation_score`` maps each configuration to its validation score at its chosen
    checkpoints (mean over its seeds); ``test_delta(a, b)`` is the test-split ``a - b`` (mean over
    tasks, seeds resampled). The candidate is compared with every other configuration, Holm over
    those comparisons: it is the ``winner`` only if every adjusted test is significant and
    positive. ``top`` is the candidate and every configuration it does not significantly beat.
    """
    configs = sorted(validation_score)
    candidate = max(configs, key=lambda c: (validation_score[c], -configs.index(c)))
    others = [c for c in configs if c != candidate]
    deltas = {c: test_delta(candidate, c) for c in others}
    adjusted = dict(zip(others, holm([deltas[c].p_value for c in others]), strict=True))
    beaten = {c for c in others if adjusted[c] < ALPHA and deltas[c].delta > 0}
    return {
        "candidate": candidate,
        "winner": candidate if others and beaten == set(others) else None,
        "top": [candidate, *[c for c in others if c not in beaten]],
        "comparisons": {
            c: {"delta": deltas[c].delta, "lo": deltas[c].lo, "hi": deltas[c].hi, "p": deltas[c].p_value,
                "p_adj": adjusted[c], "beaten": c in beaten}
            for c in others
        },
        "validation": dict(validation_score),
        "tests": len(others),
    }  # fmt: skip
