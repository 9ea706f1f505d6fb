"""GRPO under DeepSpeed ZeRO-3 as 2 processes on a CPU, against one process (issue 25).

DeepSpeed is not an rlpipe dependency, so CI cannot run this; it runs in an environment that has it:

    python -m venv --system-site-packages /tmp/refenv-dist
    /tmp/refenv-dist/bin/pip install deepspeed
    CUDA_VISIBLE_DEVICES= /tmp/refenv-dist/bin/python bench/deepspeed_cpu.py OUT.json

The runs are those of tests/train/test_distributed_grpo.py (its helpers: the launcher's command
with the ``dist_worker`` hook module, the same tiny model, prompts, toy reward and fixed sampling),
with ``accelerate: deepspeed-zero3``: 2 steps, then resumed to 3 from DeepSpeed's checkpoint, and the
same 3 steps in one process. The JSON written (atomically) holds each step's loss, gradient norm
and reward on both, their largest differences and those of every exported checkpoint's weights.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "train"))

import test_distributed_grpo as t  # noqa: E402  (the tests' helpers)


def main(out: str) -> None:
    import deepspeed
    import torch
    from safetensors.torch import load_file

    from rlpipe.data.tasks import generate
    from rlpipe.models import build_tiny_model
    from rlpipe.tracking.io import write_json, write_jsonl

    root = Path(tempfile.mkdtemp(prefix="rlpipe-deepspeed-cpu-"))
    build_tiny_model(root / "model", t.ARCH, seed=0)
    rows = generate("addition", "train", 6, 0)
    for row in rows:
        row["scorer"] = "test_char_sum"
    write_jsonl(root / "train.jsonl", rows)

    one = t._paths(root / "one", root / "model")
    t._one_process(t._run("full", 1, None), one)
    two = t._paths(root / "zero3", root / "model")
    statuses = []
    for steps in (2, t.STEPS):  # the second launch resumes from checkpoint-2
        run = {**t._run("full", 2, None), "accelerate": "deepspeed-zero3", "steps": steps}
        statuses.append(t._launch(run, two))
    log = Path(two["log"]).read_text()
    a, b = t._metrics(one["metrics"]), t._metrics(two["metrics"])
    result: dict[str, Any] = {
        "deepspeed": deepspeed.__version__,
        "launcher_status": statuses,
        "resumed_from_checkpoint_2": "checkpoint-2" in log and "resuming from" in log,
        "steps": {"one_process": a, "zero3_two_processes": b},
        "max_rel_diff": {
            key: max(abs(x[key] - y[key]) / max(abs(x[key]), 1e-30) for x, y in zip(a, b, strict=True))
            for key in ("grad_norm", "reward", "entropy")
        },
        "max_abs_diff_loss": max(abs(x["loss"] - y["loss"]) for x, y in zip(a, b, strict=True)),
        "max_abs_diff_weights": {},
    }
    for step in range(1, t.STEPS + 1):
        wa = load_file(Path(one["checkpoints"]) / f"step_{step}" / "model.safetensors")
        wb = load_file(Path(two["checkpoints"]) / f"step_{step}" / "model.safetensors")
        assert wa.keys() == wb.keys()
        result["max_abs_diff_weights"][step] = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    # DeepSpeed's own partitioned state of the last step: one file per rank, stage 3, 2 ranks
    partitions = Path(two["state_dir"]) / f"checkpoint-{t.STEPS}" / f"global_step{t.STEPS}"
    states = torch.load(
        partitions / "zero_pp_rank_0_mp_rank_00_model_states.pt", weights_only=False, map_location="cpu"
    )
    result["zero_stage"] = states["ds_config"]["zero_optimization"]["stage"]
    result["dp_world_size"] = states["dp_world_size"]
    result["partition_files"] = sorted(p.name for p in partitions.iterdir())
    result["exported_files"] = sorted(p.name for p in (Path(two["checkpoints"]) / "step_3").iterdir())
    write_json(out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "steps"}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
