"""Throughput of the sandboxed ``code`` scorer on a synthetic batch (items/s).

Usage: ``python bench/code_scorer.py [--items 120] [--workers 1 2 4] [--repeats 3]
[--mechanisms auto rlimit]``.
Writes ``bench/results/code_scorer.json`` (date, machine, versions, numbers) and
``bench/results/code_scorer.md`` (one line per configuration).

The batch mixes what a GRPO step sees: stdin/stdout programs with 5 test cases (right and wrong
answers), functional (HumanEval-style) programs with asserts, runtime errors and syntax errors. No
timeouts are included: a timing-out item costs its wall-clock limit whatever the sandbox does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from rlpipe.rewards import score
from rlpipe.rewards.sandbox import sandbox_mechanism

RESULTS = Path(__file__).parent / "results"

STDIO_TESTS = json.dumps(
    {"inputs": [f"{i} {i * 3}\n" for i in range(5)], "outputs": [f"{i * 4}\n" for i in range(5)]}
)
FUNCTIONAL_TESTS = json.dumps({"functional": "assert fib(10) == 55\nassert fib(1) == 1\nassert fib(0) == 0"})

PROGRAMS = [
    ("a, b = map(int, input().split())\nprint(a + b)", STDIO_TESTS, 1.0),
    ("a, b = map(int, input().split())\nprint(a * b)", STDIO_TESTS, 0.0),
    (
        "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
        FUNCTIONAL_TESTS,
        1.0,
    ),
    ("def fib(n):\n    return n", FUNCTIONAL_TESTS, 0.0),
    ("import sys\nraise ValueError('boom')", STDIO_TESTS, 0.0),
    ("def fib(n) return n", FUNCTIONAL_TESTS, 0.0),
]


def batch(n: int) -> list[tuple[str, str, float]]:
    weights = [4, 1, 3, 1, 1, 1]  # mostly passing programs: the expensive path (all cases run)
    pool = [p for p, w in zip(PROGRAMS, weights, strict=True) for _ in range(w)]
    return [
        (f"```python\n{pool[i % len(pool)][0]}\n```", pool[i % len(pool)][1], pool[i % len(pool)][2])
        for i in range(n)
    ]


def run_once(items: list[tuple[str, str, float]], workers: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        scores = list(pool.map(lambda item: score("code", item[0], item[1]), items))
    elapsed = time.perf_counter() - start
    wrong = sum(s != item[2] for s, item in zip(scores, items, strict=True))
    if wrong:
        raise SystemExit(f"{wrong} items scored differently than expected: the benchmark is invalid")
    return elapsed


def run(items: list[tuple[str, str, float]], workers: int, repeats: int) -> dict:
    """Median over ``repeats`` runs (the machine is shared, single runs are noisy)."""
    times = sorted(run_once(items, workers) for _ in range(repeats))
    elapsed = statistics.median(times)
    return {
        "repeats": repeats,
        "items_per_s_min": round(len(items) / times[-1], 2),
        "items_per_s_max": round(len(items) / times[0], 2),
        "workers": workers,
        "items": len(items),
        "seconds": round(elapsed, 3),
        "items_per_s": round(len(items) / elapsed, 2),
    }


def machine() -> dict:
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    bwrap = shutil.which("bwrap")
    bwrap_version = (
        subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout.strip() if bwrap else None
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "rlpipe": metadata.version("rlpipe"),
        "bwrap": bwrap_version,
        "root": os.geteuid() == 0,
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],  # the machine is shared: context
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=120)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mechanisms", nargs="+", default=["auto", "rlimit"])
    args = parser.parse_args()
    items = batch(args.items)
    load_before = [round(x, 2) for x in os.getloadavg()]
    rows = []
    for mechanism in args.mechanisms:
        os.environ["RLPIPE_SANDBOX"] = mechanism
        used = sandbox_mechanism()
        score("code", *items[0][:2])  # warm-up (bwrap probe, imports)
        for workers in args.workers:
            row = {"mechanism": used, **run(items, workers, args.repeats)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "loadavg_before": load_before,
        "results": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "code_scorer.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    lines = [
        f"- {result['date'][:10]} code scorer, {r['mechanism']}, {r['workers']} worker(s): "
        f"**{r['items_per_s']} items/s** (median of {r['repeats']}, range {r['items_per_s_min']}-"
        f"{r['items_per_s_max']}; {r['items']} items) on {m['cpus']} CPUs "
        f"({m['cpu_model']}, load {m['loadavg_1_5_15'][0]}), Python {m['python']}, {m['bwrap'] or 'no bwrap'}"
        for r in rows
    ]
    (RESULTS / "code_scorer.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
