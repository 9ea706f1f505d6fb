"""SFT warm-up: supervised fine-tuning on reference solutions before RL.

RL from a model that never solves a task earns zero reward and learns nothing; a short SFT stage
brings the policy to a partial solve rate from which RL can improve. The stage is generic: any
model, any task mix whose rows carry a ``solution``.

It checkpoints and resumes like training (``rlpipe.train.checkpoints``): every
``WARMUP_SAVES``-th of its steps is committed to ``work_dir``, a stop signal saves after the step in
progress, and a rerun resumes from the last committed checkpoint.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from rlpipe.tracking.io import atomic_path, disk_full_reported
from rlpipe.tracking.manifest import write_manifest

log = logging.getLogger(__name__)

#: How many checkpoints a warm-up commits over its steps (a kill loses at most 1/WARMUP_SAVES of it).
WARMUP_SAVES = 10


def to_sft_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prompt/completion conversational rows for TRL's SFTTrainer (loss on the completion only)."""
    missing = [r["id"] for r in rows if not r.get("solution")]
    if missing:
        raise ValueError(f"{len(missing)} training rows have no 'solution' for SFT, e.g. {missing[0]}")
    return [
        {"prompt": r["prompt"], "completion": [{"role": "assistant", "content": r["solution"]}]} for r in rows
    ]


def train_sft(
    model_dir: str,
    rows: list[dict[str, Any]],
    out_dir: str | os.PathLike[str],
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    work_dir: str | os.PathLike[str],
    warmup_ratio: float = 0.05,
    gradient_checkpointing: bool = True,
) -> dict[str, float]:
    """Fine-tune ``model_dir`` on ``rows`` for ``steps`` optimizer steps; save HF format to ``out_dir``.

    Returns the final training metrics. ``out_dir`` appears atomically when training finished,
    with a ``manifest.json`` of its files. A full disk says "no space left on device" and where.
    The resumable state lives in ``work_dir``, which the caller claims for this configuration
    (``checkpoints.claim_state_dir``).
    ``gradient_checkpointing`` (TRL's default) saves memory on large models at the cost of a
    second forward pass; a tiny model on CPU trains about a fifth faster without it.
    """
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from rlpipe.models import load_pretrained, resolve_model_dir
    from rlpipe.train.callbacks import ProgressCallback
    from rlpipe.train.checkpoints import CommitCallback, recover_state, save_tokenizer, staging_dir
    from rlpipe.train.signals import StopOnSignalCallback, StopRequest, TrainingInterrupted

    src = resolve_model_dir(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(src)
    model = load_pretrained(AutoModelForCausalLM, src)
    dataset = Dataset.from_list(to_sft_rows(rows))
    args = SFTConfig(
        output_dir=str(staging_dir(work_dir)),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, int(warmup_ratio * steps)),
        weight_decay=0.0,
        logging_steps=max(1, steps // 20),
        save_strategy="steps",
        save_steps=max(1, steps // WARMUP_SAVES),
        save_total_limit=None,
        report_to="none",
        seed=seed,
        data_seed=seed,
        use_cpu=_use_cpu(),
        bf16=False,
        completion_only_loss=True,
        gradient_checkpointing=gradient_checkpointing,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    stop = StopRequest()
    stop_callback = StopOnSignalCallback(stop)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[ProgressCallback("sft"), CommitCallback(work_dir, None, tokenizer), stop_callback],
    )
    resume = recover_state(work_dir)
    if resume:
        log.info("resuming the warm-up from %s", resume)
    with disk_full_reported([work_dir, out_dir]):
        with stop:
            result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        if stop_callback.stopped_at is not None:
            raise TrainingInterrupted.logged(stop.requested or 0, stop_callback.stopped_at)
        with atomic_path(out_dir, directory=True) as tmp:
            trainer.model.save_pretrained(tmp)
            save_tokenizer(tokenizer, tmp)
            write_manifest(tmp, step=steps, source="warmup")
    log.info("SFT done: %s", result.metrics)
    return dict(result.metrics)


def _use_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()
