"""code_hash: a rule's code param changes exactly when its layer's code, or code beneath it, changes."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from rlpipe.tracking import provenance
from rlpipe.tracking.provenance import LAYERS, code_hash

ROOT = Path(__file__).resolve().parents[2]


def test_layers_are_the_import_contract() -> None:
    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contract if c["type"] == "layers")["layers"]
    assert tuple(layers) == LAYERS


@pytest.fixture
def package(tmp_path: Path) -> Path:
    copy = tmp_path / "rlpipe"
    shutil.copytree(Path(provenance.__file__).resolve().parents[1], copy)
    return copy


def hashes(root: Path) -> dict[str, str]:
    code_hash.cache_clear()
    names = [m.strip() for group in LAYERS for m in group.split("|")]
    return {name: code_hash(name, root) for name in names}


def test_a_change_reaches_its_layer_and_those_above_only(package: Path) -> None:
    before = hashes(package)
    assert before == hashes(package)  # stable
    scoring = package / "eval" / "scoring.py"
    scoring.write_text(scoring.read_text() + "\n# changed\n")
    after = hashes(package)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"config", "analysis", "train", "runtime", "eval"}


def test_new_file_in_the_bottom_layer_changes_all_but_its_sibling(package: Path) -> None:
    before = hashes(package)
    (package / "tracking" / "extra.py").write_text("X = 1\n")
    after = hashes(package)
    assert {name for name in before if before[name] != after[name]} == set(before) - {"resources"}


def test_unknown_layer_is_named() -> None:
    with pytest.raises(ValueError, match="unknown rlpipe layer 'workflow'"):
        code_hash("workflow")
