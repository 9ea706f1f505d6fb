"""The markdown comparison report, rendered with Jinja2 from the experiment's outputs.

Every number in it is computed here from ``scores.csv``, the per-sample scores and the training
metrics; the template only lays them out.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rlpipe.analysis.aggregate import domain_scores, with_base_rows
from rlpipe.analysis.diagnostics import diagnose_run
from rlpipe.analysis.stats import Delta, paired_bootstrap_delta, trend_slope
from rlpipe.tracking.io import read_jsonl, write_text

log = logging.getLogger(__name__)


def item_matrix(scores_jsonl: str | os.PathLike[str]) -> dict[str, dict[str, float]]:
    """task -> item id -> mean score over its samples (the items of avg@k)."""
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rec in read_jsonl(scores_jsonl):
        acc[rec["task"]][rec["id"]].append(rec["score"])
    return {task: {i: float(np.mean(v)) for i, v in items.items()} for task, items in acc.items()}


def paired_delta(a: dict[str, float], b: dict[str, float], seed: int = 0) -> Delta:
    """Paired bootstrap delta ``a - b`` over the items both evaluated."""
    ids = sorted(set(a) & set(b))
    return paired_bootstrap_delta([a[i] for i in ids], [b[i] for i in ids], seed=seed)


def _fmt_delta(d: Delta) -> dict[str, Any]:
    return {"delta": d.delta, "lo": d.lo, "hi": d.hi, "significant": bool(d.significant)}


def domain_items(
    items: dict[str, dict[str, float]], task_domain: dict[str, str]
) -> dict[str, dict[str, float]]:
    """Per-domain item scores, pooled over the domain's tasks (the macro mean when tasks are equal-sized)."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for task, scores in items.items():
        for item, value in scores.items():
            out[task_domain[task]][f"{task}/{item}"] = value
    return out


def load_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Training metrics rows that carry a reward (the per-step logs)."""
    rows = read_jsonl(path) if Path(path).stat().st_size else []
    return [r for r in rows if "reward" in r or "loss" in r]


def build_context(
    *,
    scores_csv: str,
    sample_scores: dict[tuple[str, int], str],
    metrics: dict[str, str],
    experiment: str,
    description: str,
    baseline: str | None,
    runs: dict[str, dict[str, Any]],
    base_runs: dict[str, str],
    suite: str,
    plots: dict[str, str],
) -> dict[str, Any]:
    """Everything the template shows, as plain data."""
    scores = pd.read_csv(scores_csv)
    base_of = {name: next(b for b, m in base_runs.items() if m == run["model"]) for name, run in runs.items()}
    curves = with_base_rows(scores, base_of)
    tasks = sorted(scores["task"].unique())
    task_domain = dict(zip(scores["task"], scores["domain"], strict=False))
    domains = sorted(set(task_domain.values()))
    final_step = {name: int(scores[scores["run"] == name]["step"].max()) for name in runs}
    final_step.update({b: 0 for b in base_runs})

    by_domain = domain_scores(curves)
    mean_by_step = curves.groupby(["run", "step"])["score"].mean()
    best_step = {name: int(mean_by_step[name].idxmax()) for name in runs}

    def table(step_of: dict[str, int]) -> list[dict[str, Any]]:
        rows = []
        for name in list(base_runs) + list(runs):
            sub = curves[(curves["run"] == name) & (curves["step"] == step_of[name])]
            dom = by_domain[(by_domain["run"] == name) & (by_domain["step"] == step_of[name])]
            rows.append(
                {
                    "run": name,
                    "step": step_of[name],
                    "tasks": dict(zip(sub["task"], sub["score"], strict=True)),
                    "task_se": dict(zip(sub["task"], sub["se"], strict=True)),
                    "domains": dict(zip(dom["domain"], dom["score"], strict=True)),
                    "mean": float(sub["score"].mean()),
                }
            )
        return rows

    items = {key: item_matrix(path) for key, path in sample_scores.items()}

    def deltas(ref_of: dict[str, tuple[str, int]], at: dict[str, int]) -> list[dict[str, Any]]:
        rows = []
        for name in runs:
            ref = ref_of[name]
            if ref[0] == name:
                continue
            mine, theirs = items[(name, at[name])], items[ref]
            dom_mine, dom_theirs = domain_items(mine, task_domain), domain_items(theirs, task_domain)
            rows.append(
                {
                    "run": name,
                    "ref": f"{ref[0]}@{ref[1]}",
                    "tasks": {t: _fmt_delta(paired_delta(mine[t], theirs[t])) for t in tasks},
                    "domains": {d: _fmt_delta(paired_delta(dom_mine[d], dom_theirs[d])) for d in domains},
                }
            )
        return rows

    vs_base = deltas({n: (base_of[n], 0) for n in runs}, final_step)
    vs_baseline = deltas({n: (baseline, final_step[baseline]) for n in runs}, final_step) if baseline else []

    training = []
    for name, path in metrics.items():
        rows = load_metrics(path)
        rewarded = [r for r in rows if "reward" in r]
        verdict = diagnose_run(rows)
        trend = trend_slope([r["step"] for r in rewarded], [r["reward"] for r in rewarded])
        window = max(1, len(rewarded) // 10)
        training.append(
            {
                "run": name,
                "steps": len(rewarded),
                "reward_first": float(np.mean([r["reward"] for r in rewarded[:window]]))
                if rewarded
                else float("nan"),
                "reward_last": float(np.mean([r["reward"] for r in rewarded[-window:]]))
                if rewarded
                else float("nan"),
                "slope": trend.slope,
                "slope_lo": trend.lo,
                "slope_hi": trend.hi,
                "time_s": max((r.get("time_s", 0.0) for r in rows), default=0.0),
                "verdict": verdict.verdict,
                "causes": verdict.causes,
            }
        )

    return {
        "experiment": experiment,
        "description": description,
        "suite": suite,
        "baseline": baseline,
        "tasks": tasks,
        "domains": domains,
        "task_domain": task_domain,
        "runs": runs,
        "base_runs": base_runs,
        "final": table(final_step),
        "best": table({**final_step, **best_step}),
        "best_step": best_step,
        "vs_base": vs_base,
        "vs_baseline": vs_baseline,
        "training": training,
        "plots": plots,
        "n_items": int(scores["n"].max()),
        "k": int(scores["k"].max()),
    }


def _num(value: Any, digits: int = 3) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "n/a" if np.isnan(value) else f"{value:.{digits}f}"


def _signed(d: dict[str, Any]) -> str:
    if d["delta"] != d["delta"]:
        return "n/a"
    mark = " **\\***" if d["significant"] else ""
    return f"{d['delta']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]{mark}"


def render(
    template_path: str | os.PathLike[str], context: dict[str, Any], out: str | os.PathLike[str]
) -> None:
    """Render the Jinja2 template with ``context`` to ``out`` (atomically)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    template_path = Path(template_path)
    env = Environment(
        loader=FileSystemLoader(template_path.parent),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = _num
    env.filters["signed"] = _signed
    env.filters["json"] = lambda v: json.dumps(v, sort_keys=True)
    text = env.get_template(template_path.name).render(**context)
    write_text(out, text)
    log.info("wrote %s", out)
