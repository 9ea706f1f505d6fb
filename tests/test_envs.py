"""envs/*.yaml: each rule's conda environment holds what its script imports, at pyproject's versions.

The environments cannot be built offline, so this checks them statically: for every rule with
``conda:`` and ``script:``, the third-party modules imported by the script and, transitively, by the
rlpipe modules it imports (function-level imports included, so lazily imported libraries count)
must come from a package the environment lists; every package listed must carry exactly the
version specifier of pyproject.toml. Imports guarded by ``except ImportError`` (or broader) are
optional, and so are pyproject's optional extras (vllm). A package counts as provided when a listed
package requires it (as installed here: pip resolves the same requirements when it builds the
environment).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
RULE = re.compile(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", re.S | re.M)
CONDA = re.compile(r'conda:\s*\n\s*"\.\./envs/([\w.-]+\.yaml)"')
SCRIPT = re.compile(r'script:\s*\n\s*"\.\./(workflow/scripts/[\w.-]+\.py)"')
#: provided by the Snakemake that runs the job (its sys.path is appended to every script's)
PROVIDED = {"snakemake", "rlpipe"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """True inside a ``try:`` body whose handlers catch ImportError (or anything broader)."""
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.Try) and child in parent.body:
            caught = [ast.unparse(h.type) if h.type is not None else "BaseException" for h in parent.handlers]
            if any(re.search(r"ImportError|ModuleNotFoundError|Exception", c) for c in caught):
                return True
        child, parent = parent, parents.get(parent)
    return False


def _imports(path: Path) -> set[str]:
    """Absolute module names imported anywhere in ``path`` (not the optional ones)."""
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if _optional(node, parents):
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # maybe submodules
    return found


def _rlpipe_file(module: str) -> Path | None:
    base = SRC.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def third_party_imports(script: Path) -> set[str]:
    """Top-level third-party modules imported by ``script`` and the rlpipe modules it reaches."""
    seen: set[Path] = set()
    todo, found = [script], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imports(path):
            top = module.split(".")[0]
            if top == "rlpipe":
                parts = module.split(".")
                for i in range(1, len(parts) + 1):  # packages' __init__ run too
                    if (file := _rlpipe_file(".".join(parts[:i]))) is not None:
                        todo.append(file)
            elif top not in sys.stdlib_module_names and top not in PROVIDED:
                found.add(top)
    return found


def _env_packages(env_file: Path) -> dict[str, str]:
    """Package name (normalised) -> version specifier, conda and pip entries alike."""
    env = yaml.safe_load(env_file.read_text())
    packages: dict[str, str] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                req = Requirement(line)
                packages[_norm(req.name)] = str(req.specifier)
        else:
            name, _, version = dep.partition(" ")
            packages[_norm(name)] = version.strip()
    return packages


def _rules() -> list[tuple[str, str, str]]:
    rules = []
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for name, body in RULE.findall(smk.read_text()):
            conda, script = CONDA.search(body), SCRIPT.search(body)
            assert conda and script, f"{smk.name}: rule {name} needs conda: and script:"
            rules.append((name, conda.group(1), script.group(1)))
    return rules


def _with_requirements(packages: set[str]) -> set[str]:
    """``packages`` and everything they require, transitively, from the installed metadata."""
    done: set[str] = set()
    todo = list(packages)
    while todo:
        name = todo.pop()
        if name in done:
            continue
        done.add(name)
        try:
            requires = importlib.metadata.distribution(name).requires or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_norm(req.name))
    return done


PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
#: pyproject's optional extras (vllm): modules of theirs are optional in an environment too
EXTRAS = {
    _norm(Requirement(r).name)
    for group, reqs in PYPROJECT["optional-dependencies"].items()
    if group != "dev"
    for r in reqs
}
PINNED = {_norm(Requirement(r).name): str(Requirement(r).specifier) for r in PYPROJECT["dependencies"]}
DISTRIBUTIONS = importlib.metadata.packages_distributions()


@pytest.mark.parametrize(("rule", "env", "script"), _rules(), ids=lambda v: str(v))
def test_rule_env_has_what_its_script_imports(rule, env, script):
    provided = _with_requirements(set(_env_packages(ROOT / "envs" / env)))
    missing = {}
    for module in sorted(third_party_imports(ROOT / script)):
        dists = {_norm(d) for d in DISTRIBUTIONS.get(module, [module])}
        if not dists & (provided | EXTRAS):
            missing[module] = sorted(dists)
    assert not missing, f"rule {rule}: envs/{env} lacks the package of {missing}"


@pytest.mark.parametrize("env", sorted(p.name for p in (ROOT / "envs").glob("*.yaml")))
def test_env_versions_are_pyprojects(env):
    packages = _env_packages(ROOT / "envs" / env)
    assert SpecifierSet(PYPROJECT["requires-python"]).contains(packages["python"].lstrip("="))
    shared = set(packages) & set(PINNED)
    differ = {name: (packages[name], PINNED[name]) for name in shared if packages[name] != PINNED[name]}
    assert not differ, f"envs/{env}: (env, pyproject) specifiers differ: {differ}"
    assert packages.get("torch", "==2.13.0") == "==2.13.0"
    # rlpipe itself is not installed into the environment (see the file's header)
    lines = (ROOT / "envs" / env).read_text().splitlines()
    assert not any(line.strip().lstrip("- ").startswith("-e") for line in lines)
