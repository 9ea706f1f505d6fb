"""Evaluation of one checkpoint: load the model once, generate for every task of the suite."""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rlpipe.tracking.io import read_jsonl, write_jsonl
from rlpipe.tracking.manifest import (
    MANIFEST,
    ManifestError,
    copy_verified,
    is_verified,
    sidecar,
    verify_manifest,
    write_sidecar,
)

log = logging.getLogger(__name__)


def checkpoint_path(policy: str, checkpoints: str | None, step: int, backup: str | None = None) -> str:
    """Where the weights of (run, step) are, verified: the base policy at step 0, else ``step_N``.

    A checkpoint rlpipe published carries a manifest (``rlpipe.tracking.manifest``) and is verified
    before it is loaded: a torn or altered file must fail here, not be evaluated. A published step
    that fails is restored from ``backup/step_N`` (training's own verified export) when that
    verifies; otherwise the error says how to rebuild it. A base model without a manifest (one from
    the Hub) is loaded as it is.
    """
    if checkpoints is None or step == 0:
        if (Path(policy) / MANIFEST).exists():
            verify_manifest(policy)
        return policy
    path = Path(checkpoints) / f"step_{step}"
    if not path.is_dir():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist (training saved: {sorted(Path(checkpoints).iterdir())})"
        )
    try:
        verify_manifest(path)
    except ManifestError as exc:
        source = Path(backup) / path.name if backup else None
        if source is None or not is_verified(source):
            raise ManifestError(
                exc.path,
                f"{exc.problem}. Training's own copy is lost too: delete {checkpoints} and rerun the "
                "same snakemake command; training verifies its state and trains again what it must",
            ) from None
        log.warning("%s: %s; restoring it from training's verified export %s", path, exc.problem, source)
        copy_verified(source, path)
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
    backup: str | None = None,
) -> None:
    """Write one record per (item, sample) of every suite task to ``out`` (JSON lines), then their
    checksum (``<stem>.sha256``); ``backup`` as in :func:`checkpoint_path`."""
    from rlpipe.eval.generate import generate_for_suite

    t0 = time.monotonic()
    path = checkpoint_path(policy, checkpoints, step, backup)
    # data/suite/<task>.jsonl: the file stem is the suite's task name.
    rows_by_task = {Path(p).stem: read_jsonl(p) for p in data_paths}
    with tempfile.TemporaryDirectory(prefix="rlpipe-merged-") as scratch:
        generator, tokenizer = _load_generator(
            path, policy, backend, batch_size, tensor_parallel_size, scratch
        )
        log.info("loaded %s (%s backend) in %.1fs", path, backend, time.monotonic() - t0)
        records = generate_for_suite(generator, tokenizer, suite["tasks"], rows_by_task, seed)
    write_jsonl(out, records)
    write_sidecar(sidecar(out), [out])
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
