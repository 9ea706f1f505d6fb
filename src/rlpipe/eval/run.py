"""Evaluation of one checkpoint: load the model once, generate for every task of the suite."""

from __future__ import annotations

import logging
import tempfile
import threading
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
    tensor_parallel_size: int = 1,
) -> None:
    """Write one record per (item, sample) of every suite task to ``out`` (JSON lines)."""
    from rlpipe.eval.generate import generate_for_suite

    t0 = time.monotonic()
    path = checkpoint_path(policy, checkpoints, step)
    # data/suite/<task>.jsonl: the file stem is the suite's task name.
    rows_by_task = {Path(p).stem: read_jsonl(p) for p in data_paths}
    with tempfile.TemporaryDirectory(prefix="rlpipe-merged-") as scratch:
        generator, tokenizer = _load_generator(
            path, policy, backend, batch_size, tensor_parallel_size, scratch
        )
        log.info("loaded %s (%s backend) in %.1fs", path, backend, time.monotonic() - t0)
        records = generate_for_suite(generator, tokenizer, suite["tasks"], rows_by_task, seed)
    write_jsonl(out, records)
    log.info("generated %d completions in %.1fs", len(records), time.monotonic() - t0)


def _load_generator(
    path: str, policy: str, backend: str, batch_size: int, tensor_parallel_size: int, scratch: str
) -> tuple[Any, Any]:
    """(generator, tokenizer) for one checkpoint; the model is loaded once for all tasks."""
    import torch

    from rlpipe.eval.generate import VLLMGenerator, make_generator
    from rlpipe.models import load_policy

    # vLLM reloads the weights itself, so they are only read onto the GPU for the hf engines.
    device = "cuda" if torch.cuda.is_available() and backend != "vllm" else None
    t0 = time.monotonic()
    if device:
        # The CUDA context (~1 s) is created in a thread while transformers imports (~3 s, mostly
        # Python holding the GIL): a warm evaluation job is short enough for this to matter.
        warm = threading.Thread(target=torch.zeros, args=(1,), kwargs={"device": device}, daemon=True)
        warm.start()
    model, tokenizer = load_policy(path, base=policy, device=device)
    log.info("read weights onto %s in %.1fs", device or "cpu", time.monotonic() - t0)
    if backend == "vllm":
        # vLLM reads a directory; a LoRA checkpoint is merged into the base and saved in scratch first.
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        del model
        eos = tokenizer.eos_token_id
        return VLLMGenerator(scratch, tensor_parallel_size=tensor_parallel_size, eos_ids={eos}), tokenizer
    return make_generator(backend, model, tokenizer, batch_size=batch_size), tokenizer
