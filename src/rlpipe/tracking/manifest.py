"""Content manifests: what a published artifact holds, written last, so that it can be verified.

A crash can leave a file torn, a disk can flip bits, a person can edit the wrong file: nothing a
file's existence, size or modification time reveals. Every checkpoint rlpipe publishes carries a
``manifest.json`` (the size and SHA-256 of each of its files), and every evaluation output a
``<name>.sha256`` sidecar in ``sha256sum`` format (``sha256sum -c`` checks it by hand). Both are
written after the data, so an artifact without its manifest is incomplete, and a reader verifies
before it trusts: a mismatch raises :class:`ManifestError` naming the file.

Files and the manifest are fsynced before the manifest is renamed into place, so a manifest on
disk never vouches for data still in the page cache of a node that died.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rlpipe.tracking.io import atomic_path

MANIFEST = "manifest.json"
#: Files a manifest neither lists nor objects to: Snakemake marks a finished directory output with it.
UNLISTED = frozenset({MANIFEST, ".snakemake_timestamp"})
MANIFEST_FORMAT = 1
SIDECAR_SUFFIX = ".sha256"


class ManifestError(ValueError):
    """An artifact does not match its manifest (or has none): names the path and what differs."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = Path(path), problem


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex SHA-256 of a file's bytes, read in chunks (model files are GBs)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file's (or a directory's entries') data to the device."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name not in UNLISTED)


def copy_checked(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], sha256: str | None = None
) -> dict[str, Any]:
    """Copy one file, hashing the bytes on the way; return its manifest entry.

    With ``sha256`` (the source's recorded digest) a source that no longer matches raises
    :class:`ManifestError`: a copy is also a verification, in one read.
    """
    digest = hashlib.sha256()
    size = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(1 << 22):
            digest.update(chunk)
            fout.write(chunk)
            size += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst)
    hexdigest = digest.hexdigest()
    if sha256 is not None and hexdigest != sha256:
        raise ManifestError(src, "content differs from its manifest's SHA-256 (altered or corrupted)")
    return {"size": size, "sha256": hexdigest}


