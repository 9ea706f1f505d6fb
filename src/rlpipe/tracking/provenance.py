"""Which rlpipe code an output was made by: a hash of a layer's sources and every layer below it.

Why: Snakemake reruns a job when its inputs, params or rule script change, not when the package the
script imports changes, so a results/ folder could hold outputs of older scoring or training code
with nothing saying so. Each rule takes ``code_hash(layer)`` of the layer its script calls as a param;
Snakemake's params trigger then reruns exactly the jobs whose code (or code beneath it) changed.

The layers are the import-linter contract of ``pyproject.toml`` (top to bottom; a test keeps the two
equal): a layer may import only those below it, so its outputs depend on nothing above it.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

# Top to bottom, as in pyproject.toml's [tool.importlinter] layers; a group is "a | b".
LAYERS: tuple[str, ...] = (
    "config",
    "analysis",
    "train",
    "runtime",
    "eval",
    "models",
    "data",
    "rewards",
    "tracking | resources",
)
_ROOT = Path(__file__).resolve().parents[1]  # the rlpipe package


def _modules(group: str) -> list[str]:
    return [name.strip() for name in group.split("|")]


def _sources(root: Path, module: str) -> list[Path]:
    package = root / module
    if package.is_dir():
        return sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)
    single = root / f"{module}.py"
    if not single.exists():
        raise ValueError(f"rlpipe has no module {module!r} (looked for {package} and {single})")
    return [single]


@cache
def code_hash(layer: str, root: Path = _ROOT) -> str:
    """sha256 (16 hex digits) of ``layer``'s sources and those of every layer below it, and the
    package's ``__init__``; comments count (a conservative rerun rather than a stale output).
    """
    names = [m for group in LAYERS for m in _modules(group)]
    if layer not in names:
        raise ValueError(f"unknown rlpipe layer {layer!r}; layers: {', '.join(names)}")
    start = next(i for i, group in enumerate(LAYERS) if layer in _modules(group))
    modules = [layer] + [m for group in LAYERS[start + 1 :] for m in _modules(group)]
    digest = hashlib.sha256()
    for path in [root / "__init__.py"] + [p for m in modules for p in _sources(root, m)]:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
