"""Regenerate ``cases/guru_math.jsonl``: the ``math`` scorer against the GURU (Reasoning360) math reward.

Reference: LLM360/Reasoning360 at 13158341d2a0dfe5f3bb80e7126ff21de0d16676 (2025-08-21),
``verl/utils/reward_score/naive_dapo.py:compute_score``: the function ``default_compute_score``
(``verl/utils/reward_score/__init__.py``) calls for every ``data_source`` starting with ``math`` (the GURU
``math__*`` tasks) unless ``extra_info["reward_metric"]`` names another. It grades the last ``\\boxed{}``
after ``</think>`` (the whole text when there is none) with the Hendrycks/PRM800K normalisation, a sympy
check and ``prime_math.grader.math_equal``; its ``{"score", "acc"}`` result gives ``score`` (0 or 1).

Known defects of that reference that rlpipe does not repeat, each a written decision (``math_answers``'
docstring and the README's scorer table): ``prime_math.grader.symbolic_equal`` uses the decorator
``timeout_limit`` as a context manager, which raises and is swallowed, so no symbolic comparison there
ever succeeds; the ``\\pi`` branch passes ``tiemout=True`` and always fails; numbers match within a
relative 1e-4 and also after multiplying or dividing by 100.

Cases: the generator of ``math_verify.py`` (``responses()``; realistic and adversarial), and ``collected``
ones from the reference's own tests (``tests/utils/reward_score/test_sandbox_on_cpu.py``: the
``prime_math_answers`` / ``prime_math_gts`` pairs, as written and boxed).

How to regenerate (the reference is never vendored)::

    git clone https://github.com/LLM360/Reasoning360 /tmp/Reasoning360
    git -C /tmp/Reasoning360 checkout 13158341d2a0dfe5f3bb80e7126ff21de0d16676
    python -m venv --system-site-packages /tmp/guru-ref && /tmp/guru-ref/bin/pip install pylatexenc
    /tmp/guru-ref/bin/python tests/rewards/parity/sources/guru_math.py --checkout /tmp/Reasoning360

(the cases were made with Python 3.11, sympy 1.14.0, pylatexenc 2.11 and antlr4-python3-runtime 4.13.2,
which rlpipe's math-verify pins; Reasoning360's requirements install math-verify too). Only the reward
modules are loaded, under stub ``verl`` / ``verl.utils`` / ``verl.utils.reward_score`` packages that point
at the checkout, so neither torch nor verl's own ``__init__`` is needed.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import random
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this folder holds a math_verify.py: keep it from shadowing the math_verify package
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
REPO = "LLM360/Reasoning360"
COMMIT = "13158341d2a0dfe5f3bb80e7126ff21de0d16676"
FUNCTION = "verl/utils/reward_score/naive_dapo.py:compute_score"
OUT = HERE.parent / "cases" / "guru_math.jsonl"


def _generator() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("_parity_math_verify", HERE / "math_verify.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


MV = _generator()


def load_reference(checkout: Path) -> Callable[[str, str], float]:
    """``reference(response, ground_truth) -> 0.0 / 1.0``: ``default_compute_score`` for a ``math__``
    data source, i.e. ``naive_dapo.compute_score(response, ground_truth, extra_info=None)["score"]``."""
    for name, path in [
        ("verl", checkout / "verl"),
        ("verl.utils", checkout / "verl" / "utils"),
        ("verl.utils.reward_score", checkout / "verl" / "utils" / "reward_score"),
    ]:
        package = types.ModuleType(name)
        package.__path__ = [str(path)]
        sys.modules[name] = package
    naive_dapo = importlib.import_module("verl.utils.reward_score.naive_dapo")
    if not Path(naive_dapo.__file__).resolve().is_relative_to(checkout.resolve()):
        raise SystemExit(f"naive_dapo imported from {naive_dapo.__file__}, not from {checkout}")
    router = (checkout / "verl" / "utils" / "reward_score" / "__init__.py").read_text(encoding="utf-8")
    if 'data_source.startswith("math")' not in router or "naive_dapo.compute_score" not in router:
        raise SystemExit("default_compute_score no longer routes math__* data sources to naive_dapo")

    def reference(response: str, ground_truth: str) -> float:
        result = naive_dapo.compute_score(response, ground_truth, extra_info={"split": "test"})
        return float(result["score"])

    return reference


def collected(checkout: Path) -> Iterator[dict]:
    """The math pairs of the reference's own test (answer, ground truth), as written and boxed."""
    path = checkout / "tests" / "utils" / "reward_score" / "test_sandbox_on_cpu.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lists: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in {"prime_math_answers", "prime_math_gts"}:
                lists[name] = ast.literal_eval(node.value)
    where = "tests/utils/reward_score/test_sandbox_on_cpu.py"
    for number, (answer, gold) in enumerate(
        zip(lists["prime_math_answers"], lists["prime_math_gts"], strict=True)
    ):
        yield MV._case(answer, gold, "collected", f"{where}::prime_math[{number}]", MV.NO_BOX)
        yield MV._case(
            f"The answer is $\\boxed{{{answer}}}$.",
            gold,
            "collected",
            f"{where}::prime_math[{number}] (answer boxed)",
            None,
            expected=1.0,
        )


def decide(case: dict, reference: float, rlpipe: float) -> str | None:
    """The decision behind a difference on a one-box case whose right answer the bank knows.

    rlpipe right where the reference says 0: an equivalent form the reference's broken symbolic step
    (or its refusal of unreduced fractions) misses, ``math.symbolic-equivalence``; rlpipe right where the
    reference says 1: a wrong answer the reference's tolerance, percentage scaling, dropped interval
    brackets or dropped separators let through, ``math.strict-equivalence``. Where rlpipe is wrong
    nothing is decided (a bug to fix)."""
    if case.get("expected") is None or rlpipe != case["expected"]:
        return None
    return MV.SYMBOLIC if rlpipe == 1.0 else MV.STRICT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, required=True, help="a Reasoning360 work tree")
    parser.add_argument("--commit", help="its commit, when it is not a git work tree")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    commit = args.commit or MV._git_commit(args.checkout)
    if commit != COMMIT:
        raise SystemExit(f"{args.checkout} is at {commit}, expected {COMMIT}")
    reference = load_reference(args.checkout)
    cases = list(MV.responses(random.Random(360))) + list(collected(args.checkout))
    MV.write_cases("guru_math", REPO, COMMIT, FUNCTION, reference, cases, args.out, decide=decide)
    return 0


if __name__ == "__main__":
    sys.exit(main())
