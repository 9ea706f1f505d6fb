"""Issue 23: the save transaction and its recovery, at each point a kill can interrupt it.

``commit_checkpoint`` stages, manifests, renames, exports, publishes and then drops older
checkpoints; ``recover_state`` runs at every start and must leave a consistent state whatever step
of that sequence a kill stopped. These tests build the states a kill leaves (the trainers' own
saves are exercised end to end by test_resume.py and the workflow fault-injection test).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from rlpipe.tracking.manifest import is_verified, verify_manifest
from rlpipe.train.checkpoints import (
    EXPORTED,
    STAGING,
    commit_checkpoint,
    finish_state,
    finished_step,
    latest_trainer_checkpoint,
    recover_state,
    staging_dir,
    trainer_checkpoints,
)

SCHEDULE = [2, 4, 6]


def stage(state: Path, step: int) -> Path:
    """A trainer's save of ``step`` in the staging area (model, optimizer, RNG, trainer state)."""
    staged = staging_dir(state) / f"checkpoint-{step}"
    staged.mkdir(parents=True)
    (staged / "model.safetensors").write_bytes(step.to_bytes(2, "little") * 500)
    (staged / "optimizer.pt").write_bytes(b"opt" * 300)
    (staged / "rng_state.pth").write_bytes(b"rng")
    (staged / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return staged


def save(state: Path, out: Path, step: int, tokenizer: Any) -> Path:
    return commit_checkpoint(
        stage(state, step), state, step, export_to=out if step in SCHEDULE else None, tokenizer=tokenizer
    )


def published(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir()) if out.is_dir() else []


@pytest.fixture(scope="module")
def tokenizer(model_dir: str) -> Any:
    """The tiny model's real tokenizer: export saves it beside the weights."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "state", tmp_path / "checkpoints"


def test_a_commit_publishes_verified_copies_and_keeps_only_the_newest_checkpoint(dirs, tokenizer) -> None:
    state, out = dirs
    for step in (2, 3, 4):  # 3: a save forced by a stop signal, for resuming only
        save(state, out, step, tokenizer)
    assert list(trainer_checkpoints(state)) == [4]
    assert published(out) == ["step_2", "step_4"]
    for step in ("step_2", "step_4"):
        manifest = verify_manifest(out / step)
        files = set(manifest["files"])
        assert {"model.safetensors", "tokenizer.json"} <= files  # the model and its tokenizer ...
        assert not files & {"optimizer.pt", "rng_state.pth", "trainer_state.json"}  # ... no training state
        assert verify_manifest(state / EXPORTED / step)["files"] == manifest["files"]
        assert (out / step / "model.safetensors").stat().st_ino != (
            state / EXPORTED / step / "model.safetensors"
        ).stat().st_ino
    assert not staging_dir(state).exists()


def test_a_kill_during_the_save_leaves_the_previous_checkpoint(dirs, tokenizer, caplog) -> None:
    state, out = dirs
    save(state, out, 2, tokenizer)
    stage(state, 4)  # killed before the manifest: the staging area holds a partial save
    torn = state / "checkpoint-4"  # an older layout's partial save under the final name
    shutil.copytree(staging_dir(state) / "checkpoint-4", torn)
    (torn / "trainer_state.json").write_text("")
    with caplog.at_level(logging.WARNING):
        resume = recover_state(state, out_dir=out, tokenizer=tokenizer, schedule=SCHEDULE)
    assert resume == state / "checkpoint-2"
    assert "checkpoint-4: no manifest.json" in caplog.text
    assert sorted(p.name for p in state.iterdir()) == ["checkpoint-2", EXPORTED]


def test_a_kill_between_commit_and_export_is_finished_on_the_next_start(dirs, tokenizer) -> None:
    state, out = dirs
    save(state, out, 2, tokenizer)
    commit_checkpoint(stage(state, 4), state, 4)  # committed; killed before the export
    shutil.rmtree(out)  # Snakemake deletes the failed job's outputs
    resume = recover_state(state, out_dir=out, tokenizer=tokenizer, schedule=SCHEDULE)
    assert resume == state / "checkpoint-4"
    assert published(out) == ["step_2", "step_4"] and is_verified(out / "step_4")
    assert list(trainer_checkpoints(state)) == [4]


def test_a_kill_before_older_checkpoints_were_dropped_leaves_only_the_newest(dirs, tokenizer) -> None:
    state, out = dirs
    save(state, out, 2, tokenizer)
    save(state, out, 4, tokenizer)
    shutil.copytree(state / "checkpoint-4", state / "checkpoint-2")  # as if never deleted
    leftover = state / ".checkpoint-6.x1y2.tmp"  # an atomic_path temp dir a kill left
    leftover.mkdir()
    recover_state(state, out_dir=out, tokenizer=tokenizer, schedule=SCHEDULE)
    assert sorted(p.name for p in state.iterdir()) == ["checkpoint-4", EXPORTED]


def test_a_lost_export_before_the_resume_point_makes_training_start_again(dirs, tokenizer, caplog) -> None:
    state, out = dirs
    for step in (2, 4, 5):
        save(state, out, step, tokenizer)
    shutil.rmtree(out)
    with (state / EXPORTED / "step_2" / "model.safetensors").open("r+b") as fh:
        fh.write(b"\xff\xff")  # damaged in place: the export no longer verifies
    with caplog.at_level(logging.WARNING):
        resume = recover_state(state, out_dir=out, tokenizer=tokenizer, schedule=SCHEDULE)
    assert resume is None and latest_trainer_checkpoint(state) is None  # from scratch
    assert "discarding exported" in caplog.text and "export of step 2 is lost" in caplog.text
    assert published(out) == []  # step 4 is trained (and published) again, identically


def test_a_damaged_published_copy_is_replaced_from_the_verified_export(dirs, tokenizer) -> None:
    state, out = dirs
    save(state, out, 2, tokenizer)
    save(state, out, 4, tokenizer)
    (out / "step_2" / "model.safetensors").write_bytes(b"truncated")
    resume = recover_state(state, out_dir=out, tokenizer=tokenizer, schedule=SCHEDULE)
    assert resume == state / "checkpoint-4"
    assert is_verified(out / "step_2") and published(out) == ["step_2", "step_4"]


def test_saving_the_same_step_again_replaces_it(dirs, tokenizer) -> None:
    state, out = dirs
    save(state, out, 2, tokenizer)
    save(state, out, 2, tokenizer)  # a resumed run that stops where it began
    assert list(trainer_checkpoints(state)) == [2] and is_verified(out / "step_2")
    assert not (state / STAGING).exists()


def test_a_finished_run_keeps_its_exports_but_not_its_resumable_state(dirs, tokenizer) -> None:
    state, out = dirs
    for step in (2, 4, 6):
        save(state, out, step, tokenizer)
    finish_state(state)
    assert finished_step(state) == 6 and latest_trainer_checkpoint(state) is None
    assert json.loads((state / "finished.json").read_text())["trainer_state"] == {"global_step": 6}
    shutil.rmtree(out)  # a rerun of the train job: Snakemake deleted its outputs
    assert recover_state(state, out_dir=out, tokenizer=tokenizer, schedule=SCHEDULE) is None
    assert finished_step(state) == 6 and published(out) == ["step_2", "step_4", "step_6"]
    (state / EXPORTED / "step_4" / "model.safetensors").write_bytes(b"torn")
    recover_state(state, out_dir=out, tokenizer=tokenizer, schedule=SCHEDULE)
    assert finished_step(state) is None  # step 4 can only be rebuilt by training again, from scratch


def test_an_export_does_not_depend_on_what_the_tokenizer_encoded_before(model_dir, tmp_path) -> None:
    """A step exported by a recovery (fresh tokenizer) equals the one exported during training (a
    tokenizer that padded batches): the fault campaign found their tokenizer.json differing."""
    from transformers import AutoTokenizer

    from rlpipe.train.checkpoints import save_tokenizer

    used = AutoTokenizer.from_pretrained(model_dir)
    used.padding_side = "left"
    used(["1+1=", "12+345="], padding=True, truncation=True, max_length=8)
    save_tokenizer(used, tmp_path / "during")
    save_tokenizer(AutoTokenizer.from_pretrained(model_dir), tmp_path / "recovered")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "during" / name).read_bytes() == (tmp_path / "recovered" / name).read_bytes(), name
    encoded = used(["1+1=", "12+345="], padding=True)  # still pads after the save
    assert len(set(map(len, encoded.input_ids))) == 1
