"""Run-vs-run comparisons on the same test items: per task, per domain and overall, with seeds.

A comparison is between two *arms*, each one or more ``(run, step)`` evaluations. One
evaluation per arm is the paired item bootstrap; several (the seeds of one configuration) are a
hierarchical bootstrap that resamples seeds, then items
(:func:`rlpipe.analysis.stats.hierarchical_bootstrap_delta`), so a CI covers seed-to-seed
variance too. Seeds of a configuration are the runs whose names differ only in the ``_s<seed>``
suffix that :func:`rlpipe.config.expand_runs` appends.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlpipe.analysis.stats import (
    Delta,
    hierarchical_bootstrap_delta,
    paired_bootstrap_delta,
    paired_macro_delta,
)

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
    items: ItemTable, task_domain: Mapping[str, str], a: Arm, b: Arm, *, n_boot: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """``a - b`` per task, per domain (mean of its tasks) and overall (mean over tasks).

    Items are those every evaluation of both arms has. With one evaluation per arm the domain and
    overall deltas are stratified paired bootstraps (tasks keep their weights); with seeds they
    are hierarchical bootstraps over the domain's pooled items.
    """
    tasks = sorted(task_domain)
    domains = sorted(set(task_domain.values()))
    ids = {t: _common([items[k][t] for k in [*a, *b]]) for t in tasks}
    single = len(a) == 1 and len(b) == 1

    def pooled(chosen: Sequence[str]) -> Delta:
        ma = np.concatenate([_matrix(items, a, t, ids[t]) for t in chosen], axis=1)
        mb = np.concatenate([_matrix(items, b, t, ids[t]) for t in chosen], axis=1)
        return hierarchical_bootstrap_delta(ma, mb, n_boot=n_boot, seed=seed)

    def stratified(groups: Mapping[str, Sequence[str]]) -> Delta:
        ta = {g: {t: _matrix(items, a, t, ids[t])[0] for t in ts} for g, ts in groups.items()}
        tb = {g: {t: _matrix(items, b, t, ids[t])[0] for t in ts} for g, ts in groups.items()}
        return paired_macro_delta(ta, tb, n_boot=n_boot, seed=seed)

    out: dict[str, Any] = {"tasks": {}, "domains": {}, "n_seeds": (len(a), len(b))}
    for t in tasks:
        ma, mb = _matrix(items, a, t, ids[t]), _matrix(items, b, t, ids[t])
        out["tasks"][t] = (
            paired_bootstrap_delta(ma[0], mb[0], n_boot=n_boot, seed=seed)
            if single
            else hierarchical_bootstrap_delta(ma, mb, n_boot=n_boot, seed=seed)
        )
    for d in domains:
        members = [t for t in tasks if task_domain[t] == d]
        out["domains"][d] = stratified({d: members}) if single else pooled(members)
    out["mean"] = stratified({t: [t] for t in tasks}) if single else pooled(tasks)
    return out


def delta_dict(d: Delta) -> dict[str, Any]:
    """A Delta as plain data for templates and CSV."""
    return {
        "delta": d.delta,
        "lo": d.lo,
        "hi": d.hi,
        "p": d.p_value,
        "significant": bool(d.significant),
        "n_items": d.n_items,
        "n_seeds": list(d.n_seeds),
    }


def significant_changes(
    rows: Sequence[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(improvements, regressions): only deltas whose 95 % CI excludes 0, largest effect first.

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
