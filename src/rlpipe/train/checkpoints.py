"""Checkpoint layout: resumable trainer state vs exported evaluation checkpoints.

``state_dir/checkpoint-N`` is the trainer's own resumable checkpoint (weights + optimizer +
scheduler + RNG); only the newest is kept. Snakemake deletes a job's declared outputs before
rerunning it, so everything a resume needs lives outside them: each save is exported to
``state_dir/exported/step_N`` (only what ``from_pretrained`` or PEFT needs) and hard-linked into
the declared output ``checkpoints/step_N``. Both appear atomically (temp dir + rename).

The same goes for the training metrics: they are appended live to ``state_dir/metrics.jsonl`` and
published to the declared ``metrics.jsonl`` output when the run ends, so a retried job keeps the
lines of the steps before its resume point.

A resume is only right when the state was made by the same job: ``claim_state_dir`` records the
run spec and the identity of its inputs in ``state_dir/identity.json`` and clears state left by a
different spec or different inputs (Snakemake reruns training after such a change, and resuming
from the old run's final checkpoint would silently publish the old model).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from rlpipe.tracking.io import atomic_path, write_json, write_text

log = logging.getLogger(__name__)

_TRAINER_CKPT = re.compile(r"^checkpoint-(\d+)$")
# Files of a trainer checkpoint that are training state, not the model.
_STATE_FILES = {"optimizer.pt", "scheduler.pt", "trainer_state.json", "training_args.bin", "scaler.pt"}


IDENTITY_FILE = "identity.json"
LIVE_METRICS = "metrics.jsonl"


def input_identity(path: str | os.PathLike[str]) -> list[list[Any]]:
    """What a file or directory is, cheaply: (relative name, size, mtime in ns) of every file.

    Model directories can hold many GB, so contents are not hashed; a rewrite by Snakemake (a new
    warm-up, a new download) changes the modification times.
    """
    root = Path(path)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return [
        [str(p.relative_to(root)) if p != root else p.name, p.stat().st_size, p.stat().st_mtime_ns]
        for p in files
    ]


def state_identity(run: dict[str, Any], inputs: dict[str, str | os.PathLike[str] | None]) -> dict[str, Any]:
    """The run spec plus the identity of each input a training job reads (``None`` inputs skipped)."""
    body = {
        "run": run,
        "inputs": {k: input_identity(v) for k, v in sorted(inputs.items()) if v is not None},
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return {"sha256": digest, **body}


def claim_state_dir(state_dir: str | os.PathLike[str], identity: dict[str, Any]) -> bool:
    """Make ``state_dir`` this job's: keep it when it was made by the same identity, else clear it.

    Returns True when existing state was kept (the job will resume from it). Call once per job,
    before any training process starts (not from every rank).
    """
    root = Path(state_dir)
    recorded = root / IDENTITY_FILE
    if root.is_dir() and any(root.iterdir()):
        previous = json.loads(recorded.read_text()) if recorded.exists() else {}
        if previous.get("sha256") == identity["sha256"]:
            log.info("resumable state in %s was made by this run spec and inputs: resuming", root)
            return True
        changed = [k for k in ("run", "inputs") if previous.get(k) != identity[k]] or ["unrecorded"]
        log.warning(
            "state in %s was made by a different %s: starting this run from scratch",
            root,
            " and ".join(changed),
        )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    write_json(recorded, identity)
    return False


def live_metrics(state_dir: str | os.PathLike[str]) -> Path:
    """Where a run appends its metrics while it trains (kept across retries, unlike the output)."""
    return Path(state_dir) / LIVE_METRICS


#: The key of the summary row a trainer logs when a training segment ends (HF ``Trainer.train``).
SEGMENT_SUMMARY_KEY = "train_runtime"


def trim_metrics(path: str | os.PathLike[str], step: int) -> None:
    """Drop the metric lines past ``step`` (the resumed step), so that no step is counted twice.

    A segment's closing summary (the trainer's ``train_runtime`` row) is dropped too: a resumed run
    writes its own at its end, and an interrupted segment's would list its last step twice.

    A crash after a checkpoint leaves lines of steps the resumed run will train again; a crash (or
    a full disk) in the middle of an append leaves a torn last line, which is dropped with a warning
    naming the file. A malformed line anywhere else is not a crash's trace but a damaged file: a
    ``ValueError`` names the file and line. The file is rewritten atomically: a crash here loses
    nothing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        return
    lines = [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    kept = []
    for i, (n, line) in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if i == len(lines) - 1:
                log.warning("%s:%d: dropping a torn last line (a crash mid-write): %.60r", path, n, line)
                continue
            raise ValueError(f"{path}:{n}: not a JSON metrics line ({exc.msg}); the file is damaged") from exc
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{n}: a metrics line must be a JSON object, got {type(row).__name__}")
        if row.get("step", 0) <= step and SEGMENT_SUMMARY_KEY not in row:
            kept.append(line)
    write_text(path, "".join(line + "\n" for line in kept))


def publish_metrics(state_dir: str | os.PathLike[str], metrics_path: str | os.PathLike[str]) -> None:
    """Copy the live metrics to the declared output, atomically; only the main process does it."""
    if os.environ.get("RANK", "0") != "0":
        return
    live = live_metrics(state_dir)
    with atomic_path(metrics_path) as tmp:
        if live.exists():
            shutil.copy2(live, tmp)
        else:
            tmp.touch()


def trainer_checkpoints(state_dir: str | os.PathLike[str]) -> dict[int, Path]:
    """Complete trainer checkpoints by step.

    A checkpoint is complete when its ``trainer_state.json`` (written last by the trainer) reads as a
    JSON object. One without it, or with a torn one (a kill during the save left it empty), is
    skipped with a warning naming it, so a resume falls back to the previous checkpoint instead of
    failing on every rerun.
    """
    found: dict[int, Path] = {}
    root = Path(state_dir)
    if root.is_dir():
        for child in root.iterdir():
            match = _TRAINER_CKPT.match(child.name)
            if not match:
                continue
            state = child / "trainer_state.json"
            if not state.exists():
                continue
            try:
                complete = isinstance(json.loads(state.read_text()), dict)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                complete = False
            if complete:
                found[int(match.group(1))] = child
            else:
                log.warning("%s: unreadable trainer_state.json, skipping this partial checkpoint", child)
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
