"""Issue 23: manifests catch what size and mtime cannot (altered bytes), torn and stray files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from damage import alter_in_place

from rlpipe.tracking.manifest import (
    MANIFEST,
    ManifestError,
    check_outputs,
    copy_verified,
    is_verified,
    sidecar,
    verify_manifest,
    write_manifest,
    write_sidecar,
)


def artifact(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 64)
    (root / "sub").mkdir()
    (root / "sub" / "critic.pt").write_bytes(b"critic" * 100)
    write_manifest(root, step=3)
    return root


def test_an_altered_byte_with_the_same_size_and_mtime_is_caught(tmp_path) -> None:
    root = artifact(tmp_path / "step_3")
    assert verify_manifest(root)["step"] == 3
    alter_in_place(root / "adapter_model.safetensors")
    assert is_verified(root, hashes=False)  # what a size/mtime check would conclude
    with pytest.raises(ManifestError, match=r"adapter_model.safetensors: content differs"):
        verify_manifest(root)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda r: (r / "sub" / "critic.pt").write_bytes(b"crit"),
            r"critic.pt: 4 bytes, the manifest says 600",
        ),
        (lambda r: (r / "sub" / "critic.pt").unlink(), r"critic.pt: listed in the manifest but missing"),
        (lambda r: (r / "extra.safetensors").write_bytes(b"x"), r"extra.safetensors: present but not in"),
        (lambda r: (r / MANIFEST).unlink(), r"no manifest.json: the artifact was never completed"),
        (lambda r: (r / MANIFEST).write_text('{"files": '), r"manifest.json: unreadable manifest"),
    ],
)
def test_torn_missing_stray_and_unmanifested_files_are_named(tmp_path, damage, message) -> None:
    root = artifact(tmp_path / "step_3")
    damage(root)
    with pytest.raises(ManifestError, match=message):
        verify_manifest(root)


def test_snakemakes_timestamp_file_is_not_a_stray_file(tmp_path) -> None:
    root = artifact(tmp_path / "warmup")
    (root / ".snakemake_timestamp").touch()
    verify_manifest(root)


def test_a_published_copy_shares_no_bytes_and_a_corrupted_source_publishes_nothing(tmp_path) -> None:
    src = artifact(tmp_path / "exported" / "step_3")
    dst = tmp_path / "checkpoints" / "step_3"
    copy_verified(src, dst)
    verify_manifest(dst)
    for name in ("adapter_model.safetensors", "sub/critic.pt"):
        assert (src / name).stat().st_ino != (dst / name).stat().st_ino  # a copy, never a hard link
    alter_in_place(dst / "adapter_model.safetensors")
    verify_manifest(src)  # the training-side copy is untouched
    shutil.rmtree(dst)
    alter_in_place(src / "sub" / "critic.pt")
    with pytest.raises(ManifestError, match="critic.pt: content differs"):
        copy_verified(src, dst)
    assert not dst.exists() and not list(dst.parent.iterdir())  # no partial copy left behind


def test_checksum_files_are_sha256sum_compatible_and_a_mismatch_sets_the_outputs_aside(tmp_path) -> None:
    scores, summary = tmp_path / "scores.jsonl", tmp_path / "summary.csv"
    scores.write_text('{"score": 1.0}\n')
    summary.write_text("task,score\nt,1.0\n")
    write_sidecar(sidecar(scores), [scores, summary])
    assert sidecar(scores) == tmp_path / "scores.sha256"
    if shutil.which("sha256sum"):
        done = subprocess.run(
            ["sha256sum", "-c", "scores.sha256"], cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
    check_outputs(sidecar(scores), only=["summary.csv"])
    scores.write_text('{"score": 0.0}\n')  # same size, other content
    check_outputs(sidecar(scores), only=["summary.csv"])  # a reader of the summary alone is not concerned
    with pytest.raises(
        ManifestError, match=r"scores.jsonl: content differs .* rerun the same snakemake command"
    ):
        check_outputs(sidecar(scores))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "scores.jsonl.corrupt",
        "scores.sha256.corrupt",
        "summary.csv.corrupt",
    ]  # all missing now: Snakemake reruns the job that makes them


def test_outputs_without_their_checksum_file_were_never_completed(tmp_path) -> None:
    (tmp_path / "completions.jsonl").write_text("{}\n")
    with pytest.raises(ManifestError, match="completions.sha256: no checksum file"):
        check_outputs(sidecar(tmp_path / "completions.jsonl"))
