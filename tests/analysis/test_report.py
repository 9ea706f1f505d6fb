"""The report on an experiment with a known story (item scores chosen so the answer is known).

The workflow's e2e test renders the report of a real, tiny experiment whose runs barely move;
this one feeds the real report code and template an experiment where a run wins somewhere,
loses elsewhere and overfits, so every branch of the report (significant lists, validation
selection, overfitting, GPU cost, online W&B links) is rendered and checked.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rlpipe.analysis.diagnostics import diagnose_run
from rlpipe.analysis.report import build_context, render, write_tables
from rlpipe.eval.estimates import bootstrap_mean_ci, item_pass_at_k
from rlpipe.tracking.manifest import sidecar, write_sidecar
from rlpipe.train.mask_probe import mask_gradient_check
from rlpipe.train.preflight import signal_stats, signal_verdict

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "workflow" / "templates" / "report.md.j2"
TASKS = {"addition": "math", "sorting": "logic"}
N = 150  # test items per task
N_VAL = 60  # validation items per task (the suite's selection split)
# (run, step) -> solve rate per task, the same on both splits
RATES = {
    ("base", 0): {"addition": 0.3, "sorting": 0.3},
    ("grpo", 10): {"addition": 0.5, "sorting": 0.3},
    ("grpo", 20): {"addition": 0.6, "sorting": 0.3},
    ("pcgrad", 10): {"addition": 0.45, "sorting": 0.75},
    ("pcgrad", 20): {"addition": 0.3, "sorting": 0.6},
}
RUNS = {
    name: {
        "name": name,
        "method": "grpo",
        "model": "base",
        "steps": 20,
        "lora": None,
        "seed": 0,
        "grpo": {"learning_rate": 1e-5},
        "pcgrad": name == "pcgrad",
    }
    for name in ("grpo", "pcgrad")
}


def seeded(seeds: int = 3) -> tuple[dict, dict]:
    """The story's runs on ``seeds`` training seeds (``<run>_s<seed>``), each seed's solve rates moved
    by a small seed effect: (rates, runs) for :func:`write_experiment`."""
    offsets = [0.0, 0.02, -0.02, 0.01, -0.01][:seeds]
    rates = {("base", 0): RATES[("base", 0)]}
    runs = {}
    for (run, step), r in RATES.items():
        if run == "base":
            continue
        for s, off in enumerate(offsets):
            rates[(f"{run}_s{s}", step)] = {t: v + off for t, v in r.items()}
            runs[f"{run}_s{s}"] = {**RUNS[run], "name": f"{run}_s{s}", "seed": s}
    return rates, runs


def write_experiment(out: Path, rates_of: dict = RATES, runs: dict = RUNS) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    rows, sample_scores = [], {}
    for (run, step), rates in rates_of.items():
        records = []
        for task, rate in rates.items():
            for i in range(N_VAL):  # validation items: exact rates, so the chosen steps are known
                solved_val = float(i < round(rate * N_VAL))
                val = {"id": f"{task}/v{i}", "task": task, "domain": TASKS[task], "split": "validation"}
                records.append({**val, "sample": 0, "score": solved_val})
            solved = rng.permutation(N) < round(rate * N)
            matrix = np.stack([solved, solved], axis=1).astype(float)  # k = 2, both samples alike
            for i in range(N):
                for s in range(2):
                    records.append(
                        {
                            "id": f"{task}/{i}",
                            "task": task,
                            "domain": TASKS[task],
                            "sample": s,
                            "split": "test",
                            "score": matrix[i, s],
                        }
                    )
            ci = bootstrap_mean_ci(matrix.mean(axis=1))
            rows.append(
                {
                    "experiment": "story",
                    "run": run,
                    "method": "base" if run == "base" else "grpo",
                    "step": step,
                    "task": task,
                    "domain": TASKS[task],
                    "n": N,
                    "k": 2,
                    "score": ci.mean,
                    "se": ci.se,
                    "ci_lo": ci.lo,
                    "ci_hi": ci.hi,
                    "pass_at_k": float(np.mean(item_pass_at_k(matrix, 2))),
                    "mean_tokens": 3.0,
                    "truncated": 0.0,
                }
            )
        path = out / "eval" / run / f"step_{step}" / "scores.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        write_sidecar(sidecar(path), [path])  # as the scoring job does
        sample_scores[(run, step)] = str(path)
    pd.DataFrame(rows).to_csv(out / "scores.csv", index=False)

    metrics, diagnostics, preflight = {}, {}, {}
    for run in runs:
        steps = range(1, 21)
        lines = [
            {
                "step": s,
                "reward": 0.2 + 0.02 * s + 0.01 * ((s * 7) % 3 - 1),
                "learning_rate": 1e-5,
                "grad_norm": 0.5,
                "frac_reward_zero_std": 0.2,
                "entropy": 0.8,
            }
            for s in steps
        ]
        metrics[run] = out / "runs" / run / "metrics.jsonl"
        metrics[run].parent.mkdir(parents=True, exist_ok=True)
        metrics[run].write_text("".join(json.dumps(r) + "\n" for r in lines))
        v = diagnose_run(lines)
        diagnostics[run] = out / "diagnostics" / f"{run}.json"
        diagnostics[run].parent.mkdir(parents=True, exist_ok=True)
        diagnostics[run].write_text(
            json.dumps({"run": run, "verdict": v.verdict, "causes": v.causes, "evidence": v.evidence})
        )
        groups = [[0, 0, 0, 0]] * 9 + [[0, 1, 0, 1]] * 11
        stats = signal_stats(groups, ["math"] * 9 + ["logic"] * 11)
        no_signal, warnings = signal_verdict(stats)
        hid = np.zeros((1, 4))
        hid[0, 1] = 0.3
        mask = mask_gradient_check(hid, np.zeros((1, 4)), np.array([[1, 1]]), np.array([[1, 0]]))
        preflight[run] = out / "preflight" / f"{run}.json"
        preflight[run].parent.mkdir(parents=True, exist_ok=True)
        preflight[run].write_text(
            json.dumps(
                {
                    "signal": {**stats, "no_signal": no_signal, "warnings": warnings},
                    "loss_mask": {**mask, "loss_path": "trl"},
                }
            )
        )

    def timing(name: str, wall: float, gpus: int) -> str:
        log = out / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.with_name(log.stem + ".timing.jsonl").write_text(
            json.dumps({"status": "failed", "wall_s": wall / 2, "cpu_s": 10.0, "gpus": gpus})
            + "\n"
            + json.dumps({"status": "ok", "wall_s": wall, "cpu_s": 20.0, "gpus": gpus})
            + "\n"
        )
        return str(log)

    job_logs = {
        "train": {"grpo": timing("train/grpo", 2400, 1), "pcgrad": timing("train/pcgrad", 4800, 1)},
        "preflight": {r: timing(f"preflight/{r}", 60, 1) for r in runs},
        "generate": {k: timing(f"generate/{k[0]}/step_{k[1]}", 120, 1) for k in rates_of},
        "score": {k: timing(f"score/{k[0]}/step_{k[1]}", 30, 0) for k in rates_of},
        "shared": {"warmup/base": timing("warmup/base", 600, 1)},
    }
    manifest = out / "wandb" / "runs.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(
        json.dumps(
            {
                "mode": "online",
                "project": "p",
                "entity": "team",
                "group": "story",
                "sync_command": None,
                "runs": {
                    r: {
                        j: {
                            "id": f"{r}-{j}",
                            "name": f"{r}/{j}",
                            "steps": 3,
                            "url": f"https://wandb.ai/team/p/runs/{r}-{j}",
                        }
                        for j in ("train", "eval")
                    }
                    for r in runs
                },
            }
        )
    )
    return {
        "scores_csv": str(out / "scores.csv"),
        "sample_scores": sample_scores,
        "metrics": {r: str(p) for r, p in metrics.items()},
        "diagnostics": {r: str(p) for r, p in diagnostics.items()},
        "preflight": {r: str(p) for r, p in preflight.items()},
        "wandb_manifest": str(manifest),
        "timing": job_logs,
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[dict[str, Any], str, Path]:
    return render_story(tmp_path_factory.mktemp("story"), {"name": "story"})


def render_story(
    out: Path, config: dict[str, Any], rates: dict = RATES, runs: dict = RUNS
) -> tuple[dict[str, Any], str, Path]:
    ctx = build_context(
        **write_experiment(out, rates, runs),
        experiment="story",
        description="A known story.",
        baseline="grpo",
        runs=runs,
        base_runs={"base": "base"},
        suite="story-suite",
        config=config,
        n_boot=1000,
        colors={"base": "#1f77b4", "grpo": "#ff7f0e", "pcgrad": "#2ca02c"},
        plots={
            "tasks": "plots/t.png",
            "domains": "plots/d.png",
            "comparison": "plots/c.png",
            "training": {r: f"plots/training/{r}.png" for r in runs},
        },
    )
    tables = {
        k: str(out / "tables" / f"{k}.csv")
        for k in ("comparison", "checkpoints", "diagnostics", "preflight", "cost")
    }
    write_tables(ctx, tables)
    render(TEMPLATE, ctx, out / "report.md")
    return ctx, (out / "report.md").read_text(), out


def test_significant_wins_and_losses_are_listed_and_recommended(rendered) -> None:
    ctx, text, _ = rendered
    ups = [(e["run"], e["level"], e["name"]) for e in ctx["improvements"]]
    assert all(e["claim"] == "checkpoint" for e in ctx["improvements"])
    downs = [(e["run"], e["level"], e["name"]) for e in ctx["regressions"]]
    assert ("pcgrad", "domain", "logic") in ups and ("pcgrad", "domain", "math") in downs
    assert all(e["significant"] for e in ctx["improvements"] + ctx["regressions"])
    improvements = text.split("**Significant improvements**")[1].split("**Significant regressions**")[0]
    assert re.search(
        r"- `pcgrad` on domain logic: \+0\.[23]\d\d \[\+0\.\d+, \+0\.\d+\], p = 0\.\d{4}", improvements
    )
    assert "math" not in improvements
    assert re.search(r"`pcgrad` helps logic by \+0\.[23]\d\d \[.*\] over `grpo` but costs math \(-0\.", text)
    assert "Training `grpo` improved the mean score over its base model" in text
    assert not re.search(r"\bnan\b", text, re.I)


def test_selection_uses_validation_and_flags_overfitting(rendered) -> None:
    ctx, text, _ = rendered
    pc, grpo = ctx["selection"]["pcgrad"], ctx["selection"]["grpo"]
    assert pc["best"]["overall"]["step"] == 10 and pc["best"]["overall"]["basis"] == "validation"
    assert pc["best"]["overall"]["validation"] == pytest.approx((27 / 60 + 45 / 60) / 2)
    assert pc["overfitting"] and pc["overfit_step"] == 20
    assert grpo["best"]["overall"]["basis"] == "validation" and grpo["best"]["overall"]["step"] == 20
    assert "Best checkpoints are chosen on the suite's validation items" in text
    assert "| pcgrad | 10 | validation |" in text and "**yes**: step 20" in text
    assert "`pcgrad` overfits: step 20 is significantly below the best step 10" in text


def test_cost_counts_gpu_hours_of_every_attempt(rendered) -> None:
    ctx, text, out = rendered
    c = ctx["cost"]["runs"]["grpo"]
    # train 1.5 x 2400 s + pre-flight 1.5 x 60 s on one GPU; evals: 2 checkpoints x 1.5 x 120 s GPU
    assert c["train"].gpu_h == pytest.approx(1.5 * 2460 / 3600)
    assert c["eval"].gpu_h == pytest.approx(2 * 1.5 * 120 / 3600) and c["n_evals"] == 2
    assert c["unit"] == "GPU-hour" and c["per_hour"] == pytest.approx(c["gain"] / c["total"].gpu_h)
    assert ctx["cost"]["shared"].gpu_h == pytest.approx(1.5 * (600 + 120) / 3600)  # warm-up + base eval
    assert re.search(r"\| grpo \| 3690\.0 \| 1\.0\d \| 0\.017 \| 2 \| 450\.0 \|", text)
    cost = pd.read_csv(out / "tables" / "cost.csv")
    assert (cost["attempts"] == 2).all() and set(cost["kind"]) == {
        "train",
        "preflight",
        "generate",
        "score",
        "shared",
    }


def test_wandb_links_tables_and_preflight(rendered) -> None:
    _, text, out = rendered
    assert "Mode **online**" in text
    url = "https://wandb.ai/team/p/runs/"
    wandb_rows = [line for line in text.splitlines() if url in line]
    assert wandb_rows == [f"| {r} | [{r}/train]({url}{r}-train) | [{r}/eval]({url}{r}-eval) |" for r in RUNS]
    assert "| grpo | 20 × 4 |" in text and "| passed |" in text
    assert "domain math: 100% of its 9 prompt groups have identical rewards" in text
    comparison = pd.read_csv(out / "tables" / "comparison.csv")
    row = comparison[
        (comparison["run"] == "pcgrad")
        & (comparison["name"] == "logic")
        & (comparison["comparison"] == "vs baseline")
    ]
    assert bool(row["significant"].iloc[0]) and row["lo"].iloc[0] > 0
    checkpoints = pd.read_csv(out / "tables" / "checkpoints.csv")
    assert set(checkpoints["scope"]) == {"overall", "math", "logic"}


def test_header_states_the_estimand_and_the_families_and_a_winner_is_named_only_with_evidence(
    rendered,
) -> None:
    ctx, text, _ = rendered
    assert 'Every overall score ("mean") is the mean over tasks' in text
    assert "after Holm's correction" in text
    names = [f["name"] for f in ctx["tested_families"]]
    assert names == [
        "vs base model: overall × runs",
        "vs base model: domains and tasks × runs",
        "vs baseline: overall × runs",
        "vs baseline: domains and tasks × runs",
    ]
    assert "vs baseline: domains and tasks × runs (4 tests)" in text
    # pcgrad@10 is best on validation (0.60 vs grpo@20's 0.45) and clearly better on test, but with
    # one seed each that is a fact about two checkpoints: no configuration is named the winner
    w = ctx["winner"]
    assert (w["candidate"], w["winner"], w["best_checkpoint"], w["basis"]) == (
        "pcgrad",
        None,
        "pcgrad",
        "validation",
    )
    assert "No configuration winner can be named" in text and "Winner" not in text
    assert "**What the differences are claims about: checkpoint-level**" in text
    assert "(checkpoint-level)" in text


def test_a_declared_seed_sd_makes_overall_claims_about_configurations(tmp_path: Path) -> None:
    config = {"name": "story", "statistics": {"seed_sd": 0.02, "seed_sd_source": "a 3-seed pilot"}}
    ctx, text, _ = render_story(tmp_path, config)
    assert ctx["claims"]["level"] == "configuration" and "a 3-seed pilot" in text
    assert ctx["winner"]["winner"] == "pcgrad" and "Winner (configuration-level): **`pcgrad`**" in text
    mean = ctx["vs_baseline"][0]["mean"]
    assert mean["claim"] == "configuration" and mean["seed_source"] == "declared"
    # the declared variance widens the overall CI; domain deltas stay checkpoint-level
    ref = render_story(tmp_path / "one", {"name": "story"})[0]["vs_baseline"][0]["mean"]
    assert (mean["hi"] - mean["lo"]) > (ref["hi"] - ref["lo"])
    assert ctx["vs_baseline"][0]["domains"]["logic"]["claim"] == "checkpoint"


def test_no_winner_without_significance() -> None:
    from rlpipe.analysis.selection import choose_winner
    from rlpipe.analysis.stats import paired_bootstrap_delta

    rng = np.random.default_rng(1)
    items = {c: (rng.random(600) < 0.5).astype(float) for c in ("a", "b", "c")}
    items["a"] = np.maximum(items["a"], rng.random(600) < 0.3)  # a is better than b ...
    items["c"] = np.maximum(items["c"], rng.random(600) < 0.3)  # ... and as good as c

    def delta(x: str, y: str):
        return paired_bootstrap_delta(items[x], items[y], n_boot=1000)

    w = choose_winner({"a": 0.7, "b": 0.5, "c": 0.65}, delta)
    assert w["candidate"] == "a" and w["winner"] is None and "c" in w["top"] and "b" not in w["top"]


def test_three_seeds_make_configuration_claims_a_winner_and_rliable_aggregates(tmp_path: Path) -> None:
    rates, runs = seeded(3)
    ctx, text, _ = render_story(tmp_path, {"name": "story"}, rates, runs)
    assert ctx["families"] == {
        "grpo": ["grpo_s0", "grpo_s1", "grpo_s2"],
        "pcgrad": ["pcgrad_s0", "pcgrad_s1", "pcgrad_s2"],
    }
    assert ctx["claims"]["level"] == "configuration" and "3-3 seeds per configuration" in text
    row = ctx["vs_baseline"][0]
    assert row["mean"]["claim"] == "configuration" and row["mean"]["n_seeds"] == [3, 3]
    assert row["mean"]["seed_source"] == "seeds" and row["mean"]["df"] == 4
    assert ctx["winner"]["winner"] == "pcgrad" and ctx["winner"]["level"] == "configuration"
    assert "Winner (configuration-level): **`pcgrad`**" in text
    agg = ctx["aggregates"]["configs"]
    assert agg["grpo"]["n_seeds"] == 3 and agg["grpo"]["mean"]["lo"] is not None
    assert agg["grpo"]["iqm"] is None and "too few" in agg["grpo"]["iqm_reason"]  # 3 seeds x 2 tasks
    assert [(p["x"], p["y"]) for p in ctx["aggregates"]["pairs"]] == [("pcgrad", "grpo")]
    assert "| pcgrad | 3 |" in text and not re.search(r"\bnan\b", text, re.I)
