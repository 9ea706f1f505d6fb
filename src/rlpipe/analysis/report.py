"""The markdown comparison report, rendered with Jinja2 from the experiment's outputs.

Every number in it is computed here from ``scores.csv``, the per-sample scores, the training
metrics, the diagnostics and pre-flight results and the jobs' timing; the template only lays
them out. The same numbers are written as CSV tables for ``snakemake --report``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rlpipe.analysis import cost as costs
from rlpipe.analysis import rliable
from rlpipe.analysis.aggregate import domain_scores, item_matrix, task_score, with_base_rows
from rlpipe.analysis.compare import (
    ALPHA,
    CORRECTION,
    compare,
    comparison_row,
    correct,
    families,
    significant_changes,
)
from rlpipe.analysis.recommend import recommendations
from rlpipe.analysis.selection import EQUIVALENCE_MARGIN, OVERALL, choose_winner, select_run
from rlpipe.analysis.stats import (
    CONFIGURATION,
    DELTA_METHOD,
    Delta,
    paired_bootstrap_delta,
    seeds_for_power,
)
from rlpipe.analysis.trend import TREND_METHOD_ROBUST, trend_slope_robust
from rlpipe.data.splits import TEST, VALIDATION
from rlpipe.tracking.io import atomic_path, write_text
from rlpipe.tracking.logs import read_timing
from rlpipe.tracking.metrics import read_metrics

log = logging.getLogger(__name__)

__all__ = ["build_context", "item_matrix", "paired_delta", "render", "write_tables"]

#: Packages whose versions the report lists (those that change numbers or behaviour).
PACKAGES = (
    "rlpipe",
    "torch",
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "numpy",
    "pandas",
    "snakemake",
    "wandb",
)


def paired_delta(a: dict[str, float], b: dict[str, float], seed: int = 0) -> Delta:
    """Paired bootstrap delta ``a - b`` over the items both evaluated."""
    ids = sorted(set(a) & set(b))
    return paired_bootstrap_delta([a[i] for i in ids], [b[i] for i in ids], seed=seed)


def load_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Training metrics rows that carry a reward or a loss (the per-step logs)."""
    rows = read_metrics(path)
    return [r for r in rows if "reward" in r or "loss" in r or "validation_reward" in r]


