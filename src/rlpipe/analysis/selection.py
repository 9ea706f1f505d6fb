"""Which checkpoint of a run to keep, when to stop, whether the run overfits, and which
configuration (if any) wins.

Everything is the report's one estimand, the mean over tasks (a domain: the mean of its tasks), and
nothing is chosen on the items it is reported on:

* **Best checkpoint** per domain and overall: the step with the highest score on the suite's
  *validation* split (``split: validation`` items, :mod:`rlpipe.data.splits`), then *reported on
  test*. A suite without a validation split (``validation_fraction: 0``) falls back to choosing on
  test and says so (``basis: "test"``): choosing and reporting on the same items is optimistic.
* **Optimal stopping point**: the earliest checkpoint shown *equivalent* to the best one on test by
  two one-sided tests (TOST, margin ``margin`` on the mean over tasks, Holm over the earlier
  checkpoints): only then did training past it buy no gain larger than the margin. Absence of a
  significant difference is not evidence of no difference: when no earlier checkpoint is shown
  equivalent and some is not significantly below either, the stopping point is *undetermined*
  and the earliest such checkpoint's difference is reported with its CI.
* **Overfitting flag**: some checkpoint after the best is significantly worse than the best on
  test (Holm over the later checkpoints).
* **Winner** (:func:`choose_winner`): the configuration best on validation, named the winner only
  when it is significantly better on test than every other configuration (Holm over those
  comparisons) *as configurations* (every comparison's delta carries seed variance: several seeds,
  or a declared ``seed_sd``); otherwise there is no winner and the top set is listed. With one seed
  per configuration and no declared seed variance the comparisons are between checkpoints, and the
  best checkpoint is named as that, never as a winning configuration.

Tasks missing at some checkpoint are left out of the run's selection, and the selection says so
(``caveats``); a run with a single checkpoint has nothing to select and says that too.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rlpipe.analysis.aggregate import task_score
from rlpipe.analysis.stats import (
    CHECKPOINT,
    CONFIGURATION,
    Delta,
    holm,
    macro_average,
    macro_deltas,
    student_t_cdf,
)

#: task -> item id -> item score (mean over its samples)
Items = Mapping[str, Mapping[str, float]]

OVERALL = "overall"
ALPHA = 0.05
#: Equivalence margin of the stopping test (mean over tasks, score units): checkpoints within
#: +-1 point of the best are "as good". The experiment's ``statistics.equivalence_margin`` sets it.
EQUIVALENCE_MARGIN = 0.01


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


def _present(items: Mapping[int, Items], tasks: Sequence[str]) -> tuple[list[str], list[str]]:
    """(tasks with items at every step, one caveat per task missing at some step)."""
    kept, notes = [], []
    for t in tasks:
        absent = [s for s in sorted(items) if not items[s].get(t)]
        if absent:
            notes.append(
                f"{t}: not evaluated at step(s) {', '.join(map(str, absent))}; left out of the selection"
            )
        else:
            kept.append(t)
    return kept, notes


def tost_p(d: Delta, margin: float) -> float:
    """p of two one-sided t tests that ``|true delta| < margin`` (the larger one-sided p).

    Equivalence is declared when it is below alpha: the ``1 - 2 alpha`` CI lies inside
    ``(-margin, +margin)``. NaN for an undefined delta; a zero-``se`` delta is 0 inside the margin,
    1 outside it.
    """
    if not (math.isfinite(d.delta) and math.isfinite(d.se)):
        return math.nan
    if d.se == 0.0:
        return 0.0 if abs(d.delta) < margin else 1.0
    t_low, t_high = (d.delta + margin) / d.se, (d.delta - margin) / d.se
    df = max(1, d.df)
    return max(1.0 - student_t_cdf(t_low, df), student_t_cdf(t_high, df))


def _score(items: Items, tasks: Sequence[str], domain: str | None, task_domain: Mapping[str, str]) -> float:
    chosen = [t for t in tasks if (domain is None or task_domain[t] == domain) and items[t]]
    return float(np.mean([task_score(items[t]) for t in chosen])) if chosen else math.nan


def _argmax(values: Mapping[int, float]) -> int:
    """Step with the highest value; ties go to the earliest (less training, less drift)."""
    best = max(v for v in values.values() if v == v)
    return min(s for s, v in values.items() if v == best)


def _vs(items: Mapping[int, Items], tasks: Sequence[str], step: int, ref: int) -> Delta:
    """Overall (mean over tasks) ``step - ref`` on the same items: two checkpoints of one run."""
    a = {t: [items[step][t][i] for i in items[step][t]] for t in tasks}
    b = {t: [items[ref][t][i] for i in items[step][t]] for t in tasks}
    return macro_deltas(a, b).mean


def _significantly_below(deltas: Mapping[int, Delta]) -> dict[int, tuple[Delta, float]]:
    """The steps whose delta to the best is negative and significant after Holm over ``deltas``."""
    steps = sorted(deltas)
    adjusted = holm([deltas[s].p_value for s in steps])
    pairs = zip(steps, adjusted, strict=True)
    return {s: (deltas[s], p) for s, p in pairs if p < ALPHA and deltas[s].delta < 0}


def _stopping(earlier: Mapping[int, Delta], chosen: int, margin: float) -> dict[str, Any]:
    """The stopping verdict from the earlier checkpoints' deltas to the best one (see module doc).

    ``verdict``: ``equivalent`` (``stop_step`` is the earliest checkpoint shown within the margin
    of the best, TOST with Holm over the earlier checkpoints), ``needed`` (every earlier
    checkpoint is significantly below the best: train at least to it; also a best checkpoint
    with no earlier one) or ``undetermined`` (``stop_step`` is None; ``undetermined_step`` is the
    earliest checkpoint neither shown below nor shown equivalent, with its delta).
    """
    steps = sorted(earlier)
    below = _significantly_below(earlier)
    tost = dict(zip(steps, holm([tost_p(earlier[s], margin) for s in steps]), strict=True))
    equivalent = [s for s in steps if tost[s] < ALPHA]
    stop, undetermined, d = None, None, None
    if equivalent:
        verdict, stop, d = "equivalent", equivalent[0], earlier[equivalent[0]]
    elif all(s in below for s in steps):
        verdict, stop = "needed", chosen
    else:
        verdict = "undetermined"
        undetermined = min(s for s in steps if s not in below)
        d = earlier[undetermined]
    return {
        "verdict": verdict,
        "margin": margin,
        "stop_step": stop,
        "undetermined_step": undetermined,
        "stop_delta": d.delta if d else None,
        "stop_lo": d.lo if d else None,
        "stop_hi": d.hi if d else None,
    }


def select_run(
    test: Mapping[int, Items],
    task_domain: Mapping[str, str],
    validation: Mapping[int, Items] | None = None,
    *,
    margin: float = EQUIVALENCE_MARGIN,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Best checkpoints, stopping point and overfitting flag of one run.

    ``test`` (and ``validation``, when the suite has that split) map every evaluated step of the
    run (0 = its base model) to its item scores. Every comparison here is between checkpoints of
    one training run (one seed): a checkpoint-level claim.
    """
    steps = sorted(test)
    if not steps:
        raise ValueError("select_run: no evaluated step")
    tasks, caveats = _present(test, sorted(task_domain))
    if not tasks:
        raise ValueError(f"select_run: no task was evaluated at every step ({'; '.join(caveats)})")
    task_domain = {t: task_domain[t] for t in tasks}
    domains = sorted(set(task_domain.values()))
    test = _aligned(test, tasks)
    has_val = bool(validation) and all(any(validation.get(s, {}).get(t) for t in tasks) for s in steps)
    val = _aligned(validation, tasks) if has_val else None
    if validation and any(any(v.values()) for v in validation.values()) and val is None:
        caveats.append("validation items missing at some step: checkpoints chosen on test (optimistic)")
    if len(steps) == 1:
        caveats.append(f"only one evaluated checkpoint (step {steps[0]}): nothing to select or stop")
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
    earlier = {s: _vs(test, tasks, s, chosen) for s in steps if s < chosen}
    later = {s: _vs(test, tasks, s, chosen) for s in steps if s > chosen}
    worse = _significantly_below(later)
    worst = min(worse, key=lambda s: worse[s][0].delta) if worse else None
    final = steps[-1]
    stopping = _stopping(earlier, chosen, margin)
    stop = stopping["stop_step"]
    return {
        "steps": steps,
        "tasks": tasks,
        "caveats": caveats,
        "test": scores["test"],
        "validation": scores.get("validation"),
        "best": best,
        **stopping,
        "stop_fraction": stop / final if final and stop is not None else math.nan,
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
    positive and every comparison is configuration-level (carries seed variance). With
    checkpoint-level comparisons (one seed a side, no declared seed variance) ``winner`` is None
    and ``best_checkpoint`` is the candidate when it beats every other *checkpoint* (a fact about
    these training runs, not about their configurations). ``level`` says which. ``top`` is the
    candidate and every configuration it does not significantly beat.
    """
    configs = sorted(validation_score)
    candidate = max(configs, key=lambda c: (validation_score[c], -configs.index(c)))
    others = [c for c in configs if c != candidate]
    deltas = {c: test_delta(candidate, c) for c in others}
    adjusted = dict(zip(others, holm([deltas[c].p_value for c in others]), strict=True))
    beaten = {c for c in others if adjusted[c] < ALPHA and deltas[c].delta > 0}
    configuration = all(d.level == CONFIGURATION for d in deltas.values())
    separated = bool(others) and beaten == set(others)
    return {
        "candidate": candidate,
        "level": CONFIGURATION if configuration else CHECKPOINT,
        "winner": candidate if separated and configuration else None,
        "best_checkpoint": candidate if separated and not configuration else None,
        "top": [candidate, *[c for c in others if c not in beaten]],
        "comparisons": {
            c: {"delta": deltas[c].delta, "lo": deltas[c].lo, "hi": deltas[c].hi, "p": deltas[c].p_value,
                "p_adj": adjusted[c], "beaten": c in beaten}
            for c in others
        },
        "validation": dict(validation_score),
        "tests": len(others),
    }  # fmt: skip
