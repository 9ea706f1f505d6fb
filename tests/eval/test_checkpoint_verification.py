"""Issue 23: evaluation verifies a checkpoint before loading it; a damaged published step is restored
from training's verified export, and without one the error names the file and how to rebuild it."""

from __future__ import annotations

from pathlib import Path

import pytest
from damage import alter_in_place

from rlpipe.eval.run import checkpoint_path
from rlpipe.tracking.manifest import ManifestError, copy_verified, is_verified, write_manifest


def export(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "adapter_model.safetensors").write_bytes(b"\x01\x02" * 4096)
    (root / "adapter_config.json").write_text('{"r": 4}')
    write_manifest(root, step=5)
    return root


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path, Path]:
    backup = tmp_path / "state" / "exported"
    checkpoints = tmp_path / "checkpoints"
    copy_verified(export(backup / "step_5"), checkpoints / "step_5")
    policy = tmp_path / "base"
    policy.mkdir()
    (policy / "config.json").write_text("{}")  # a Hub model: no manifest, loaded as it is
    return policy, checkpoints, backup


def test_an_altered_published_step_is_restored_from_the_export(layout, caplog) -> None:
    policy, checkpoints, backup = layout
    alter_in_place(checkpoints / "step_5" / "adapter_model.safetensors")
    with caplog.at_level("WARNING"):
        path = checkpoint_path(str(policy), str(checkpoints), 5, str(backup))
    assert path == str(checkpoints / "step_5") and is_verified(path)
    assert "content differs" in caplog.text and "restoring it from training's verified export" in caplog.text


def test_without_a_good_export_the_error_names_the_file_and_the_rebuild(layout) -> None:
    policy, checkpoints, backup = layout
    (checkpoints / "step_5" / "adapter_model.safetensors").write_bytes(b"\x01")  # truncated
    alter_in_place(backup / "step_5" / "adapter_config.json")
    with pytest.raises(
        ManifestError, match=r"step_5/adapter_model.safetensors: 1 bytes.*delete .*checkpoints and rerun"
    ):
        checkpoint_path(str(policy), str(checkpoints), 5, str(backup))
    with pytest.raises(ManifestError, match="truncated"):
        checkpoint_path(str(policy), str(checkpoints), 5)  # no backup given


def test_the_base_policy_is_verified_when_it_has_a_manifest(layout) -> None:
    policy, checkpoints, _ = layout
    assert checkpoint_path(str(policy), str(checkpoints), 0) == str(policy)  # no manifest: as it is
    write_manifest(policy)  # a warm-up output
    (policy / "config.json").write_text('{"x": 1}')
    with pytest.raises(ManifestError, match="config.json"):
        checkpoint_path(str(policy), None, 0)
