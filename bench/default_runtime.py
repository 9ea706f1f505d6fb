"""Wall time of the README's first command (install + the embedded default) from a fresh clone.

Usage: python bench/default_runtime.py [--keep]
Clones the committed HEAD into a temporary directory, runs the command there, and writes
bench/results/default_runtime.json (date, machine, versions, per-rule job times from the logs).
Acceptance (issue 2): <= 10 minutes on the 2-core CI machine; goal <= 5 minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = 'pip install -q -c envs/constraints.txt -e ".[dev]" && HF_HUB_OFFLINE=1 snakemake --cores 2'


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("torch", "transformers", "trl", "peft", "snakemake")}


def per_rule(results: Path) -> dict[str, dict[str, float]]:
    """Jobs, summed wall and CPU seconds per rule, from the timing sidecars every job writes."""
    totals: dict[str, dict[str, float]] = {}
    for path in sorted((results / "logs").rglob("*.timing.jsonl")):
        rule = path.relative_to(results / "logs").parts[0].removesuffix(".timing.jsonl")
        timing = json.loads(path.read_text().splitlines()[-1])
        row = totals.setdefault(rule, {"jobs": 0, "wall_s": 0.0, "cpu_s": 0.0})
        row["jobs"] += 1
        row["wall_s"] = round(row["wall_s"] + timing["wall_s"], 1)
        row["cpu_s"] = round(row["cpu_s"] + timing["cpu_s"], 1)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone for inspection")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rlpipe-bench-"))
    clone = tmp / "rlpipe"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    load_before = os.getloadavg()
    t0 = time.monotonic()
    proc = subprocess.run(COMMAND, shell=True, cwd=clone, capture_output=True, text=True)
    wall = time.monotonic() - t0
    # the command re-pointed the editable install at the clone: point it back at this checkout
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(ROOT), "--no-deps"], check=True)
    if proc.returncode:
        sys.exit(f"command failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    scores = (clone / "results" / "tiny-default" / "scores.csv").read_text()
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": COMMAND,
        "wall_s": round(wall, 1),
        "cpus": os.cpu_count(),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "machine": platform.platform(),
        "python": platform.python_version(),
        "versions": versions(),
        "scores_csv_rows": len(scores.splitlines()) - 1,
        "per_rule": per_rule(clone / "results" / "tiny-default"),
    }
    out = ROOT / "bench" / "results" / "default_runtime.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
