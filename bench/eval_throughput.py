"""Evaluation throughput of the ``hf`` backend on the embedded default's tiny model (CPU).

Usage: python bench/eval_throughput.py [--threads 2] [--repeats 3] [--batch 256]
Builds the default config's tiny Qwen2 (random init: decode cost depends on shapes, not weights),
generates the `tiny` suite's whole test split (3 tasks x 200 items x 4 samples, <= 8 new tokens each)
with ``rlpipe.eval.generate.make_generator`` exactly as rule ``generate`` does, and reports items/s,
completions/s and generated tokens/s (median of repeats). Writes bench/results/eval_throughput.json
and a markdown line in bench/results/eval_throughput.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256, help="evaluation.batch_size (the default's)")
    args = parser.parse_args()

    import torch

    from rlpipe.config import load_suite, load_yaml
    from rlpipe.data.tasks import generate
    from rlpipe.eval.generate import generate_for_suite, make_generator
    from rlpipe.models import build_tiny_model, load_policy

    torch.set_num_threads(args.threads)
    arch = load_yaml(ROOT / "config" / "config.yaml")["model"]["arch"]
    suite = load_suite("tiny", ROOT)
    rows = {
        name: [
            {**row, "task": name, "domain": spec["domain"]}
            for row in generate(spec["source"]["task"], "test", spec["source"]["n"], 0)
        ]
        for name, spec in suite["tasks"].items()
    }
    items = sum(len(r) for r in rows.values())
    with tempfile.TemporaryDirectory() as tmp:
        n_params = build_tiny_model(Path(tmp) / "m", arch, seed=0)
        model, tokenizer = load_policy(Path(tmp) / "m")
    generator = make_generator("hf", model, tokenizer, batch_size=args.batch)
    timings, completions, tokens = [], 0, 0
    for repeat in range(args.repeats):
        t0 = time.perf_counter()
        records = generate_for_suite(generator, tokenizer, suite["tasks"], rows, seed=repeat)
        timings.append(time.perf_counter() - t0)
        completions, tokens = len(records), sum(r["n_tokens"] for r in records)
        print(f"repeat {repeat}: {timings[-1]:.2f} s, {completions} completions, {tokens} tokens", flush=True)
    wall = statistics.median(timings)
    from importlib.metadata import version

    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg": os.getloadavg()},
        "versions": {p: version(p) for p in ("torch", "transformers")},
        "engine": type(generator).__name__,
        "threads": args.threads,
        "batch_size": args.batch,
        "model_parameters": n_params,
        "items": items,
        "completions": completions,
        "generated_tokens": tokens,
        "seconds_median": round(wall, 3),
        "seconds_all": [round(t, 3) for t in timings],
        "items_per_s": round(items / wall, 1),
        "completions_per_s": round(completions / wall, 1),
        "tokens_per_s": round(tokens / wall, 1),
    }
    out = ROOT / "bench" / "results"
    (out / "eval_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    line = (
        f"- {result['date'][:10]} tiny suite ({items} items x 4 samples), {result['engine']}, "
        f"{n_params:,}-parameter tiny Qwen2, {args.threads} threads, batch {args.batch}: "
        f"**{result['items_per_s']} items/s**, {result['completions_per_s']} completions/s, "
        f"{result['tokens_per_s']} tokens/s (median of {args.repeats}; "
        f"load avg {result['machine']['load_avg'][0]:.1f})"
    )
    (out / "eval_throughput.md").write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
