"""bench/train_step.py's long, uneven rollouts on CPU with a tiny model: the code path the GPU run takes.

``--eos-median`` gives the random model an eos logit bias so completions stop at uneven lengths
(geometric, median ~N, capped at ``--new``); both trainers' rollouts go through the refill engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_refill_rollouts_with_uneven_completion_lengths(tmp_path: Path) -> None:
    out = tmp_path / "train_step.json"
    cmd = [sys.executable, str(ROOT / "bench" / "train_step.py"), "--sizes", "tiny", "--steps", "2",
           "--prompts-per-step", "4", "--generations", "4", "--micro-batch", "4", "--prompt-len", "16",
           "--new", "64", "--eos-median", "12", "--configs", "trl_refill_rollout,ppo_refill",
           "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["results"]
    assert {r["config"] for r in rows} == {"trl_refill_rollout", "ppo_refill"}
    for row in rows:
        assert row["rollout_engine"] == "refill"
        steps = row["completion_length_stats"]
        pooled_max = max(s["max"] for s in steps)
        pooled_min = min(s["min"] for s in steps)
        # Uneven: 32 completions from a geometric stop with median 12 spread over a wide range.
        assert pooled_min < 12 < pooled_max <= 64
        assert row["rollout_useful_tokens_per_s"] > 0