def software_versions() -> dict[str, str]:
    """Python, platform and the versions of :data:`PACKAGES` (``-`` when not installed)."""
    out = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "-"
    try:
        root = Path(__file__).resolve().parents[3]
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        out["rlpipe commit"] = commit + (" (modified)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        out["rlpipe commit"] = "unknown"
    return out


def _run_table(
    curves: pd.DataFrame, by_domain: pd.DataFrame, names: Sequence[str], step_of: Mapping[str, int]
):
    rows = []
    for name in names:
        sub = curves[(curves["run"] == name) & (curves["step"] == step_of[name])]
        dom = by_domain[(by_domain["run"] == name) & (by_domain["step"] == step_of[name])]
        rows.append(
            {
                "run": name,
                "step": step_of[name],
                "tasks": dict(zip(sub["task"], sub["score"], strict=True)),
                "task_lo": dict(zip(sub["task"], sub["ci_lo"], strict=True)),
                "task_hi": dict(zip(sub["task"], sub["ci_hi"], strict=True)),
                "pass_at_k": dict(zip(sub["task"], sub["pass_at_k"], strict=True)),
                "domains": dict(zip(dom["domain"], dom["score"], strict=True)),
                "mean": float(sub["score"].mean()),
            }
        )
    return rows


def _training(name: str, path: str, diagnosis: Mapping[str, Any] | None) -> dict[str, Any]:
    rows = load_metrics(path)
    rewarded = [r for r in rows if "reward" in r]
    # the same autocorrelation-robust CI as the learning verdict (diagnostics._reward_checks)
    trend = trend_slope_robust([r["step"] for r in rewarded], [r["reward"] for r in rewarded])
    window = max(1, len(rewarded) // 10)
    nan = float("nan")
    ev = (diagnosis or {}).get("evidence", {})
    return {
        "run": name,
        "steps": len(rewarded),
        "reward_first": float(np.mean([r["reward"] for r in rewarded[:window]])) if rewarded else nan,
        "reward_last": float(np.mean([r["reward"] for r in rewarded[-window:]])) if rewarded else nan,
        "slope": trend.slope,
        "slope_lo": trend.lo,
        "slope_hi": trend.hi,
        "slope_method": TREND_METHOD_ROBUST,
        "verdict": (diagnosis or {}).get("verdict", "unknown"),
        "causes": (diagnosis or {}).get("causes", []),
        "zero_std": ev.get("frac_reward_zero_std_mean"),
        "grad_norm": ev.get("grad_norm_median"),
        "entropy": (ev.get("entropy_first"), ev.get("entropy_last")),
        "kl": ev.get("kl_last"),
        "clip": ev.get("clip_ratio_last"),
        "length": (ev.get("mean_length_first"), ev.get("mean_length_last")),
        "truncation": (ev.get("truncation_first"), ev.get("truncation_last")),
        "adv_std": ev.get("advantages_std_mean"),
    }


def _cost_section(
    timing: Mapping[str, Any], runs: Sequence[str], final_step: Mapping[str, int], gains: Mapping[str, float]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Per-run cost summary and one row per job (for tables/cost.csv)."""
    records = {
        (kind, key): read_timing(path) for kind, paths in timing.items() for key, path in paths.items()
    }
    sacct = costs.sacct_usage(r.get("slurm_job_id") for recs in records.values() for r in recs)
    job = {k: costs.job_cost(v, sacct) for k, v in records.items()}
    table = []
    for (kind, key), c in sorted(job.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        run, step = key if isinstance(key, tuple) else (key, None)
        table.append(costs.cost_row(kind, str(run), step, c))
    per_run: dict[str, Any] = {}
    for run in runs:
        train = costs.total(
            [job.get(("train", run), costs.NOT_RECORDED), job.get(("preflight", run), costs.NOT_RECORDED)]
        )
        evals = [
            c
            for (kind, key), c in job.items()
            if kind in ("generate", "score") and isinstance(key, tuple) and key[0] == run
        ]
        n_evals = len(
            {key for (kind, key) in job if kind == "generate" and isinstance(key, tuple) and key[0] == run}
        )
        ev = costs.total(evals)
        both = costs.total([train, ev])
        per_hour, unit = costs.gain_per_hour(gains[run], both)
        per_run[run] = {
            "train": train,
            "eval": ev,
            "total": both,
            "n_evals": n_evals,
            "gain": gains[run],
            "per_hour": per_hour,
            "unit": unit,
            "hours": both.gpu_h if unit == "GPU-hour" else both.cpu_h,
        }
    shared = costs.total(
        [
            c
            for (kind, key), c in job.items()
            if kind == "shared" or (isinstance(key, tuple) and key[0] not in runs)
        ]
    )
    return {"runs": per_run, "shared": shared, "sacct": bool(sacct)}, table


def build_context(
    *,
    scores_csv: str,
    sample_scores: Mapping[tuple[str, int], str],
    metrics: Mapping[str, str],
    experiment: str,
    description: str,
    baseline: str | None,
    runs: Mapping[str, Mapping[str, Any]],
    base_runs: Mapping[str, str],
    hyperparameters: Mapping[str, Mapping[str, Any]] | None = None,
    suite: str,
    plots: Mapping[str, Any],
    diagnostics: Mapping[str, str] | None = None,
    preflight: Mapping[str, str] | None = None,
    wandb_manifest: str | None = None,
    timing: Mapping[str, Mapping[Any, str]] | None = None,
    config: Mapping[str, Any] | None = None,
    colors: Mapping[str, str] | None = None,
    n_boot: int = 2000,
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
    names = list(base_runs) + list(runs)
    items = {key: item_matrix(path, TEST) for key, path in sample_scores.items()}
    val_items = {key: item_matrix(path, VALIDATION) for key, path in sample_scores.items()}

    diag = {r: json.loads(Path(p).read_text()) for r, p in (diagnostics or {}).items()}
    pre = {r: json.loads(Path(p).read_text()) for r, p in (preflight or {}).items()}

    # -- checkpoint selection -------------------------------------------------------------------
    def key(run: str, step: int) -> tuple[str, int]:
        """The evaluation of ``run`` at ``step``: step 0 is its base model's."""
        return (base_of[run], 0) if step == 0 else (run, step)

    statistics = dict((config or {}).get("statistics") or {})
    seed_sd = statistics.get("seed_sd")
    margin = float(statistics.get("equivalence_margin", EQUIVALENCE_MARGIN))

    selection = {}
    for name in runs:
        steps = [0, *sorted(s for (r, s) in items if r == name)]
        selection[name] = select_run(
            {s: items[key(name, s)] for s in steps},
            task_domain,
            {s: val_items[key(name, s)] for s in steps},
            margin=margin,
            n_boot=n_boot,
        )
    best_step = {name: selection[name]["best"][OVERALL]["step"] for name in runs}

    # -- comparisons (families of seeds) ----------------------------------------------------------
    fam = families(runs)
    fam_of = {r: f for f, members in fam.items() for r in members}

    vs_base, vs_baseline = [], []
    base_family = (baseline if baseline in fam else fam_of.get(baseline)) if baseline else None
    for family, members in fam.items():
        arm = [(r, final_step[r]) for r in members]
        bases = sorted({(base_of[r], 0) for r in members})
        result = compare(items, task_domain, arm, bases, seed_sd=seed_sd, b_fixed=len(bases) == 1)
        vs_base.append(comparison_row(family, f"{bases[0][0]}@0", result))
        if base_family and family != base_family:
            ref_arm = [(r, final_step[r]) for r in fam[base_family]]
            ref = f"{base_family}@{final_step[fam[base_family][0]]}"
            result = compare(items, task_domain, arm, ref_arm, seed_sd=seed_sd)
            row = comparison_row(family, ref, result)
            row["seeds_needed"] = seeds_for_power(result["mean"].delta, result["mean"])
            vs_baseline.append(row)
    tested_families = correct(vs_base, "vs base model") + correct(vs_baseline, "vs baseline")
    improvements, regressions = significant_changes(vs_baseline)

    # -- the winner: chosen on validation, tested on test against every other configuration ----------
    def chosen_arm(config: str) -> list[tuple[str, int]]:
        return [key(r, best_step[r]) for r in fam[config]]

    basis = "validation" if all(selection[r]["has_validation"] for r in runs) else "test"
    winner = choose_winner(
        {
            c: float(np.mean([selection[r]["best"][OVERALL][basis] for r in members]))
            for c, members in fam.items()
        },
        lambda a, b: compare(items, task_domain, chosen_arm(a), chosen_arm(b), seed_sd=seed_sd)["mean"],
    )
    winner["basis"] = basis
    winner["steps"] = {c: {r: best_step[r] for r in members} for c, members in fam.items()}
    claims = claim_levels(fam, statistics)
    aggregates = _aggregates(items, fam, final_step, tasks, base_family, n_boot)

    # -- cost ---------------------------------------------------------------------------------------
    base_mean = {
        b: float(curves[(curves["run"] == b) & (curves["step"] == 0)]["score"].mean()) for b in base_runs
    }
    final_mean = {
        n: float(curves[(curves["run"] == n) & (curves["step"] == final_step[n])]["score"].mean())
        for n in runs
    }
    gains = {n: final_mean[n] - base_mean[base_of[n]] for n in runs}
    cost, cost_table = _cost_section(timing or {}, list(runs), final_step, gains)

    training = [_training(name, metrics[name], diag.get(name)) for name in runs]
    wandb = json.loads(Path(wandb_manifest).read_text()) if wandb_manifest else None

    recs = recommendations(
        baseline=base_family or baseline,
        vs_baseline=vs_baseline,
        vs_base=vs_base,
        selection=selection,
        diagnostics=diag,
        preflight=pre,
        cost={r: {k: cost["runs"][r][k] for k in ("gain", "per_hour", "unit", "hours")} for r in runs},
    )

    return {
        "experiment": experiment,
        "description": description,
        "suite": suite,
        "baseline": baseline,
        "baseline_family": base_family,
        "tasks": tasks,
        "domains": domains,
        "task_domain": task_domain,
        "runs": runs,
        "hyperparameters": dict(hyperparameters or {}),
        "families": fam,
        "base_runs": base_runs,
        "base_of": base_of,
        "colors": dict(colors or {}),
        "final": _run_table(curves, by_domain, names, final_step),
        "best": _run_table(curves, by_domain, names, {**final_step, **best_step}),
        "best_step": best_step,
        "winner": winner,
        "claims": claims,
        "aggregates": aggregates,
        "statistics": {**statistics, "equivalence_margin": margin, "method": DELTA_METHOD},
        "caveats": _caveats(vs_base, vs_baseline, selection),
        "tested_families": tested_families,
        "alpha": ALPHA,
        "correction": CORRECTION,
        "selection": selection,
        "vs_base": vs_base,
        "vs_baseline": vs_baseline,
        "improvements": improvements,
        "regressions": regressions,
        "recommendations": recs,
        "training": training,
        "diagnostics": diag,
        "preflight": pre,
        "cost": cost,
        "cost_table": cost_table,
        "gains": gains,
        "wandb": wandb,
        "plots": plots,
        "versions": software_versions(),
        "config_yaml": _yaml(config) if config else "",
        "n_items": int(scores["n"].max()),
        "k": int(scores["k"].max()),
        "n_boot": n_boot,
    }


def _aggregates(
    items: Mapping[tuple[str, int], Mapping[str, Mapping[str, float]]],
    fam: Mapping[str, Sequence[str]],
    final_step: Mapping[str, int],
    tasks: Sequence[str],
    reference: str | None,
    reps: int,
) -> dict[str, Any]:
    """rliable's aggregates at the final checkpoints: per-(seed, task) test means of every
    configuration, over the tasks with a score in every final evaluation (:mod:`rlpipe.analysis.rliable`)."""
    finals = [items[(r, final_step[r])] for members in fam.values() for r in members]
    common = [t for t in tasks if all(math.isfinite(task_score(ev.get(t, {}))) for ev in finals)]
    if not common:
        return {"configs": {}, "pairs": [], "n_tasks": 0, "left_out": sorted(tasks), "notes": []}
    scores = {
        c: np.array([[task_score(items[(r, final_step[r])][t]) for t in common] for r in members])
        for c, members in fam.items()
    }
    out = rliable.summarise(scores, reference=reference if reference in fam else None, reps=reps)
    notes: dict[str, list[str]] = {}  # each caveat once, with what it is about
    for name, c in out["configs"].items():
        for text in (c["caveat"], c["iqm_reason"]):
            if text:
                notes.setdefault(text, []).append(f"`{name}`")
    for p in out["pairs"]:
        if p["caveat"]:
            notes.setdefault(p["caveat"], []).append(f"P(`{p['x']}` > `{p['y']}`)")
    return {**out, "left_out": [t for t in tasks if t not in common], "notes": list(notes.items())}


def claim_levels(fam: Mapping[str, Sequence[str]], statistics: Mapping[str, Any]) -> dict[str, Any]:
    """What the experiment's comparisons can claim, in words for the report's header.

    ``level`` is ``configuration`` when every configuration has two or more seeds (the seed
    variance is estimated), or when ``statistics.seed_sd`` is declared (overall differences only);
    ``checkpoint`` otherwise: the differences are facts about the evaluated checkpoints.
    """
    seeds = {c: len(members) for c, members in fam.items()}
    several = min(seeds.values(), default=0) >= 2
    declared = statistics.get("seed_sd")
    if several:
        level, basis = CONFIGURATION, f"{min(seeds.values())}-{max(seeds.values())} seeds per configuration"
    elif declared is not None:
        level, basis = (
            CONFIGURATION,
            (
                f"declared seed sd {declared:g} of the mean over tasks ({statistics.get('seed_sd_source')}); "
                "overall differences only, domain and task differences are about the checkpoints"
            ),
        )
    elif any(n >= 2 for n in seeds.values()):
        level, basis = (
            "mixed",
            (
                "comparisons involving a configuration with several seeds carry its seed variance (assumed "
                "equal across configurations); those between single-seed configurations are about checkpoints"
            ),
        )
    else:
        level, basis = "checkpoint", "one training seed per configuration and no declared seed variance"
    return {"level": level, "basis": basis, "seeds": seeds}


def _caveats(
    vs_base: Sequence[Mapping[str, Any]],
    vs_baseline: Sequence[Mapping[str, Any]],
    selection: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """Every caveat the statistics raised (left-out tasks, dropped items), once each, in order."""
    out: list[str] = []
    for row in [*vs_base, *vs_baseline]:
        for level in ("mean", "domains", "tasks"):
            deltas = [row[level]] if level == "mean" else list(row[level].values())
            for d in deltas:
                out += [f"`{row['run']}` vs `{row['ref']}`: {c}" for c in d["caveats"]]
    for run, sel in selection.items():
        out += [f"`{run}` checkpoint selection: {c}" for c in sel["caveats"]]
    return list(dict.fromkeys(out))


def _yaml(obj: Any) -> str:
    import yaml

    return yaml.safe_dump(json.loads(json.dumps(obj, default=str)), sort_keys=False).rstrip()


# ----------------------------------------------------------------------------------------------
# tables for snakemake --report


#: The columns of tables/comparison.csv after the row's identity; ``significant`` is after correction.
COMPARISON_STATS = (
    "delta",
    "lo",
    "hi",
    "p",
    "p_adj",
    "family",
    "significant",
    "n_items",
    "df",
    "claim",
    "seed_source",
)


def _csv(rows: Sequence[Mapping[str, Any]], out: str, columns: Sequence[str] | None = None) -> None:
    frame = pd.DataFrame(list(rows), columns=list(columns) if columns else None)
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def write_tables(ctx: Mapping[str, Any], out: Mapping[str, str]) -> None:
    """``comparison``, ``checkpoints``, ``diagnostics``, ``preflight`` and ``cost`` CSV tables."""
    comp = []
    for kind, rows in (("vs base model", ctx["vs_base"]), ("vs baseline", ctx["vs_baseline"])):
        for r in rows:
            for level, values in (
                ("domain", r["domains"]),
                ("task", r["tasks"]),
                ("overall", {"mean": r["mean"]}),
            ):
                for name, d in values.items():
                    comp.append(
                        {
                            "comparison": kind,
                            "run": r["run"],
                            "ref": r["ref"],
                            "level": level,
                            "name": name,
                            **{k: d[k] for k in COMPARISON_STATS},
                        }
                    )
    _csv(
        comp,
        out["comparison"],
        ["comparison", "run", "ref", "level", "name", *COMPARISON_STATS],
    )
    ck = []
    for run, sel in ctx["selection"].items():
        for key, b in sel["best"].items():
            ck.append(
                {
                    "run": run,
                    "scope": key,
                    "best_step": b["step"],
                    "chosen_on": b["basis"],
                    "validation": b["validation"],
                    "test": b["test"],
                    "test_lo": b["test_lo"],
                    "test_hi": b["test_hi"],
                    "stop_step": sel["stop_step"],
                    "stop_verdict": sel["verdict"],
                    "equivalence_margin": sel["margin"],
                    "overfitting": sel["overfitting"],
                    "final_step": sel["final_step"],
                }
            )
    _csv(ck, out["checkpoints"])
    _csv(
        [
            {
                "run": t["run"],
                "verdict": t["verdict"],
                "causes": " | ".join(t["causes"]),
                "reward_first": t["reward_first"],
                "reward_last": t["reward_last"],
                "slope": t["slope"],
                "slope_lo": t["slope_lo"],
                "slope_hi": t["slope_hi"],
            }
            for t in ctx["training"]
        ],
        out["diagnostics"],
        ["run", "verdict", "causes", "reward_first", "reward_last", "slope", "slope_lo", "slope_hi"],
    )
    pf = []
    for run, p in ctx["preflight"].items():
        s, m = p["signal"], p["loss_mask"]
        pf.append(
            {
                "run": run,
                "prompts": s["n_prompts"],
                "k": s["k"],
                "reward_mean": s["reward_mean"],
                "reward_std": s["reward_std"],
                "frac_zero_std": s["frac_zero_std"],
                "no_signal": s["no_signal"],
                "loss_mask_passed": m["passed"],
                "loss_path": m.get("loss_path"),
            }
        )
    _csv(
        pf,
        out["preflight"],
        [
            "run",
            "prompts",
            "k",
            "reward_mean",
            "reward_std",
            "frac_zero_std",
            "no_signal",
            "loss_mask_passed",
            "loss_path",
        ],
    )
    _csv(
        ctx["cost_table"],
        out["cost"],
        ["kind", "run", "step", "wall_s", "wall_h", "cpu_h", "gpu_h", "gpus", "attempts", "source"],
    )


# ----------------------------------------------------------------------------------------------
# rendering


def _num(value: Any, digits: int = 3) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "n/a" if value is None else str(value)
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _signed(d: Mapping[str, Any]) -> str:
    if d["delta"] != d["delta"]:
        return "n/a"
    if d["lo"] != d["lo"]:
        return f"{d['delta']:+.3f} (no CI)"
    mark = " **\\***" if d["significant"] else ""
    return f"{d['delta']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]{mark}"


def _hours(value: Any) -> str:
    """Hours with enough digits for seconds-long CPU jobs (0.0004 h) and for days of GPU time."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "n/a"
    if math.isnan(value):
        return "n/a"
    return f"{value:.2f}" if value >= 1 else f"{value:.2g}"


def render(
    template_path: str | os.PathLike[str], context: Mapping[str, Any], out: str | os.PathLike[str]
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
    env.filters["hours"] = _hours
    env.filters["pct"] = lambda v: "n/a" if v is None or v != v else f"{100 * float(v):.0f} %"
    env.filters["json"] = lambda v: json.dumps(v, sort_keys=True)
    text = env.get_template(template_path.name).render(**context)
    write_text(out, text)
    log.info("wrote %s", out)
