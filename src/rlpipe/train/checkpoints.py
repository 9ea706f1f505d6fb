"""Checkpoint layout: resumable trainer state vs exported evaluation checkpoints.

``state_dir/checkpoint-N`` is the trainer's own resumable checkpoint (weights + optimizer +
scheduler + RNG); only the newest is kept. Snakemake deletes a job's declared outputs before
rerunning it, so everything a resume needs lives outside them: each save is exported to
``state_dir/exported/step_N`` (only what ``from_pretrained`` or PEFT needs) and hard-linked into
the declared output ``checkpoints/step_N``. Both appear atomically (temp dir + rename).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from rlpipe.tracking.io import atomic_path

log = logging.getLogger(__name__)

_TRAINER_CKPT = re.compile(r"^checkpoint-(\d+)$")
# Files of a trainer checkpoint that are training state, not the model.
_STATE_FILES = {"optimizer.pt", "scheduler.pt", "trainer_state.json", "training_args.bin", "scaler.pt"}


def trainer_checkpoints(state_dir: str | os.PathLike[str]) -> dict[int, Path]:
    """Complete trainer checkpoints by step (a checkpoint without trainer_state.json is partial)."""
    found: dict[int, Path] = {}
    root = Path(state_dir)
    if root.is_dir():
        for child in root.iterdir():
            match = _TRAINER_CKPT.match(child.name)
            if match and (child / "trainer_state.json").exists():
                found[int(match.group(1))] = child
    return dict(sorted(found.items()))


def latest_trainer_checkpoint(state_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete trainer checkpoint, or None."""
    ckpts = trainer_checkpoints(state_dir)
    return ckpts[max(ckpts)] if ckpts else None


def export_checkpoint(src: Path, dst: Path, tokenizer: Any) -> None:
    """Copy the model (or adapter) files of a trainer checkpoint to ``dst`` atomically."""
    with atomic_path(dst, directory=True) as tmp:
        for item in src.iterdir():
            if item.is_file() and item.name not in _STATE_FILES and not item.name.startswith("rng_state"):
                shutil.copy2(item, tmp / item.name)
        tokenizer.save_pretrained(tmp)
    log.info("exported %s -> %s", src.name, dst)


def link_tree(src: Path, dst: Path) -> None:
    """Hard-link (copy where links fail) the files of ``src`` into a new ``dst``, atomically."""
    with atomic_path(dst, directory=True) as tmp:
        for item in src.iterdir():
            try:
                os.link(item, tmp / item.name)
            except OSError:
                shutil.copy2(item, tmp / item.name)


class ExportCallback(TrainerCallback):
    """After each trainer save, export ``checkpoint-N`` and publish it as ``step_N``."""

    def __init__(self, state_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], tokenizer: Any):
        self.state_dir, self.out_dir, self.tokenizer = Path(state_dir), Path(out_dir), tokenizer
        self.exported = self.state_dir / "exported"

    def restore(self) -> None:
        """Re-publish every step exported before a crash (Snakemake deleted the outputs).

        Only the main process of a multi-process run (``RANK`` 0, set by accelerate) does it.
        """
        if os.environ.get("RANK", "0") != "0":
            return
        if self.exported.is_dir():
            for path in sorted(self.exported.iterdir()):
                if path.name.startswith("step_") and not (self.out_dir / path.name).exists():
                    link_tree(path, self.out_dir / path.name)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:  # several processes: the main one saved the model, it exports
            return
        name = f"step_{state.global_step}"
        export_checkpoint(
            self.state_dir / f"checkpoint-{state.global_step}", self.exported / name, self.tokenizer
        )
        link_tree(self.exported / name, self.out_dir / name)
