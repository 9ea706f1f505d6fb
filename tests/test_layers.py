"""The package's layering (pyproject's [tool.importlinter] contract) holds: imports point down only.

``lint-imports`` builds the import graph of ``rlpipe`` (function-level imports included, typing-only
ones not) and checks it against the layers contract; a broken contract prints the offending chain.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rlpipe.train.methods import METHODS

ROOT = Path(__file__).resolve().parents[1]


def test_the_layers_contract_is_kept() -> None:
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is not installed: pip install -e '.[dev]' (import-linter)")
    # the package this checkout holds, whichever rlpipe is installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [exe, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_no_method_is_chosen_by_name_outside_the_registry() -> None:
    """Only rlpipe.train.methods may branch on a training method's name (``method == "ppo"``)."""
    names = "|".join(METHODS)
    branch = re.compile(
        rf"""["']method["']\]?\)?\s*[!=]=|\bmethod\s*[!=]=\s*["']({names})["']|[!=]=\s*["']({names})["']"""
    )
    files = [
        ROOT / "Snakefile",
        *ROOT.glob("rules/*.smk"),
        *ROOT.glob("workflow/**/*.*"),
        *ROOT.glob("src/**/*.py"),
    ]
    registry = ROOT / "src" / "rlpipe" / "train" / "methods"
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in files
        if path.is_file() and registry not in path.parents
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if branch.search(line)
    ]
    assert not hits, "\n".join(hits)
