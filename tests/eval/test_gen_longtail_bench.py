"""bench/gen_longtail.py end to end on CPU with a tiny model: a smoke test of every code path it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gen_longtail_smoke(tmp_path: Path) -> None:
    out = tmp_path / "longtail.json"
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "gen_longtail.py"),
        "--sizes",
        "tiny",
        "--cpu",
        "--rows",
        "16",
        "--min-prompt",
        "4",
        "--max-prompt",
        "24",
        "--median",
        "8",
        "--max-new",
        "32",
        "--static-full",
        "--stock-batch",
        "4",
        "--slots",
        "4",
        "--check-every",
        "2",
        "--kv-chunk",
        "2",
        "--cb-rows",
        "8",
        "--engines",
        "stock,fast,refill_unfused,refill_swap,refill_grow,refill_cb_rows,refill,refill_topk,cb_tuned,sampler,check",
        "--out",
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    assert not [r for r in results if "error" in r]
    by = {r["engine"]: r for r in results}
    engines = ("hf_generate", "fast_hf", "refill_unfused", "refill_swap", "refill_grow", "refill_topk")
    assert set(by) >= {*engines, "refill", "refill_cb_rows", "cb_tuned", "sampler_microbench", "checks"}
    useful = by["refill"]["useful_tokens"]
    assert all(by[e]["useful_tokens"] == useful for e in engines)
    # CB and the same-rows refill run decode the first 8 rows only, to the same targets.
    assert not by["cb_tuned"]["partial"] and by["cb_tuned"]["rows_finished"] == 8
    assert by["refill_cb_rows"]["rows"] == 8
    assert by["refill_cb_rows"]["useful_tokens"] == by["cb_tuned"]["useful_tokens"] < useful
    assert by["refill"]["fused_projections_gib"] > 0 and by["refill_unfused"]["fused_projections_gib"] == 0
    assert by["refill_grow"]["kv_moves"] + by["refill_grow"]["kv_extended"] > 0  # extents grew
    assert 0 < by["refill"]["drain_tokens"] < useful and by["refill"]["drain_tok_per_s"] > 0
    assert by["checks"]["deterministic"] and by["checks"]["seed_changes_output"]
    assert by["checks"]["greedy_equal_prefix"] == by["checks"]["greedy_of"]  # fp32 on CPU: exact
    assert by["checks"]["grow_greedy_equal_static"] and by["checks"]["grow_deterministic"]
    assert by["checks"]["grow_stats"]["moved"] > 0
    # Refill keeps its slots busier than static batches of the same workload.
    assert by["refill"]["slot_efficiency"] > by["fast_hf"]["slot_efficiency"]
    assert out.with_suffix(".md").exists()
