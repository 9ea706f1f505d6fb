"""False "learning" / "unstable" verdicts and power of the reward-trend test (issues 12 and 22).

Usage: python bench/trend_power.py [--reps 2000] [--seed 22] [--ns 12,60,200] [--runs GLOB]

Every cell passes ``--reps`` simulated reward series through ``diagnose_run`` as reward-only
metrics rows (``{"step": i, "reward": r}``, steps 1..n), at n = 12 checkpoints, 60 steps and 200
steps, and counts the verdicts:

* *before* = ``rlpipe/analysis/diagnostics.py`` as of commit 172c17d (read from git and run as it
  was, with that commit's ``stats.py``: ``trend_slope_ar1``, the AR(1)-corrected t).
* *after* = the current module (``rlpipe.analysis.trend.trend_slope_robust``).

Scenarios (base reward 0.3; ``SD`` = 0.0393, the median residual sd of the embedded default's six
60-step runs, measured in issue 12; the trend sizes from the same runs, see ``FALLBACK_RUNS``):

* trendless (null) series, goals false "learning" <= 5 % and false "unstable" <= 5 %:
  stationary AR(1) with phi in {-0.5, 0, 0.5, 0.9, 0.95} and AR(2) (0.5, 0.4), marginal sd SD
  (started from the stationary distribution); a random walk whose steps have sd SD (each logged
  point moves by the per-step noise: at 200 steps it wanders ~0.55, far beyond the absolute
  thresholds, so the verdict rests on the test alone); two slow sinusoids plus white noise of sd
  SD, amplitude SD: ``SD * cos(2 pi (t-1)/(n-1))`` (one full period: starts high, dips, comes
  back) and ``-SD * sin(pi (t-1)/(n-1))`` (half a period: a dip that recovers). Both are
  symmetric about the middle of the run, so the best line is exactly flat and the run ends
  where it started: no gain to call "learning", and their second halves *rise*, so there is no
  decline to call a collapse or a drop. (A hump, +sin, is not a null for "unstable": its second
  half really falls by SD; it is reported for information.)
* information only: a random walk buried in white noise ("local level": walk steps 0.1 SD plus
  white noise SD), which no robust test covers at these lengths (see trend.py).
* power: the default's median trend (a gain of 0.0298 over the run) and the mean of its two
  strongest runs (0.0489), white noise of sd SD, and the median trend with AR(1) 0.5 noise; the
  gain over the run is held fixed across n (the same run logged at 12, 60 or 200 points).

Levels: "learning" is a one-sided test at 2.5 % (95 % CI above 0) plus a gain of at least 0.02;
"unstable" on these reward-only rows comes only from the reward collapse / drop checks, each a
one-sided test at 1.25 % (97.5 % CI below 0; before: 2.5 %) with a drop of at least 0.05, so its
nominal bound is 2.5 % (5 % before). The goal is 5 % for both; the table marks cells above the
goal by more than 2 binomial SE.

Writes bench/results/trend_power.json and .md. CPU only, ~6 minutes on 2 cores at 2000
replicates.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rlpipe.analysis import diagnostics as dg

ROOT = Path(__file__).resolve().parents[1]
BEFORE_COMMIT = "172c17d"
BASE = 0.3
SD = 0.0393
GOAL = 0.05
LEARNING_NOMINAL = 0.025
UNSTABLE_NOMINAL = 0.025  # after; 0.05 before (two one-sided 2.5 % checks)
DEFAULT_RUNS = "/tmp/r525/results/tiny-default/runs/*/metrics.jsonl"
#: Measured on the embedded default's six 60-step runs (2026-12, commit b6edae0; issue 12).
FALLBACK_RUNS = {
    "dr-grpo": {"slope": 0.000331, "sd": 0.0362, "r1": -0.086},
    "grpo": {"slope": 0.000532, "sd": 0.0442, "r1": -0.021},
    "grpo-lora": {"slope": 0.000478, "sd": 0.0386, "r1": 0.010},
    "grpo-lora-r4": {"slope": 0.000427, "sd": 0.0375, "r1": -0.074},
    "grpo-pcgrad": {"slope": 0.000628, "sd": 0.0399, "r1": 0.019},
    "ppo": {"slope": 0.001030, "sd": 0.0458, "r1": -0.081},
}


# ----------------------------------------------------------------------------------------------
# before / after


def load_before() -> tuple[types.ModuleType, str]:
    """diagnostics.py as of BEFORE_COMMIT with that commit's stats.py (its trend_slope_ar1), both
    read from git and run as modules beside today's."""

    def show(path: str) -> str:
        return subprocess.run(
            ["git", "show", f"{BEFORE_COMMIT}:{path}"], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout

    modules = {}
    for name, path in (
        ("stats", "src/rlpipe/analysis/stats.py"),
        ("diagnostics", "src/rlpipe/analysis/diagnostics.py"),
    ):
        src = show(path).replace("from rlpipe.analysis.stats import", "from rlpipe_stats_before import")
        spec = importlib.util.spec_from_loader(f"rlpipe_{name}_before", loader=None)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses and the diagnostics' import look it up
        exec(compile(src, f"{BEFORE_COMMIT}:{path}", "exec"), module.__dict__)
        modules[name] = module
    return modules["diagnostics"], f"git show {BEFORE_COMMIT}:src/rlpipe/analysis/{{stats,diagnostics}}.py"


def rates(diagnose: Callable, series: np.ndarray) -> dict[str, float]:
    steps = range(1, series.shape[1] + 1)
    verdicts = [
        diagnose([{"step": s, "reward": float(v)} for s, v in zip(steps, y, strict=True)]).verdict
        for y in series
    ]
    return {k: verdicts.count(k) / len(verdicts) for k in ("learning", "unstable", "flat")}


# ----------------------------------------------------------------------------------------------
# noise


def arma(rng: np.random.Generator, coefs: tuple[float, ...], reps: int, n: int, sd: float) -> np.ndarray:
    """Stationary AR(p) series with marginal sd ``sd``: started ``burn`` steps early (enough for
    the slowest root here, 0.95, to forget its start) and scaled by the theoretical sd."""
    burn = 400
    z = rng.standard_normal((reps, n + burn))
    e = np.zeros_like(z)
    for t in range(n + burn):
        e[:, t] = z[:, t]
        for i, c in enumerate(coefs):
            if t > i:
                e[:, t] += c * e[:, t - 1 - i]
    return sd * e[:, burn:] / ar_sd(coefs)


def ar_sd(coefs: tuple[float, ...]) -> float:
    """Marginal sd of an AR(p) with unit innovations (impulse response, 5,000 terms)."""
    psi = np.zeros(5000)
    psi[0] = 1.0
    for t in range(1, len(psi)):
        psi[t] = sum(c * psi[t - 1 - i] for i, c in enumerate(coefs) if t > i)
    return float(np.sqrt(psi @ psi))


def nulls(rng: np.random.Generator, reps: int, n: int) -> dict[str, tuple[np.ndarray, bool]]:
    """name -> (series, is a goal scenario)."""
    t = np.arange(n, dtype=float)
    white = lambda: SD * rng.standard_normal((reps, n))  # noqa: E731
    out = {
        f"AR(1) phi={phi:g}": (arma(rng, (phi,), reps, n, SD), True) for phi in (-0.5, 0.0, 0.5, 0.9, 0.95)
    }
    out["AR(2) (0.5, 0.4)"] = (arma(rng, (0.5, 0.4), reps, n, SD), True)
    out["random walk (steps sd SD)"] = (SD * np.cumsum(rng.standard_normal((reps, n)), axis=1), True)
    out["sinusoid, full period (cos)"] = (SD * np.cos(2 * np.pi * t / (n - 1)) + white(), True)
    out["sinusoid, half period (dip)"] = (-SD * np.sin(np.pi * t / (n - 1)) + white(), True)
    out["info: sinusoid, half period (hump)"] = (SD * np.sin(np.pi * t / (n - 1)) + white(), False)
    out["info: random walk 0.1 SD + white noise SD"] = (
        0.1 * SD * np.cumsum(rng.standard_normal((reps, n)), axis=1) + white(),
        False,
    )
    return {k: (BASE + v, goal) for k, (v, goal) in out.items()}


def trend_size(pattern: str) -> dict:
    """The default's trend size from its runs' metrics.jsonl (or the values measured in issue 12)."""
    runs = {}
    for path in sorted(glob.glob(pattern)):
        with open(path) as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        s = dg._series(rows, dg.REWARD_KEYS)
        if s is None or len(s) < 5:
            continue
        dx = s.steps - s.steps.mean()
        slope = float(dx @ (s.values - s.values.mean()) / (dx @ dx))
        r = s.values - s.values.mean() - slope * dx
        runs[Path(path).parent.name] = {
            "slope": slope,
            "sd": float(np.sqrt(r @ r / (len(r) - 2))),
            "r1": float(r[1:] @ r[:-1] / (r @ r)),
        }
    source = pattern if runs else "FALLBACK_RUNS (measured 2026-12 on the default's six runs)"
    runs = runs or FALLBACK_RUNS
    slopes = sorted(r["slope"] for r in runs.values())
    return {
        "source": source,
        "runs": runs,
        "median_gain_60_steps": float(np.median(slopes)) * 59,
        "top2_gain_60_steps": float(np.mean(slopes[-2:])) * 59,
        "median_resid_sd": float(np.median([r["sd"] for r in runs.values()])),
    }


# ----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--ns", default="12,60,200")
    parser.add_argument("--runs", default=DEFAULT_RUNS, help="glob of the default's metrics.jsonl files")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "trend_power"))
    args = parser.parse_args()
    t0 = time.time()
    before, before_source = load_before()
    versions = {"before": before.diagnose_run, "after": dg.diagnose_run}
    size = trend_size(args.runs)
    rng = np.random.default_rng(args.seed)
    reps = args.reps
    cells: dict[str, dict[str, dict]] = {}
    for n in (int(v) for v in args.ns.split(",")):
        t = np.arange(n, dtype=float)
        rows: dict[str, dict] = {}
        for name, (series, goal) in nulls(rng, reps, n).items():
            rows[name] = {
                "kind": "null" if goal else "info",
                **{k: rates(f, series) for k, f in versions.items()},
            }
            print(n, name, rows[name], flush=True)
        power = {
            "power: median trend, white noise": (size["median_gain_60_steps"], 0.0),
            "power: median trend, AR(1) 0.5": (size["median_gain_60_steps"], 0.5),
            "power: top-2 trend, white noise": (size["top2_gain_60_steps"], 0.0),
        }
        for name, (gain, phi) in power.items():
            series = BASE + gain * t / (n - 1) + arma(rng, (phi,), reps, n, SD)
            rows[name] = {"kind": "power", "gain": gain, **{k: rates(f, series) for k, f in versions.items()}}
            print(n, name, rows[name], flush=True)
        cells[str(n)] = rows

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    result = {
        "date": dt.date.today().isoformat(),
        "machine": f"2-core CPU VM ({os.cpu_count()} CPUs seen)",
        "numpy": np.__version__,
        "python": platform.python_version(),
        "commit": commit.stdout.strip(),
        "before": before_source,
        "after": f"rlpipe.analysis.trend.trend_slope_robust: {dg.TREND_METHOD}",
        "reps": reps,
        "seed": args.seed,
        "base_reward": BASE,
        "noise_sd": SD,
        "goal": GOAL,
        "nominal": {
            "learning (one-sided 2.5 %)": LEARNING_NOMINAL,
            "unstable after (2 x one-sided 1.25 %)": UNSTABLE_NOMINAL,
            "unstable before (2 x one-sided 2.5 %)": 0.05,
        },
        "default_trend_size": size,
        "cells": cells,
        "seconds": round(time.time() - t0, 1),
    }
    Path(args.out + ".json").write_text(json.dumps(result, indent=1) + "\n")
    Path(args.out + ".md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    reps = r["reps"]
    tol = 2 * math.sqrt(GOAL * (1 - GOAL) / reps)

    def cell(v: float, bound: float | None) -> str:
        text = f"{v:.1%}"
        return f"**{text}**" if bound is not None and v > bound + tol else text

    s = r["default_trend_size"]
    lines = [
        "# Reward-trend verdicts under autocorrelated and unit-root noise (issues 12, 22)",
        "",
        f"{r['date']}, {r['machine']}, numpy {r['numpy']}, Python {r['python']}, commit {r['commit']}, "
        f"{reps} replicates per cell, seed {r['seed']}, base reward {r['base_reward']}, noise sd "
        f"{r['noise_sd']}. Produced by `bench/trend_power.py` in {r['seconds']} s.",
        "",
        f"* before: {r['before']} (`trend_slope_ar1`: OLS slope, AR(1)-corrected SE, t with n_eff - 2 df)",
        f"* after: {r['after']}",
        "",
        "Each row: trendless or trending reward series of n points through `diagnose_run` (reward-only "
        "rows, steps 1..n). 'learning' = 95 % CI above 0 (**one-sided test at 2.5 %**) and gain >= 0.02; "
        "'unstable' here = the reward collapse / drop checks, each a **one-sided test at 1.25 %** "
        "after (union: 2.5 %) and at 2.5 % before (union: 5 %). Goal for null rows: false 'learning' "
        "<= 5 % and false 'unstable' <= 5 %; bold = "
        f"above the goal by more than 2 binomial SE ({tol:.1%} at {reps} replicates). The learning test's "
        "own nominal level is 2.5 %: compare 'learning' on null rows with 2.5 %, 'unstable' with 2.5 % "
        "after and 5 % before. "
        "'info' rows are not nulls of the goal (see the script's docstring). Power rows: share called "
        f"'learning' at the default's median trend (gain {s['median_gain_60_steps']:.4f} over the run) "
        f"and its top-2 trend ({s['top2_gain_60_steps']:.4f}), the same gain at every n.",
        "",
    ]
    for n, rows in r["cells"].items():
        lines += [
            f"## n = {n}",
            "",
            "| scenario | learning before | learning after | unstable before | unstable after |",
            "|---|---|---|---|---|",
        ]
        for name, v in rows.items():
            b, a = v["before"], v["after"]
            goal = GOAL if v["kind"] == "null" else None
            lines.append(
                f"| {name} | {cell(b['learning'], goal)} | {cell(a['learning'], goal)} "
                f"| {cell(b['unstable'], goal)} | {cell(a['unstable'], goal)} |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
