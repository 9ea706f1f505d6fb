"""Damage files the way the fault-injection tests need: what no size or timestamp check can see."""

from __future__ import annotations

import os
from pathlib import Path


def alter_in_place(path: Path) -> None:
    """Flip the bits of one byte in the middle of ``path``, keeping its size and modification time."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x5A
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
