"""Issue 23: a full disk says "no space left on device" and where, not torch's inline_container.cc."""

from __future__ import annotations

import errno
import shutil
from collections import namedtuple
from types import SimpleNamespace

import pytest

import rlpipe.train.run as run_module
from rlpipe.tracking.io import disk_full_error

Usage = namedtuple("Usage", "total used free")
TORCH_MESSAGE = (
    "[enforce fail at inline_container.cc:858] . PytorchStreamWriter failed writing file data/3: "
    "file write failed"
)


def fake_method(exc: BaseException):
    def train(spec, paths):
        raise exc

    return SimpleNamespace(method=SimpleNamespace(train=train))


def paths(tmp_path):
    return {"state_dir": str(tmp_path / "state"), "checkpoints": str(tmp_path / "ckpt")}


def test_torch_write_failure_on_a_full_disk_names_the_disk(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(run_module, "build_spec", lambda run: fake_method(RuntimeError(TORCH_MESSAGE)))
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10 * 2**30, 10 * 2**30, 2**20))
    with pytest.raises(
        OSError, match=r"no space left on device under .*state \(1 MiB free of 10\.0 GiB\)"
    ) as info:
        run_module.run_training({}, paths(tmp_path))
    assert info.value.errno == errno.ENOSPC and "rerun the same command" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_other_errors_and_write_failures_with_free_space_pass_through(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10 * 2**30, 2**30, 9 * 2**30))
    for exc in (RuntimeError(TORCH_MESSAGE), RuntimeError("CUDA out of memory"), ValueError("bad")):
        monkeypatch.setattr(run_module, "build_spec", lambda run, exc=exc: fake_method(exc))
        with pytest.raises(type(exc)) as info:
            run_module.run_training({}, paths(tmp_path))
        assert info.value is exc
    enospc = OSError(errno.ENOSPC, "No space left on device")
    assert disk_full_error(enospc, [tmp_path]).errno == errno.ENOSPC  # errno alone says it


def test_the_warm_up_names_a_full_disk_too(model_dir, tmp_path, monkeypatch) -> None:
    """The SFT warm-up runs outside run_training: its full disk must read the same way."""
    from trl import SFTTrainer

    from rlpipe.data.tasks import generate
    from rlpipe.train.sft import train_sft

    def full(self, *args, **kwargs):
        raise RuntimeError(TORCH_MESSAGE)

    monkeypatch.setattr(SFTTrainer, "train", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10 * 2**30, 10 * 2**30, 2**20))
    with pytest.raises(OSError, match=r"no space left on device under .*warm-state") as info:
        train_sft(
            model_dir, generate("addition", "train", 4, 0), tmp_path / "warm", steps=2, batch_size=2,
            learning_rate=1e-3, seed=0, work_dir=tmp_path / "warm-state", gradient_checkpointing=False,
        )  # fmt: skip
    assert info.value.errno == errno.ENOSPC and not (tmp_path / "warm").exists()
