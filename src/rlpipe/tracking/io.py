"""Atomic outputs: nothing half-written may ever look complete to Snakemake or to a resume.

Files and directories are written under a temporary sibling name and renamed into place; a
rename within one filesystem is atomic on POSIX.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success rename it to ``path``, on error delete it.

    With ``directory=True`` the temporary path is a fresh empty directory and an existing
    ``path`` directory is replaced.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory:
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        else:
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> None:
    """Write one JSON object per line atomically."""
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True) + "\n")


def iter_jsonl(
    path: str | os.PathLike[str], *, noun: str = "line", appended: bool = False
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, line, object) of every non-empty line of a JSON-lines file, streamed.

    A line that is not a JSON object is a ``ValueError`` naming the file and line (``noun`` says
    what a line is, for the message). ``appended``: the file is one rlpipe appends to, where a crash
    or a full disk leaves a half-written *last* line; that one is dropped with a warning instead.
    """
    pending: tuple[int, str] | None = None
    with open(path) as fh:
        numbered = ((n, line.rstrip("\n")) for n, line in enumerate(fh, 1) if line.strip())
        for n, line in numbered:
            if pending is not None:
                yield _json_object(path, *pending, noun)
            pending = (n, line)
    if pending is None:
        return
    try:
        yield _json_object(path, *pending, noun)
    except ValueError:
        if not appended:
            raise
        log.warning("%s:%d: dropping a torn last line (a crash mid-write): %.60r", path, *pending)


def _json_object(
    path: str | os.PathLike[str], n: int, line: str, noun: str
) -> tuple[int, str, dict[str, Any]]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{n}: not a JSON {noun} ({exc.msg})") from None
    if not isinstance(row, dict):
        raise ValueError(f"{path}:{n}: a {noun} must be a JSON object, got {type(row).__name__}")
    return n, line, row


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSON-lines file of objects; the error names the file and line of a malformed row."""
    return [row for _, _, row in iter_jsonl(path)]


#: Below this much free space a failed write is taken for a full disk (torch's zip writer reports one
#: as ``RuntimeError ... inline_container.cc ... file write failed``, without errno).
DISK_FULL_BYTES = 64 * 2**20


def disk_full_error(exc: BaseException, where: Iterable[str | os.PathLike[str]]) -> OSError | None:
    """An ``OSError(ENOSPC)`` that says "no space left on device" and where, if ``exc`` is one.

    ``exc`` is a full disk when it carries errno ENOSPC, or when it is a failed write (torch's
    serialiser or any ``OSError``) while a filesystem holding ``where`` has less than
    :data:`DISK_FULL_BYTES` free. ``None`` otherwise: the caller re-raises ``exc`` unchanged.
    """
    text = str(exc)
    enospc = getattr(exc, "errno", None) == errno.ENOSPC or "No space left on device" in text
    write_failed = isinstance(exc, OSError) or "inline_container" in text or "write failed" in text
    for path in where:
        target = Path(path)
        while not target.exists() and target != target.parent:
            target = target.parent
        try:
            usage = shutil.disk_usage(target)
        except OSError:
            continue
        if enospc or (write_failed and usage.free < DISK_FULL_BYTES):
            return OSError(
                errno.ENOSPC,
                f"no space left on device under {path} ({usage.free / 2**20:.0f} MiB free of "
                f"{usage.total / 2**30:.1f} GiB): free some space and rerun the same command "
                f"(training resumes from its last complete checkpoint); the write failed with: {text[:300]}",
            )
    return None


@contextmanager
def disk_full_reported(where: Iterable[str | os.PathLike[str]]) -> Iterator[None]:
    """Re-raise a write failure on a full disk under ``where`` as :func:`disk_full_error`'s
    ``OSError(ENOSPC)``; any other error passes unchanged."""
    where = list(where)
    try:
        yield
    except (OSError, RuntimeError) as exc:
        full = disk_full_error(exc, where)
        if full is None:
            raise
        raise full from exc
