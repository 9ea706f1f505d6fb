"""Regenerate ``cases/math_verify.jsonl``: the ``math`` scorer against huggingface/Math-Verify.

Reference: huggingface/Math-Verify at ba3d3aaff23b3f4cac7a14672b4f6e293d97c98b ("up latex2sympy",
2026-01-10), the commit released as math-verify 0.9.0 on PyPI: its ``src/math_verify`` and ``tests/`` are
byte-identical to the 0.9.0 sdist and wheel (the version rlpipe pins, ``math-verify>=0.9,<0.10``). The
call is the one Math-Verify's README recommends, gold first::

    verify(parse(gold), parse(response))

with every default (``parse`` extracts LaTeX and plain expressions, ``verify`` rounds floats to 6
decimals). ``gold`` is the ground truth as the README writes it, inside math delimiters: a ground truth
without ``$``, ``\\(``, ``\\[`` or ``\\boxed`` is wrapped as ``$...$`` (``parse`` reads bare LaTeX such as
``\\sqrt{8}`` as nothing). The response is passed whole, reasoning included.

Cases: ``realistic`` and ``adversarial`` ones from the generator below (``responses()``, also used by
``guru_math.py``), and ``collected`` ones: every ``(gold, pred)`` pair of the ``@pytest.mark.parametrize``
tables in Math-Verify's ``tests/`` (the prediction as the test writes it, and, when it is a bare formula,
also boxed as a final answer; the reference score is recomputed with the defaults above, whatever
configuration the test itself used).

Where rlpipe differs on purpose the case names the decision (see ``math_answers``' docstring and the
README's scorer table); a difference on a template or test without one is left undecided so that
``tests/rewards/test_parity.py`` fails on it.

How to regenerate (the reference is never vendored)::

    git clone https://github.com/huggingface/Math-Verify /tmp/Math-Verify
    git -C /tmp/Math-Verify checkout ba3d3aaff23b3f4cac7a14672b4f6e293d97c98b
    pip install latex2sympy2_extended==1.11.0      # what that commit pins (ANTLR 4.13.2 runtime)
    python tests/rewards/parity/sources/math_verify.py --checkout /tmp/Math-Verify

The script puts the checkout's ``src`` first on ``sys.path`` and refuses another commit (``--commit``
names it when the checkout is not a git work tree).
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this folder holds a math_verify.py: keep it from shadowing the math_verify package
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
ROOT = HERE.parents[3]
REPO = "huggingface/Math-Verify"
COMMIT = "ba3d3aaff23b3f4cac7a14672b4f6e293d97c98b"
FUNCTION = "src/math_verify/grader.py:verify"
OUT = HERE.parent / "cases" / "math_verify.jsonl"

# Decisions (ids in math_answers' docstring and the README's scorer table)
NO_BOX = "math.boxed-answer-only"
AFTER_THINK = "math.answer-after-think"
LAST_GROUP = "math.last-box-group"
STRICT = "math.strict-equivalence"
SYMBOLIC = "math.symbolic-equivalence"
THIN_SPACE = "math.thin-space-thousands"
HEDGE = "math.refuse-hedge"

# ---------------------------------------------------------------------------------------------------
# The generator: problems with a gold answer, equivalent ways of writing it, and wrong answers.
# ---------------------------------------------------------------------------------------------------

#: (topic, gold as a dataset stores it, equivalent answers, wrong answers)
BANK: list[tuple[str, str, list[str], list[str]]] = [
    ("integer", "42", ["42", "42.0", r"\text{42}", "x = 42"], ["24", "41", "4.2"]),
    ("integer", "204", ["204", r"204^\circ", "204.00"], ["240", "2.04", "-204"]),
    ("integer", "7", ["7", r"\mathbf{7}", "7 "], ["8", "-7", r"\frac{1}{7}"]),
    ("aime", "033", ["33", "033"], ["330", "3.3", "32"]),
    ("aime", "840", ["840"], ["84", "8400", "841"]),
    ("negative", "-3", ["-3", "- 3", "-3.0"], ["3", "-\\frac{1}{3}", "-2"]),
    (
        "fraction",
        r"\frac{1}{2}",
        [r"\dfrac{1}{2}", r"\tfrac12", "0.5", "1/2", r"\frac{2}{4}"],
        ["0.49", r"\frac{2}{1}", "2"],
    ),
    ("fraction", r"\frac{3}{4}", ["3/4", "0.75", r"\dfrac{3}{4}"], [r"\frac{4}{3}", "0.7", "34"]),
    ("fraction", r"-\frac{5}{2}", [r"\frac{-5}{2}", "-2.5", r"-2\frac{1}{2}"], [r"\frac{5}{2}", "-2", "2.5"]),
    ("fraction", r"\frac{1}{3}", [r"\frac{1}{3}", "0.333333", r"\frac{2}{6}"], ["0.33", "0.3", "3"]),
    ("radical", r"2\sqrt{2}", [r"\sqrt{8}", r"2 \sqrt 2", r"2\sqrt{2}"], [r"\sqrt{2}", r"4\sqrt{2}", "2.8"]),
    (
        "radical",
        r"\frac{\sqrt{3}}{3}",
        [r"\frac{1}{\sqrt{3}}", r"\dfrac{\sqrt 3}{3}", r"\sqrt{3}/3"],
        [r"\sqrt{3}", r"\frac{\sqrt{3}}{2}"],
    ),
    (
        "radical",
        r"\frac{\sqrt{505}}{7}",
        [r"\frac{\sqrt{505}}{7}", r"\dfrac{\sqrt{505}}{7}"],
        [r"\frac{\sqrt{505}}{5}", r"\sqrt{505}"],
    ),
    ("pi", r"2\pi", [r"2\pi", r"2 \pi", r"\pi \cdot 2", r"\frac{4\pi}{2}"], [r"\pi", "6.28", r"4\pi"]),
    (
        "pi",
        r"\frac{\pi}{4}",
        [r"\frac{\pi}{4}", r"\dfrac{\pi}{4}", r"\pi/4", r"0.25\pi"],
        [r"\frac{\pi}{2}", "0.785", r"45"],
    ),
    ("pi", r"36\pi", [r"36\pi", r"36 \pi"], [r"36", r"12\pi", "113.1"]),
    ("polynomial", r"x^2+2x+1", [r"(x+1)^2", r"x^2 + 2x + 1", r"1+2x+x^2"], [r"x^2+1", r"(x-1)^2"]),
    (
        "polynomial",
        r"(x + 2)^2 + (y - 3)^2",
        [r"x^2 + y^2 + 4x - 6y + 13", r"(x+2)^2+(y-3)^2"],
        [r"x^2+y^2+4x-6y", r"(x-2)^2+(y+3)^2"],
    ),
    (
        "set",
        r"2, 3",
        [r"3, 2", r"\{2, 3\}", r"2 \text{ and } 3", r"x = 2, x = 3"],
        [r"2", r"2, 3, 5", r"5, 6"],
    ),
    ("set", r"\{-1, 1\}", [r"\pm 1", r"-1, 1", r"1, -1"], [r"1", r"-1", r"\{0, 1\}"]),
    ("set", r"1, 5, 7", [r"7, 5, 1", r"\{1,5,7\}"], [r"1, 5", r"1, 5, 7, 9"]),
    ("pairs", r"(1, 2), (3, 4)", [r"(3, 4), (1, 2)", r"(1,2),(3,4)"], [r"(1, 2)", r"(2, 1), (4, 3)"]),
    ("pairs", r"(0, 0), (2, 4)", [r"(2, 4), (0, 0)", r"(0,0), (2,4)"], [r"(0, 0)", r"(2, 4), (4, 2)"]),
    ("point", r"(3, -1)", [r"(3,-1)", r"\left(3, -1\right)"], [r"(-1, 3)", r"(3, 1)"]),
    (
        "interval",
        r"(-\infty, 2]",
        [r"(-\infty,2]", r"\left(-\infty, 2\right]"],
        [r"(-\infty, 2)", r"[2, \infty)"],
    ),
    ("interval", r"[1, 5)", [r"[1,5)", r"\left[1, 5\right)"], [r"(1, 5)", r"[1, 5]"]),
    (
        "interval",
        r"(-\infty, 0) \cup (1, \infty)",
        [r"(1,\infty)\cup(-\infty,0)", r"(-\infty,0)\cup(1,\infty)"],
        [r"(0, 1)", r"(-\infty, 0)"],
    ),
    (
        "matrix",
        r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
        [r"\begin{bmatrix} 1 & 2 \\ 3 & 4 \end{bmatrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}"],
        [r"\begin{pmatrix} 1 & 3 \\ 2 & 4 \end{pmatrix}"],
    ),
    (
        "vector",
        r"\begin{pmatrix} \frac{1}{2} \\ -1 \end{pmatrix}",
        [r"\begin{pmatrix} 0.5 \\ -1 \end{pmatrix}"],
        [r"\begin{pmatrix} -1 \\ \frac{1}{2} \end{pmatrix}"],
    ),
    ("percent", r"25\%", ["25", r"25\%", "0.25"], ["2.5", r"30\%", "75"]),
    ("percent", "40", [r"40\%", "40"], ["0.4", "4", "4000"]),
    ("degrees", r"30^\circ", ["30", r"30^{\circ}", "30°"], ["60", r"\frac{\pi}{6}", "150"]),
    ("money", r"\$18.90", ["18.90", "18.9", r"\$18.90"], ["1890", "18.09", "19"]),
    ("units", "5", [r"5\text{ cm}", r"5 \text{ cm}", "5 cm"], [r"6\text{ cm}", "50"]),
    ("units", r"12\text{ hours}", ["12", r"12 \text{ hours}"], ["12.5", "720"]),
    ("thousands", "1000", ["1,000", "1000", "1{,}000", "1000.0"], ["1 000", "100", "10000"]),
    ("thousands", "1234567", ["1,234,567", "1234567"], ["1, 234, 567", "1 234 567", "1234"]),
    ("thousands", "3500", ["3,500", "3500"], ["3, 500", "3 500", "35"]),
    ("thousands", "35", ["35"], ["3, 5", "3 5", "3,5"]),
    ("scientific", "1500", [r"1.5\times 10^3", r"1.5 \times 10^{3}", "1500"], ["150", r"1.5\times 10^4"]),
    ("scientific", r"3\times 10^{-2}", ["0.03", r"3 \cdot 10^{-2}"], ["0.3", r"3\times 10^{2}"]),
    ("decimal", "2.75", ["2.75", r"\frac{11}{4}", "2.750"], ["2.7", "2.8", "275"]),
    ("decimal", "10000", ["10000", "10,000"], ["10001", "9999", "100"]),
    ("close", "3.14159", ["3.14159", "3.141590"], ["3.1416", "3.14"]),
    ("choice", r"\text{(B)}", [r"\text{(B)}", r"(B)", r"\text{B}", "B"], [r"\text{(C)}", "C"]),
    ("text", r"\text{Evelyn}", [r"\text{Evelyn}", "Evelyn"], [r"\text{Bob}"]),
    ("equation", "y = 2x + 1", ["2x+1", "y=2x+1", "y = 1 + 2x"], ["y = 2x - 1", "x = 2y + 1"]),
    ("base", "1011_2", ["1011_2", "1011"], ["1101_2", "11"]),
    (
        "expression",
        r"\frac{a+b}{2}",
        [r"\frac{a+b}{2}", r"\frac{b+a}{2}", r"(a+b)/2"],
        [r"a+b", r"\frac{a-b}{2}"],
    ),
    ("log", r"\log_2 3", [r"\log_2 3", r"\frac{\ln 3}{\ln 2}"], [r"\log_3 2", r"\ln 3"]),
]

_REASONING = [
    "First, let me set up the problem. We write the given condition as an equation and simplify both "
    "sides. Expanding, we get ${a} + {b} = {c}$, and so the remaining unknown satisfies a linear relation.",
    "We can check small cases: for $n = 1$ the value is ${a}$, for $n = 2$ it is ${b}$, and the pattern "
    "suggests a closed form. Substituting back confirms it.",
    "Using the formula for the sum of an arithmetic series, the total is $\\frac{{{a} \\cdot {b}}}{{2}}$. "
    "Subtracting the excluded terms gives ${c}$ before the final step.",
    "Let me reconsider. Dividing both sides by ${a}$ and moving terms around, the equation becomes "
    "${b}x = {c}$. Solving this carefully (and checking the discriminant) gives the candidate values.",
]

_WRAPPERS: list[tuple[str, str]] = [
    ("final-dollar", "{reasoning}\n\nTherefore, the final answer is $\\boxed{{{ans}}}$."),
    ("final-display", "{reasoning}\n\n**Final Answer**\n\\[\n\\boxed{{{ans}}}\n\\]"),
    (
        "think-then-box",
        "<think>\n{reasoning}\nWait, let me double-check the arithmetic. {reasoning2}\n"
        "So the answer should be {ans_plain}.\n</think>\n\nThe answer is $\\boxed{{{ans}}}$.",
    ),
    ("answer-colon", "{reasoning}\n\nAnswer: $\\boxed{{{ans}}}$"),
    ("trailing-words", "{reasoning}\nHence $\\boxed{{{ans}}}$ is our answer. I hope it is correct."),
    ("spaced-box", "{reasoning}\n\nFinal answer: $\\boxed{{ {ans} }}$."),
]


def _reasoning(rng: random.Random) -> str:
    a, b = rng.randint(2, 30), rng.randint(2, 30)
    return rng.choice(_REASONING).format(a=a, b=b, c=a + b)


def _split(answer: str) -> list[str] | None:
    """The elements of a comma list at the top level, or None (for boxing one by one)."""
    depth, parts, cur = 0, [], ""
    for ch in answer:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts if len(parts) > 1 else None


def responses(rng: random.Random) -> Iterator[dict]:
    """Realistic and adversarial responses over ``BANK``: ``{response, ground_truth, kind, source,
    decision_if_different}`` (the decision that explains a difference from a reference, per template)."""
    for index, (topic, gold, rights, wrongs) in enumerate(BANK):
        tag = f"{topic}-{index}"
        answers = [(a, "right") for a in rights] + [(w, "wrong") for w in wrongs]
        # realistic: one boxed final answer in one of the wrappers, with noise
        for ans, verdict in answers:
            name, wrapper = _WRAPPERS[rng.randrange(len(_WRAPPERS))]
            text = wrapper.format(
                reasoning=_reasoning(rng), reasoning2=_reasoning(rng), ans=ans, ans_plain=ans
            )
            yield _case(
                text,
                gold,
                "realistic",
                f"generator:{name}:{verdict}:{tag}",
                None,
                expected=1.0 if verdict == "right" else 0.0,
            )
        right, wrong = rights[rng.randrange(len(rights))], wrongs[rng.randrange(len(wrongs))]
        reasoning = _reasoning(rng)
        # realistic: a wrong candidate in the reasoning, the right one boxed
        yield _case(
            f"<think>\n{reasoning}\nMaybe the answer is {wrong}? No: I dropped a sign. "
            f"Redo: {right}.\n</think>\n"
            f"After correcting the sign error, the answer is $\\boxed{{{right}}}$.",
            gold,
            "realistic",
            f"generator:candidate-in-reasoning:{tag}",
            None,
            expected=1.0,
        )
        # realistic: several boxes that together form a set answer (defect a)
        elements = _split(right) or _split(gold)
        if elements and topic in {"set", "pairs"}:
            boxed = " and ".join(f"$\\boxed{{{e}}}$" for e in elements)
            yield _case(
                f"{reasoning}\n\nThe solutions are {boxed}.",
                gold,
                "realistic",
                f"generator:set-boxed-one-by-one:{tag}",
                LAST_GROUP,
            )
            boxed = ", ".join(f"\\boxed{{{e}}}" for e in elements)
            yield _case(
                f"{reasoning}\n\n**Final Answer**\n{boxed}",
                gold,
                "realistic",
                f"generator:set-boxed-list:{tag}",
                LAST_GROUP,
            )
            if len(elements) > 1:
                yield _case(
                    f"{reasoning}\n\nSo $x = \\boxed{{{elements[0]}}}$.",
                    gold,
                    "adversarial",
                    f"generator:set-partial:{tag}",
                    None,
                )
        # realistic: the same answer boxed twice in two forms
        other = rights[(rights.index(right) + 1) % len(rights)]
        yield _case(
            f"{reasoning}\n\nThus the value is $\\boxed{{{right}}}$.\n\n"
            f"**Final Answer**\n$\\boxed{{{other}}}$",
            gold,
            "realistic",
            f"generator:boxed-twice-equivalent:{tag}",
            None,
            expected=1.0,
        )
        # adversarial: a hedge between a wrong and the right answer, both boxed
        yield _case(
            f"{reasoning}\n\nIt is either $\\boxed{{{wrong}}}$ or $\\boxed{{{right}}}$.",
            gold,
            "adversarial",
            f"generator:hedge-two-boxes:{tag}",
            HEDGE,
        )
        # adversarial: self-correction after a first box (the last box is right)
        yield _case(
            f"{reasoning}\n\nSo the answer is $\\boxed{{{wrong}}}$. "
            f"Wait, that is wrong; it is $\\boxed{{{right}}}$.",
            gold,
            "adversarial",
            f"generator:box-then-correction:{tag}",
            LAST_GROUP,
            expected=1.0,
        )
        # adversarial: the same, bare boxes (math-verify then reads all boxes as one set)
        yield _case(
            f"{reasoning}\n\nSo the answer is \\boxed{{{wrong}}}. "
            f"Hmm, no. Rechecking, the answer is \\boxed{{{right}}}.",
            gold,
            "adversarial",
            f"generator:bare-box-then-correction:{tag}",
            LAST_GROUP,
            expected=1.0,
        )
        # adversarial: the right answer stated but never boxed
        yield _case(
            f"{reasoning}\n\nThe final answer is ${right}$.",
            gold,
            "adversarial",
            f"generator:no-box:{tag}",
            NO_BOX,
        )
        # adversarial: boxed only inside the reasoning
        yield _case(
            f"<think>\n{reasoning} So $\\boxed{{{right}}}$.\n</think>\n\nI am not sure about the answer.",
            gold,
            "adversarial",
            f"generator:box-only-in-reasoning:{tag}",
            AFTER_THINK,
        )
        # adversarial: truncated reasoning (never closed)
        yield _case(
            f"<think>\n{reasoning} Tentatively $\\boxed{{{right}}}$, but let me verify by",
            gold,
            "adversarial",
            f"generator:unfinished-think:{tag}",
            AFTER_THINK,
        )
        # adversarial: a wrong box in the reasoning, the right answer after it
        yield _case(
            f"<think>\n{reasoning} Perhaps $\\boxed{{{wrong}}}$.\n</think>\n\n$\\boxed{{{right}}}$",
            gold,
            "adversarial",
            f"generator:wrong-box-in-reasoning:{tag}",
            AFTER_THINK,
            expected=1.0,
        )
        if index % 5 == 0:
            yield _case(
                f"{reasoning}\n\n$\\boxed{{}}$", gold, "adversarial", f"generator:empty-box:{tag}", None
            )
            yield _case(
                f"{reasoning}\n\n$\\boxed{{{right}",
                gold,
                "adversarial",
                f"generator:unclosed-box:{tag}",
                NO_BOX,
            )
            yield _case(
                f"$\\boxed{{{right}}}$" * 3,
                gold,
                "adversarial",
                f"generator:repeated-box:{tag}",
                None,
                expected=1.0,
            )
    # adversarial: degenerate answers that must never score
    for text, gold in [
        (r"\boxed{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}", "7"),
        (r"\boxed{x}", "5"),
        (r"\boxed{\text{any real number}}", "3"),
        (r"\boxed{0} \boxed{1} \boxed{2} \boxed{3} \boxed{4} \boxed{5}", "3"),
        (r"\boxed{[-\infty, \infty]}", "2"),
        (r"\boxed{\text{The answer is 5}}", "5"),
        (r"\boxed{5 \text{ or } 6}", "5"),
        (r"\boxed{5\ 6}", "56"),
        (r"\boxed{10\,000}", "10000"),
        (r"\boxed{12\,345}", "12345"),
    ]:
        decision = THIN_SPACE if r"\," in text else HEDGE if " or " in text else None
        yield _case(
            f"Let me think about it.\n\n{text}", gold, "adversarial", "generator:degenerate", decision
        )


def _case(
    response: str, gold: str, kind: str, source: str, decision: str | None, expected: float | None = None
) -> dict:
    """One generated case. ``expected`` is the score a correct grader gives, set only where the
    references grade the same single box as rlpipe (the bank says whether it is right)."""
    return {
        "response": response,
        "ground_truth": gold,
        "kind": kind,
        "source": source,
        "decision_if_different": decision,
        "expected": expected,
    }


# ---------------------------------------------------------------------------------------------------
# Collected: Math-Verify's own test tables.
# ---------------------------------------------------------------------------------------------------

_LETTERS = re.compile(r"[A-Za-z]{3,}|'")


def _bare_formula(pred: str) -> str | None:
    """The formula of a prediction that is only a formula (``$...$`` / ``$$...$$`` / bare), else None."""
    text = pred.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\[", "\\]"), ("\\(", "\\)")):
        if text.startswith(left) and text.endswith(right) and len(text) > len(left) + len(right):
            text = text[len(left) : -len(right)].strip()
            break
    if not text or "$" in text or "\n" in text or "boxed" in text or len(text) > 200:
        return None
    if _LETTERS.search(re.sub(r"\\[A-Za-z]+", "", text)):
        return None
    return text


#: collected cases where rlpipe differs on purpose (the prediction has a box), by ``source``
COLLECTED_DECISIONS = {
    # "$0.05 \\cdot 10,200 \\cdot \\frac{1}{2} = \\boxed{255}$ ... The final answer is $10,455$": the
    # box is what rlpipe grades; math-verify prefers the "final answer is" sentence
    "tests/test_all.py::test_math_extraction_additional_cases[17]": NO_BOX,
    # a gold of boxes separated by "++++++" / "papers and" / "for part (a) and": math-verify joins every
    # box; rlpipe takes the last box and those joined to it by a comma, "and" or "or" only
    "tests/test_boxed.py::test_boxed[0] (prediction boxed)": LAST_GROUP,
    "tests/test_open_thoughts.py::test_open_thoughts[14]": LAST_GROUP,
    "tests/test_open_thoughts.py::test_open_thoughts[27]": LAST_GROUP,
}


def collected(checkout: Path) -> Iterator[dict]:
    """Every ``(gold, pred)`` pair of a parametrize table in ``tests/``: as written, and boxed."""
    for path in sorted((checkout / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            for deco in node.decorator_list:
                if not (isinstance(deco, ast.Call) and ast.unparse(deco.func).endswith("parametrize")):
                    continue
                names = [n.strip() for n in ast.literal_eval(deco.args[0]).split(",")]
                if "gold" not in names or "pred" not in names:
                    continue
                gi, pi = names.index("gold"), names.index("pred")
                for number, row in enumerate(deco.args[1].elts):
                    try:
                        values = ast.literal_eval(row)
                    except ValueError:
                        continue
                    gold, pred = values[gi], values[pi]
                    if not isinstance(gold, str) or not isinstance(pred, str):
                        continue
                    where = f"tests/{path.name}::{node.name}[{number}]"
                    decision = COLLECTED_DECISIONS.get(where, NO_BOX if "boxed" not in pred else None)
                    yield _case(pred, gold, "collected", where, decision)
                    formula = _bare_formula(pred)
                    if formula is not None:
                        boxed = f"{where} (prediction boxed)"
                        yield _case(
                            f"The final answer is $\\boxed{{{formula}}}$.",
                            gold,
                            "collected",
                            boxed,
                            COLLECTED_DECISIONS.get(boxed),
                        )


# ---------------------------------------------------------------------------------------------------


def _git_commit(checkout: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def _gold_for_math_verify(gold: str) -> str:
    return gold if re.search(r"(?<!\\)\$|\\\(|\\\[|\\boxed", gold) else f"${gold}$"


def load_reference(checkout: Path) -> Callable[[str, str], float]:
    """``reference(response, ground_truth) -> 0.0 / 1.0`` from the checkout's ``src``."""
    sys.path.insert(0, str(checkout / "src"))
    for name in [m for m in sys.modules if m == "math_verify" or m.startswith("math_verify.")]:
        del sys.modules[name]
    import math_verify

    if not Path(math_verify.__file__).resolve().is_relative_to(checkout.resolve()):
        raise SystemExit(f"math_verify imported from {math_verify.__file__}, not from {checkout}")

    def reference(response: str, ground_truth: str) -> float:
        gold = math_verify.parse(_gold_for_math_verify(ground_truth))
        return float(bool(math_verify.verify(gold, math_verify.parse(response))))

    return reference