def write_manifest(
    root: str | os.PathLike[str], *, known: dict[str, dict[str, Any]] | None = None, **meta: Any
) -> dict[str, Any]:
    """Hash every file under ``root``, fsync them, then write ``root/manifest.json`` atomically.

    ``known`` holds entries already computed (by :func:`copy_checked`) for some of the files, which
    are then not read again. ``meta`` (e.g. the step) is recorded beside the files.
    """
    root = Path(root)
    known = known or {}
    files = {}
    for path in _files(root):
        name = path.relative_to(root).as_posix()
        entry = known.get(name)
        if entry is None or entry["size"] != path.stat().st_size:
            fsync_path(path)
            entry = {"size": path.stat().st_size, "sha256": sha256_file(path)}
        files[name] = entry
    manifest = {"format": MANIFEST_FORMAT, **meta, "files": files}
    with atomic_path(root / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        fsync_path(tmp)
    for directory in {root, *((root / name).parent for name in files)}:  # their entries too
        fsync_path(directory)
    return manifest


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of ``root``; :class:`ManifestError` when it is missing or unreadable."""
    path = Path(root) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(root, f"no {MANIFEST}: the artifact was never completed") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(path, f"unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ManifestError(path, "not an rlpipe manifest (no 'files' mapping)")
    return manifest


def verify_manifest(root: str | os.PathLike[str], *, hashes: bool = True) -> dict[str, Any]:
    """Check every file of ``root`` against its manifest; return the manifest.

    Raises :class:`ManifestError` naming the first file that is missing, of another size or (with
    ``hashes``) of other content, or that is present but not listed (a stray file could change what
    ``from_pretrained`` loads). ``hashes=False`` checks names and sizes only: cheap, for listings.
    """
    root = Path(root)
    manifest = read_manifest(root)
    listed = manifest["files"]
    for name, entry in sorted(listed.items()):
        path = root / name
        if not path.is_file():
            raise ManifestError(path, "listed in the manifest but missing")
        size = path.stat().st_size
        if size != entry["size"]:
            raise ManifestError(path, f"{size} bytes, the manifest says {entry['size']} (truncated?)")
        if hashes and sha256_file(path) != entry["sha256"]:
            raise ManifestError(path, "content differs from its manifest's SHA-256 (altered or corrupted)")
    extra = [p.relative_to(root).as_posix() for p in _files(root)]
    extra = sorted(set(extra) - set(listed))
    if extra:
        raise ManifestError(root / extra[0], "present but not in the manifest")
    return manifest


def copy_verified(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> dict[str, Any]:
    """Publish a copy of the manifested directory ``src`` at ``dst`` atomically, verifying as it copies.

    Real copies, never hard links: a published file must not share its bytes with a file training
    may rewrite or a person may edit. A ``src`` that does not match its manifest raises
    :class:`ManifestError` and publishes nothing.
    """
    src, dst = Path(src), Path(dst)
    manifest = verify_manifest(src, hashes=False)
    with atomic_path(dst, directory=True) as tmp:
        for name, entry in sorted(manifest["files"].items()):
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            copy_checked(src / name, tmp / name, entry["sha256"])
        copy_checked(src / MANIFEST, tmp / MANIFEST)
        fsync_path(tmp)
    return manifest


def is_verified(root: str | os.PathLike[str], *, hashes: bool = True) -> bool:
    """Whether ``root`` matches its manifest (see :func:`verify_manifest`)."""
    try:
        verify_manifest(root, hashes=hashes)
    except ManifestError:
        return False
    return True


def sidecar(path: str | os.PathLike[str]) -> Path:
    """Where the checksum of an evaluation output lives: ``<stem>.sha256`` beside it."""
    path = Path(path)
    return path.with_name(path.name.split(".")[0] + SIDECAR_SUFFIX)


def write_sidecar(out: str | os.PathLike[str], files: Iterable[str | os.PathLike[str]]) -> None:
    """Write the ``sha256sum``-format checksums of ``files`` (siblings of ``out``) to ``out``."""
    out = Path(out)
    lines = []
    for file in files:
        file = Path(file)
        if file.parent.resolve() != out.parent.resolve():
            raise ValueError(f"{file}: a checksum file lists siblings only (not in {out.parent})")
        fsync_path(file)
        lines.append(f"{sha256_file(file)}  {file.name}\n")
    with atomic_path(out) as tmp:
        tmp.write_text("".join(lines))
        fsync_path(tmp)


def verify_sidecar(out: str | os.PathLike[str], *, only: Iterable[str] | None = None) -> None:
    """Check the files a checksum file lists (or just the names in ``only``); :class:`ManifestError`
    names the first missing or altered one."""
    out = Path(out)
    try:
        text = out.read_text()
    except FileNotFoundError:
        raise ManifestError(out, "no checksum file: the outputs beside it were never completed") from None
    wanted = set(only) if only is not None else None
    listed = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise ManifestError(out, f"line {lineno} is not '<sha256>  <file>'")
        listed[name] = digest
    for name in sorted(wanted if wanted is not None else listed):
        path = out.parent / name
        if name not in listed:
            raise ManifestError(path, f"not listed in {out.name}")
        if not path.is_file():
            raise ManifestError(path, f"missing (listed in {out.name})")
        if sha256_file(path) != listed[name]:
            raise ManifestError(
                path, f"content differs from its checksum in {out.name} (altered or corrupted)"
            )


#: What a failed check does with the outputs it distrusts: they are renamed with this suffix (kept
#: for inspection), so that Snakemake sees them missing and the same command rebuilds them.
SET_ASIDE_SUFFIX = ".corrupt"


def check_outputs(checksums: str | os.PathLike[str], only: Iterable[str] | None = None) -> None:
    """Verify evaluation outputs against their checksum file before reading them.

    On a mismatch the listed files and the checksum file are set aside (renamed ``*.corrupt``) and
    a :class:`ManifestError` says so: rerunning the same Snakemake command rebuilds them, because
    a job's missing output makes Snakemake run it again.
    """
    checksums = Path(checksums)
    try:
        verify_sidecar(checksums, only=only)
    except ManifestError as exc:
        names = [checksums.name]
        if checksums.is_file():
            names += [line.partition("  ")[2] for line in checksums.read_text().splitlines()]
        for name in dict.fromkeys(names):
            path = checksums.parent / name
            if path.is_file():
                os.replace(path, path.with_name(path.name + SET_ASIDE_SUFFIX))
        raise ManifestError(
            exc.path,
            f"{exc.problem}. The outputs of that job ({', '.join(names)}) were moved aside as "
            f"*{SET_ASIDE_SUFFIX}: rerun the same snakemake command and it rebuilds them",
        ) from None
