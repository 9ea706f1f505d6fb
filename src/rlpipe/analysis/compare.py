"""Run-vs-run comparisons on the same test items: per task, per domain and overall, with seeds.

A comparison is between two *arms*, each one or more ``(run, step)`` evaluations (the seeds of one
configuration). Every level is the same estimand, a mean over tasks
(:func:`rlpipe.analysis.stats.macro_deltas`: seeds x items variance components), and every delta
says which claim it supports: about the two checkpoints (one seed a side) or about the two
configurations (seed variance from the seeds or declared). Seeds of a configuration are the runs
whose names differ only in the ``_s<seed>`` suffix that :func:`rlpipe.config.expand_runs` appends.

The report tests many deltas at once, so :func:`correct` applies Holm's method to each *family*
(e.g. "domains and tasks × runs, vs the baseline") and
``significant`` means "significant after that correction".
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from rlpipe.analysis.stats import Delta, holm, macro_deltas, undefined_delta

#: The error rate every family of tests is held to (family-wise, by Holm's method).
ALPHA = 0.05
CORRECTION = "Holm"

#: (run, step) -> task -> item id -> item score
ItemTable = Mapping[tuple[str, int], Mapping[str, Mapping[str, float]]]
Arm = Sequence[tuple[str, int]]

_SEED_SUFFIX = re.compile(r"_s\d+$")


def families(runs: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """Configuration name -> its runs (the seeds). Without seed suffixes every run is its own family."""
    out: dict[str, list[str]] = defaultdict(list)
    for name, run in runs.items():
        seed = run.get("seed")
        key = name[: -len(f"_s{seed}")] if seed is not None and name.endswith(f"_s{seed}") else name
        out[key].append(name)
    # a lone "_s<seed>" run is not a seed group: keep its own name
    return {k if len(v) > 1 else v[0]: sorted(v) for k, v in out.items()}


def _common(tables: Sequence[Mapping[str, float]]) -> list[str]:
    return sorted(set.intersection(*(set(t) for t in tables))) if tables else []


def _matrix(items: ItemTable, arm: Arm, task: str, ids: Sequence[str]) -> np.ndarray:
    return np.array([[items[key][task][i] for i in ids] for key in arm], dtype=float)


def compare(
    items: ItemTable,
    task_domain: Mapping[str, str],
    a: Arm,
    b: Arm,
    *,
    seed_sd: float | None = None,
    b_fixed: bool = False,
) -> dict[str, Any]:
    """``a - b`` per task, per domain (mean of its tasks) and overall (mean over tasks).

    Items are those every evaluation of both arms has. A task that some evaluation lacks is left
    out of every level and said so in the deltas' ``caveats`` (the overall mean is then over the
    other tasks); an arm's evaluation missing altogether raises ``ValueError`` naming it.
    ``seed_sd`` (declared seed sd of the overall mean) and ``b_fixed`` (``b`` is one fixed base
    model): :func:`~rlpipe.analysis.stats.macro_deltas`.
    """
    absent = [f"{run}@{step}" for run, step in [*a, *b] if (run, step) not in items]
    if absent:
        raise ValueError(f"no evaluation scores for {', '.join(absent)}")
    missing = {t: [f"{r}@{s}" for r, s in [*a, *b] if not items[(r, s)].get(t)] for t in sorted(task_domain)}
    tasks = [t for t in sorted(task_domain) if not missing[t]]
    if not tasks:
        raise ValueError(f"no task was evaluated for every run of the comparison: {missing}")
    ids = {t: _common([items[k][t] for k in [*a, *b]]) for t in tasks}
    groups: dict[str, list[str]] = defaultdict(list)
    for t in tasks:
        groups[task_domain[t]].append(t)
    result = macro_deltas(
        {t: _matrix(items, a, t, ids[t]) for t in tasks},
        {t: _matrix(items, b, t, ids[t]) for t in tasks},
        groups,
        seed_sd=seed_sd,
        b_fixed=b_fixed,
    )
    note = {
        t: f"{t}: not evaluated for {', '.join(where)}; left out" for t, where in missing.items() if where
    }
    by_domain: dict[str, list[str]] = defaultdict(list)
    for t in note:
        by_domain[task_domain[t]].append(note[t])
    undefined = undefined_delta(math.nan, 0, (len(a), len(b)))
    return {
        "tasks": {
            t: result.tasks.get(t) or replace(undefined, caveats=(note[t],)) for t in sorted(task_domain)
        },
        "domains": {
            d: _noted(result.groups.get(d, undefined), by_domain[d])
            for d in sorted(set(task_domain.values()))
        },
        "mean": _noted(result.mean, list(note.values())),
        "n_seeds": (len(a), len(b)),
    }


def _noted(d: Delta, notes: Sequence[str]) -> Delta:
    """``d`` with the notes of the tasks left out of it added to its caveats."""
    return replace(d, caveats=(*notes, *d.caveats)) if notes else d


def delta_dict(d: Delta) -> dict[str, Any]:
    """A Delta as plain data for templates and CSV; uncorrected until :func:`correct` runs."""
    return {
        "delta": d.delta,
        "lo": d.lo,
        "hi": d.hi,
        "p": d.p_value,
        "p_adj": d.p_value,
        "significant": bool(d.significant),
        "family": None,
        "n_items": d.n_items,
        "n_seeds": list(d.n_seeds),
        "df": d.df,
        "claim": d.level,
        "seed_source": d.seed_source,
        "seed_sd": math.sqrt(d.seed_var) if d.seed_var == d.seed_var else None,
        "caveats": list(d.caveats),
    }


def comparison_row(run: str, ref: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """One report row: :func:`compare`'s result for ``run`` against ``ref`` as plain data, the
    shape :func:`correct`, :func:`significant_changes` and the template read."""
    return {
        "run": run,
        "ref": ref,
        "n_seeds": result["n_seeds"],
        "tasks": {t: delta_dict(d) for t, d in result["tasks"].items()},
        "domains": {d: delta_dict(x) for d, x in result["domains"].items()},
        "mean": delta_dict(result["mean"]),
    }


def correct(rows: Sequence[Mapping[str, Any]], comparison: str) -> list[dict[str, Any]]:
    """Holm-correct each level of ``rows`` (comparison rows of delta dicts) as one family.

    Two families: the overall deltas across runs (the headline), and the domain and task deltas
    across runs together (the report's list of significant improvements and regressions, so
    that list as a whole holds the family-wise error rate). Each delta dict gets ``p_adj``,
    ``family`` and ``significant = p_adj < ALPHA`` in place. Returns one description per family
    (name, number of tests, method) for the report.
    """
    families_out = []
    overall = [row["mean"] for row in rows]
    changes = [d for row in rows for level in ("domains", "tasks") for d in row[level].values()]
    for label, deltas in (("overall × runs", overall), ("domains and tasks × runs", changes)):
        if not deltas:
            continue
        name = f"{comparison}: {label}"
        for d, p_adj in zip(deltas, holm([d["p"] for d in deltas]), strict=True):
            d.update(p_adj=p_adj, family=name, significant=bool(p_adj < ALPHA))
        tested = sum(1 for d in deltas if d["p"] == d["p"])
        families_out.append({"name": name, "tests": tested, "method": CORRECTION, "alpha": ALPHA})
    return families_out


def significant_changes(
    rows: Sequence[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(improvements, regressions): deltas significant after correction, largest effect first.

    ``rows`` are comparison rows (``run``, ``ref``, ``domains``, ``tasks`` of delta dicts).
    """
    ups, downs = [], []
    for row in rows:
        for level in ("domains", "tasks"):
            for name, d in row[level].items():
                if not d["significant"]:
                    continue
                entry = {"run": row["run"], "ref": row["ref"], "level": level[:-1], "name": name, **d}
                (ups if d["delta"] > 0 else downs).append(entry)
    ups.sort(key=lambda e: -e["delta"])
    downs.sort(key=lambda e: e["delta"])
    return ups, downs
