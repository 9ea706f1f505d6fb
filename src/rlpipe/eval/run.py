"""Evaluation of one checkpoint: load the model once, generate for every task of the suite."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from rlpipe.tracking.io import read_jsonl, write_jsonl

log = logging.getLogger(__name__)


def checkpoint_path(policy: str, checkpoints: str | None, step: int) -> str:
    """Where the weights of (run, step) are: the base policy at step 0, else ``step_N``."""
    if checkpoints is None or step == 0:
        return policy
    path = Path(checkpoints) / f"step_{step}"
    if not path.is_dir():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist (training saved: {sorted(Path(checkpoints).iterdir())})"
        )
    return str(path)


def generate_checkpoint(
    *,
    policy: str,
    checkpoints: str | None,
    step: int,
    suite: dict[str, Any],
    data_paths: list[str],
    out: str,
    backend: str,
    batch_size: int,
    seed: int,
) -> None:
    """Write one record per (item, sample) of every suite task to ``out`` (JSON lines)."""
    import torch

    from rlpipe.eval.generate import generate_for_suite, make_generator
    from rlpipe.models import load_policy

    t0 = time.monotonic()
    path = checkpoint_path(policy, checkpoints, step)
    model, tokenizer = load_policy(path, base=policy)
    if torch.cuda.is_available():
        model = model.to("cuda", dtype=torch.bfloat16)
    log.info("loaded %s in %.1fs", path, time.monotonic() - t0)
    # data/suite/<task>.jsonl: the file stem is the suite's task name.
    rows_by_task = {Path(p).stem: read_jsonl(p) for p in data_paths}
    generator = make_generator(backend, model, tokenizer, batch_size=batch_size)
    records = generate_for_suite(generator, tokenizer, suite["tasks"], rows_by_task, seed)
    write_jsonl(out, records)
    log.info("generated %d completions in %.1fs", len(records), time.monotonic() - t0)