def write_cases(
    family: str,
    repo: str,
    commit: str,
    function: str,
    reference: Callable[[str, str], float],
    cases: list[dict],
    out: Path,
    decide: Callable[[dict, float, float], str | None] | None = None,
) -> None:
    """Score every case with the reference and rlpipe; write the JSONL; report undecided differences.

    A difference takes ``decide(case, reference, rlpipe)`` when it names one, else the case's
    ``decision_if_different``."""
    sys.path.insert(0, str(ROOT / "src"))
    from rlpipe.rewards import score

    seen: set[tuple[str, str]] = set()
    lines, undecided = [], []
    for case in cases:
        key = (case["response"], case["ground_truth"])
        if key in seen:
            continue
        seen.add(key)
        ref = reference(case["response"], case["ground_truth"])
        got = score("math", case["response"], case["ground_truth"], None)
        row = {
            "id": f"{family}-{len(lines) + 1}",
            "scorer": "math",
            "response": case["response"],
            "ground_truth": case["ground_truth"],
            "extra_info": None,
            "reference": {"repo": repo, "commit": commit, "function": function},
            "reference_score": ref,
            "kind": case["kind"],
            "source": case["source"],
            "decision": None,
        }
        if abs(got - ref) > 1e-6:
            decision = (decide(case, ref, got) if decide else None) or case["decision_if_different"]
            if decision:
                row["decision"] = decision
                row["rlpipe_score"] = got
            else:
                undecided.append(f"{row['id']} {case['source']}: reference {ref}, rlpipe {got}")
        lines.append(json.dumps(row, ensure_ascii=False))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    decided = sum(json.loads(line)["decision"] is not None for line in lines)
    print(f"{out}: {len(lines)} cases, {decided} decided, {len(undecided)} undecided differences")
    for line in undecided:
        print("  undecided:", line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, required=True, help="a Math-Verify work tree")
    parser.add_argument("--commit", help="its commit, when it is not a git work tree")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    commit = args.commit or _git_commit(args.checkout)
    if commit != COMMIT:
        raise SystemExit(f"{args.checkout} is at {commit}, expected {COMMIT}")
    reference = load_reference(args.checkout)
    cases = list(responses(random.Random(24))) + list(collected(args.checkout))
    write_cases("math_verify", REPO, COMMIT, FUNCTION, reference, cases, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
