"""Checkpoint layout: resumable trainer state vs exported evaluation checkpoints.

``state_dir/checkpoint-N`` is the trainer's own resumable checkpoint (weights + optimizer +
scheduler + RNG); only the newest is kept. Snakemake deletes a job's declared outputs before
rerunning it, so everything a resume needs lives outside them: each scheduled save is exported to
``state_dir/exported/step_N`` (only what ``from_pretrained`` or PEFT needs) and published as a
verified copy (never a hard link) at the declared output ``checkpoints/step_N``.

Saving is one transaction (:func:`commit_checkpoint`): the trainer writes into ``state_dir/incoming``,
a ``manifest.json`` with every file's size and SHA-256 is written last and fsynced, one rename
commits the checkpoint, then come the export and the published copy (each with its manifest, each
appearing by one rename), and only then are older checkpoints dropped. A checkpoint counts only if
its manifest verifies. Every start runs :func:`recover_state`, which finishes or undoes whatever a
kill interrupted; a finished run keeps its exports and drops the resumable state (:func:`finish_state`).

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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from rlpipe.tracking.io import atomic_path, iter_jsonl, write_json, write_text
from rlpipe.tracking.manifest import (
    MANIFEST,
    ManifestError,
    copy_checked,
    copy_verified,
    fsync_path,
    is_verified,
    read_manifest,
    verify_manifest,
    write_manifest,
)
from rlpipe.train import distributed as dp

log = logging.getLogger(__name__)

_TRAINER_CKPT = re.compile(r"^checkpoint-(\d+)$")
_EXPORTED_STEP = re.compile(r"^step_(\d+)$")
STAGING = "incoming"
EXPORTED = "exported"
FINISHED = "finished.json"
# Files of a trainer checkpoint that are training state, not the model.
_STATE_FILES = {"optimizer.pt", "scheduler.pt", "trainer_state.json", "training_args.bin", "scaler.pt"}
# ... and those accelerate writes under FSDP: the gathered model state (a second copy of the weights
# model.safetensors or the adapter already hold) and the optimizer state, one per model/optimizer;
# DeepSpeed's (its partitioned state is in global_stepN/, a directory, never exported) are the
# pointer to it and its conversion scripts.
_FSDP_STATE_FILE = re.compile(r"^(pytorch_model_fsdp|optimizer)(_\d+)?\.bin$")
_DEEPSPEED_STATE_FILES = {"latest", "zero_to_fp32.py", "zero_to_torch.py"}


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


def checkpoint_step(ckpt: str | os.PathLike[str]) -> int:
    """The step of a trainer checkpoint directory (``checkpoint-N``); a ValueError names any other."""
    match = _TRAINER_CKPT.match(Path(ckpt).name)
    if match is None:
        raise ValueError(f"{ckpt}: not a trainer checkpoint directory (checkpoint-N)")
    return int(match.group(1))


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
    kept = [
        line
        for _, line, row in iter_jsonl(path, noun="metrics line", appended=True)
        if row.get("step", 0) <= step and SEGMENT_SUMMARY_KEY not in row
    ]
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


def staging_dir(state_dir: str | os.PathLike[str]) -> Path:
    """Where a trainer writes a checkpoint before it is committed (HF's ``output_dir``)."""
    return Path(state_dir) / STAGING


def trainer_checkpoints(state_dir: str | os.PathLike[str], *, hashes: bool = True) -> dict[int, Path]:
    """Committed trainer checkpoints by step: those whose manifest verifies.

    A checkpoint is complete only when its ``manifest.json`` (written last, see
    :func:`commit_checkpoint`) says so and every file matches it. Anything else (a save killed
    midway, a torn or altered file) is skipped with a warning naming it, so a resume falls back to
    the previous checkpoint instead of failing on every rerun. ``hashes=False`` checks names and
    sizes only: for a lookup right after :func:`recover_state` verified the contents.
    """
    found: dict[int, Path] = {}
    root = Path(state_dir)
    if root.is_dir():
        for child in root.iterdir():
            match = _TRAINER_CKPT.match(child.name)
            if not match or not child.is_dir():
                continue
            try:
                verify_manifest(child, hashes=hashes)
            except ManifestError as exc:
                log.warning("skipping checkpoint %s: %s", child, exc.problem)
                continue
            found[int(match.group(1))] = child
    return dict(sorted(found.items()))


def latest_trainer_checkpoint(state_dir: str | os.PathLike[str], *, hashes: bool = True) -> Path | None:
    """The newest committed trainer checkpoint, or None (``hashes``: see :func:`trainer_checkpoints`)."""
    ckpts = trainer_checkpoints(state_dir, hashes=hashes)
    return ckpts[max(ckpts)] if ckpts else None


def commit_checkpoint(
    staged: Path,
    state_dir: str | os.PathLike[str],
    step: int,
    *,
    export_to: str | os.PathLike[str] | None = None,
    tokenizer: Any = None,
) -> Path:
    """Make the trainer checkpoint written at ``staged`` the run's state at ``step``: one transaction.

    1. ``manifest.json`` is written into ``staged`` last (every file hashed and fsynced);
    2. one rename publishes it as ``state_dir/checkpoint-<step>``: the commit point;
    3. with ``export_to`` the model is exported to ``exported/step_<step>`` and published as a copy
       at ``export_to/step_<step>``, each with its own manifest, each appearing by one rename;
    4. older checkpoints (and leftovers of killed saves) are deleted.

    A kill before 2 leaves the previous checkpoint as the state; a kill after 2 is finished by
    :func:`recover_state` on the next start (steps 3-4 are idempotent). Main process only.
    """
    root = Path(state_dir)
    final = root / f"checkpoint-{step}"
    write_manifest(staged, step=step)
    if final.exists():  # a save of the same step again (a resumed run that stops where it began)
        shutil.rmtree(final)
    os.replace(staged, final)
    fsync_path(root)
    if export_to is not None:
        export_step(final, root, Path(export_to), tokenizer)
    _drop_older(root, step)
    return final


def export_step(ckpt: Path, state_dir: Path, out_dir: Path, tokenizer: Any) -> None:
    """Export the model (or adapter) files of a committed checkpoint and publish them.

    ``state_dir/exported/step_N`` (kept across reruns: Snakemake deletes the declared outputs before
    rerunning a job) gets a copy verified against the checkpoint's manifest, the tokenizer and a
    manifest of its own; ``out_dir/step_N`` gets a verified copy of that.
    """
    step = checkpoint_step(ckpt)
    name = f"step_{step}"
    source = read_manifest(ckpt)["files"]
    exported = state_dir / EXPORTED / name
    with atomic_path(exported, directory=True) as tmp:
        known = {}
        for item in sorted(ckpt.iterdir()):
            if item.is_file() and item.name in source and _is_model_file(item.name):
                known[item.name] = copy_checked(item, tmp / item.name, source[item.name]["sha256"])
        save_tokenizer(tokenizer, tmp)
        write_manifest(tmp, known=known, step=step, source=ckpt.name)
    copy_verified(exported, out_dir / name)
    log.info("exported %s -> %s", ckpt.name, out_dir / name)


def save_tokenizer(tokenizer: Any, path: Path) -> None:
    """Save ``tokenizer`` as it was loaded, whatever calls it served before.

    A fast tokenizer's ``tokenizer.json`` records the padding and truncation its last batch call
    switched on. The same step exported during training and by a recovery at a fresh start would
    then differ in bytes (and in manifest); both are switched off first (transformers switches them
    on again per call).
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.no_padding()
        backend.no_truncation()
    tokenizer.save_pretrained(path)


def _is_model_file(name: str) -> bool:
    return (
        name not in _STATE_FILES
        and name != MANIFEST
        and not name.startswith("rng_state")
        and not _FSDP_STATE_FILE.match(name)
        and name not in _DEEPSPEED_STATE_FILES
    )


def _drop_older(root: Path, step: int) -> None:
    """Delete checkpoints older than ``step``, the staging area and temporary leftovers."""
    for child in root.iterdir():
        match = _TRAINER_CKPT.match(child.name)
        if (match and int(match.group(1)) < step) or child.name == STAGING or _is_leftover(child):
            _remove(child)


def _is_leftover(path: Path) -> bool:
    """A temporary file or directory of ``atomic_path`` that a kill left behind."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def finish_state(state_dir: str | os.PathLike[str]) -> None:
    """Record that the run finished, with every scheduled step exported, and drop its resumable
    state (weights, optimizer, RNG): several times the model's size for a full fine-tune, and
    nothing resumes a finished run (the workflow trains a changed run spec from scratch anyway).

    Called by the workflow's training job once training returned; ``finished.json`` keeps the
    final ``trainer_state.json`` for the record.
    """
    root = Path(state_dir)
    final = latest_trainer_checkpoint(root)
    if final is None:
        raise ValueError(f"{root}: no committed checkpoint: the run did not finish")
    state = json.loads((final / "trainer_state.json").read_text())
    write_json(root / FINISHED, {"step": checkpoint_step(final), "trainer_state": state})
    fsync_path(root)
    for child in root.iterdir():
        if _TRAINER_CKPT.match(child.name):
            _remove(child)


def finished_step(state_dir: str | os.PathLike[str]) -> int | None:
    """The step a finished run ended at (:func:`finish_state`), or None while it is not finished."""
    path = Path(state_dir) / FINISHED
    try:
        return int(json.loads(path.read_text())["step"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: unreadable (%s): the run counts as unfinished", path, exc)
        return None


def recover_state(
    state_dir: str | os.PathLike[str],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    tokenizer: Any = None,
    schedule: Iterable[int] = (),
) -> Path | None:
    """Bring ``state_dir`` to a consistent state before (re)training; return the checkpoint to resume.

    Run by the main process at every start, before the trainer looks for a checkpoint:

    - a checkpoint or export that does not verify is removed with a warning naming it (a save that
      was killed midway, a torn or altered file);
    - a committed checkpoint whose scheduled export is missing is exported now (a kill between
      commit and export);
    - a scheduled step before the resume point whose export is lost can only be rebuilt by training
      again: the checkpoints from that step on are dropped, and training resumes before it (from
      scratch when no earlier checkpoint is kept), which with fixed seeds reproduces the same files;
    - every verified export is published to ``out_dir`` (Snakemake deleted the outputs) as a copy;
    - a finished run (:func:`finish_state`) stays finished while all its exports verify.

    Returns None for a finished run or one without a checkpoint (:func:`finished_step` tells which).
    """
    root = Path(state_dir)
    root.mkdir(parents=True, exist_ok=True)
    for child in list(root.iterdir()):
        if child.name == STAGING or _is_leftover(child):
            _remove(child)
    exported = root / EXPORTED
    exports: dict[int, Path] = {}
    if exported.is_dir():
        for child in sorted(exported.iterdir()):
            match = _EXPORTED_STEP.match(child.name)
            if _is_leftover(child) or (match is None and child.is_dir()):
                _remove(child)
                continue
            if match is None:
                continue
            try:
                verify_manifest(child)
            except ManifestError as exc:
                log.warning("discarding exported %s: %s", child, exc.problem)
                _remove(child)
                continue
            exports[int(match.group(1))] = child
    ckpts = trainer_checkpoints(root)
    for child in root.iterdir():  # unverified checkpoints: trainer_checkpoints warned about them
        match = _TRAINER_CKPT.match(child.name)
        if match and int(match.group(1)) not in ckpts:
            _remove(child)
    done = finished_step(root)
    if done is not None and any(s <= done and s not in exports for s in schedule):
        log.warning("%s: the finished run lost an exported step: training it again", root)
        (root / FINISHED).unlink()
        done = None
    newest = max(ckpts, default=0) if done is None else done
    lost = sorted(s for s in schedule if s < newest and s not in exports)
    if lost:
        log.warning(
            "%s: the export of step %d is lost and only training can rebuild it: "
            "dropping checkpoints from step %d on and training again from before it",
            root,
            lost[0],
            lost[0],
        )
        for step in [s for s in ckpts if s >= lost[0]]:
            _remove(ckpts.pop(step))
        newest = max(ckpts, default=0)
    if newest in ckpts and newest in set(schedule) and newest not in exports and out_dir is not None:
        log.info(
            "%s: checkpoint-%d was committed but not exported (a kill in between): exporting", root, newest
        )
        export_step(ckpts[newest], root, Path(out_dir), tokenizer)
        exports[newest] = exported / f"step_{newest}"
    if done is not None:  # a kill inside finish_state left some of the resumable state
        for path in ckpts.values():
            _remove(path)
    elif ckpts:
        _drop_older(root, newest)
    if out_dir is not None:
        for step, path in sorted(exports.items()):
            if step > newest:  # exported by a run whose state was dropped above: rebuilt in training
                continue
            target = Path(out_dir) / path.name
            if not is_verified(target):
                copy_verified(path, target)
    return None if done is not None else ckpts.get(newest)


class CommitCallback(TrainerCallback):
    """Commit every trainer save (HF ``Trainer`` writes it under :func:`staging_dir`); scheduled steps
    are exported and published, a save forced by a stop signal is for resuming only."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        out_dir: str | os.PathLike[str] | None,
        tokenizer: Any,
        schedule: Iterable[int] = (),
    ) -> None:
        self.state_dir, self.tokenizer = Path(state_dir), tokenizer
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.schedule = set(schedule)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        dp.barrier()  # every rank has written its part of the checkpoint
        if state.is_world_process_zero:
            step = state.global_step
            commit_checkpoint(
                staging_dir(self.state_dir) / f"checkpoint-{step}",
                self.state_dir,
                step,
                export_to=self.out_dir if step in self.schedule else None,
                tokenizer=self.tokenizer,
            )
        dp.barrier()
