"""Print the installed dependency closure of ``rlpipe[dev]`` as pip constraints.

Why: pyproject.toml gives ranges (``transformers>=5.20,<6``, ``datasets>=4`` ...), so two installs
made weeks apart can resolve to different releases and behave differently. ``envs/constraints.txt``
records what one fresh install actually resolved, so that any later install can reproduce it with
``pip install -c envs/constraints.txt -e ".[dev]"`` (and the GPU wheel set, bench/gpu_wheels.txt,
is chosen from the same versions).

Unlike ``pip freeze`` this lists only what ``rlpipe[dev]`` needs: it starts from rlpipe's own
requirements (extras: ``dev`` only, never ``vllm``), follows every requirement whose marker holds for
the running interpreter (plus the extras that a requirement itself asks for, e.g. ``pkg[extra]``),
and skips rlpipe itself and anything outside that closure (pip and setuptools appear only if
something in it requires them).

Versions are written without a local label (``torch==2.13.0``, not ``2.13.0+cpu``): a constraint
without one matches any build of that release, so the same file gives the CPU build where the
CPU-only wheel is what pip finds (the developers' machines) and the CUDA build elsewhere.

Usage, after ``pip install -e ".[dev]"`` in a fresh Python 3.11 environment::

    python envs/freeze.py > envs/constraints.txt
"""

from __future__ import annotations

import sys
from collections import deque
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = "rlpipe"
ROOT_EXTRAS = frozenset({"dev"})
DATE = "2026-12-04"

HEADER = f"""\
# Constraints: the installed dependency closure of rlpipe[dev], one release per package.
# Produced by `python envs/freeze.py > envs/constraints.txt` after `pip install -e ".[dev]"`
# in a fresh Python 3.11 environment, on {DATE}.
# Use: pip install -c envs/constraints.txt -e ".[dev]"
# torch==2.13.0 resolves to the CPU build on the developers' machines and to the CUDA build
# elsewhere (the local version label, +cpu, is left out on purpose).
"""


def _applies(req: Requirement, extras: frozenset[str]) -> bool:
    """Whether ``req`` holds for this interpreter when its parent is installed with ``extras``."""
    if req.marker is None:
        return True
    env: dict[str, str] = dict(default_environment())
    # A marker without `extra` is evaluated once; one with `extra` holds if any requested extra
    # (or none, for the plain "" value) satisfies it.
    return any(req.marker.evaluate({**env, "extra": extra}) for extra in ({""} | extras))


def _public_version(dist: metadata.Distribution) -> str:
    """The distribution's version without its local label (``2.13.0+cpu`` -> ``2.13.0``)."""
    return Version(dist.version).public


def closure(root: str = ROOT, root_extras: frozenset[str] = ROOT_EXTRAS) -> dict[str, str]:
    """Map each distribution in the installed closure of ``root[root_extras]`` to its version.

    Keys are the distributions' own ``Name`` metadata (as pip freeze shows them); ``root`` itself
    is left out. Exits with status 1 if a required distribution is not installed.
    """
    found: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, frozenset[str]]] = set()
    queue: deque[tuple[str, frozenset[str]]] = deque([(canonicalize_name(root), root_extras)])
    missing: list[str] = []
    while queue:
        key, extras = queue.popleft()
        if (key, extras) in done:
            continue
        done.add((key, extras))
        try:
            dist = metadata.distribution(key)
        except metadata.PackageNotFoundError:
            missing.append(key)
            continue
        found[key] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            if _applies(req, extras):
                child = canonicalize_name(req.name)
                queue.append((child, frozenset(canonicalize_name(e) for e in req.extras)))
    if missing:
        sys.exit(f"freeze.py: required but not installed: {', '.join(sorted(set(missing)))}")
    found.pop(canonicalize_name(root), None)
    return {dist.metadata["Name"]: _public_version(dist) for dist in found.values()}


def main() -> None:
    """Print the header and one ``name==version`` line per package, sorted case-insensitively."""
    pins = closure()
    sys.stdout.write(HEADER)
    for name in sorted(pins, key=str.lower):
        sys.stdout.write(f"{name}=={pins[name]}\n")


if __name__ == "__main__":
    main()
