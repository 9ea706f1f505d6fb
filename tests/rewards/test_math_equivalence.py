"""Math-answer equivalence: the ``math`` scorer against math-verify's own verdicts (issue 12, item 6).

The reference verdict of a row is ``verify(parse(f"${gold}$"), parse(f"${prediction}$"))`` with
math-verify's defaults, gold first, as math-verify documents its use. The ``$`` delimiters are part of
the reference: ``parse`` extracts LaTeX only from math delimiters or ``\\boxed{}``, so bare LaTeX reads
as nothing or as a stray number (``parse(r"\\sqrt{8}") == []``, ``parse(r"[1, 3)")`` is ``3``), and the
undelimited call disagrees with the delimited one on 34 of these rows, the issue's three cases included.

The verdicts (last column of ``CASES``) were computed once with math-verify 0.9.0
(latex2sympy2_extended 1.11.0, ANTLR 4.13.2 runtime, sympy 1.14.0) and are hard-coded:
``test_scorer_matches_math_verify`` fails when the scorer drifts from them,
``test_table_is_math_verifys_verdict`` when a math-verify upgrade changes a verdict (then re-check the
row and, if the new verdict is right, update it).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest
from math_verify import parse, verify

from rlpipe.rewards import score

# (category, gold, prediction, math-verify's verdict)
CASES: list[tuple[str, str, str, bool]] = [
    ("fractions", r"\frac{1}{2}", r"\tfrac{1}{2}", True),
    ("fractions", r"\frac{1}{2}", r"\dfrac{1}{2}", True),
    ("fractions", r"\frac{3}{4}", r"3/4", True),
    ("fractions", r"\frac{2}{4}", r"\frac{1}{2}", True),
    ("fractions", r"\frac{5}{2}", r"2\frac{1}{2}", True),
    ("fractions", r"-\frac{1}{2}", r"\frac{-1}{2}", True),
    ("fractions", r"\frac{1}{3}", r"0.333333", True),
    ("fractions", r"\frac{1}{3}", r"0.33", False),
    ("fractions", r"\frac{3}{4}", r"\frac{4}{3}", False),
    ("radicals", r"\frac{\sqrt 2}{2}", r"\dfrac{\sqrt{2}}{2}", True),
    ("radicals", r"2\sqrt{2}", r"\sqrt{8}", True),
    ("radicals", r"\frac{\sqrt{3}}{3}", r"\frac{1}{\sqrt{3}}", True),
    ("radicals", r"\sqrt[3]{27}", r"3", True),
    ("radicals", r"\sqrt{2}", r"1.41421356", True),
    ("radicals", r"\sqrt{12}", r"3\sqrt{2}", False),
    ("radicals", r"\sqrt{2}", r"1.414", False),
    ("polynomials", r"x^2+2x+1", r"(x+1)^2", True),
    ("polynomials", r"x^2-1", r"(x-1)(x+1)", True),
    ("polynomials", r"x^3-8", r"(x-2)(x^2+2x+4)", True),
    ("polynomials", r"2x+2", r"2(x+1)", True),
    ("polynomials", r"x^2-5x+6", r"(x+2)(x+3)", False),
    ("polynomials", r"(x+1)^2", r"x^2+x+1", False),
    ("sets", r"\{3, 2\}", r"2,3", True),
    ("sets", r"\{1,2,3\}", r"\{3,2,1\}", True),
    ("sets", r"\{1,2,3,4\}", r"\{1,3\} \cup \{2,4\}", True),
    ("sets", r"\{-1, 1\}", r"\pm 1", True),
    ("sets", r"\{1,2\}", r"\{1,2,3\}", False),
    ("sets", r"\emptyset", r"\varnothing", False),
    ("intervals", r"(-\infty, 2]", r"(-\infty,2]", True),
    ("intervals", r"(-\infty, 0) \cup (1, \infty)", r"(1,\infty)\cup(-\infty,0)", True),
    ("intervals", r"\left( 1, 2 \right)", r"(1,2)", True),
    ("intervals", r"[1, 3)", r"(1, 3)", False),
    ("intervals", r"(2, 5)", r"(2, 5]", False),
    ("intervals", r"[-2, 2]", r"-2 \le x \le 2", False),
    ("units", r"5", r"5 cm", True),
    ("units", r"5\text{ cm}", r"5", True),
    ("units", r"12\text{ m}", r"12\,\text{m}", True),
    ("units", r"3", r"3\text{ hours}", True),
    ("units", r"\$18", r"18", True),
    ("units", r"10", r"12\text{ cm}", False),
    ("units", r"5", r"6 cm", False),
    ("percentages", r"25\%", r"25", True),
    ("percentages", r"25\%", r"0.25", True),
    ("percentages", r"0.25", r"25\%", True),
    ("percentages", r"12.5\%", r"\frac{1}{8}", True),
    ("percentages", r"25\%", r"30\%", False),
    ("percentages", r"25\%", r"2.5", False),
    ("degrees", r"30^\circ", r"30", True),
    ("degrees", r"30", r"30^{\circ}", True),
    ("degrees", r"90^\circ", r"90°", True),
    ("degrees", r"45^\circ", r"\frac{\pi}{4}", False),
    ("degrees", r"60^\circ", r"120^\circ", False),
    ("scientific", r"1500", r"1.5\times 10^3", True),
    ("scientific", r"3\times 10^{-2}", r"0.03", True),
    ("scientific", r"6.02\times10^{23}", r"6.02 \cdot 10^{23}", True),
    ("scientific", r"2\times 10^5", r"20000", False),
    ("scientific", r"1500", r"1.5e3", False),
    ("scientific", r"1.2\times10^{-3}", r"1.2\times10^{3}", False),
    (
        "matrices",
        r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
        r"\begin{bmatrix} 1 & 2 \\ 3 & 4 \end{bmatrix}",
        True,
    ),
    (
        "matrices",
        r"\begin{pmatrix} \frac{1}{2} \\ -1 \end{pmatrix}",
        r"\begin{pmatrix} 0.5 \\ -1 \end{pmatrix}",
        True,
    ),
    (
        "matrices",
        r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
        r"\begin{pmatrix} 1 & 3 \\ 2 & 4 \end{pmatrix}",
        False,
    ),
    ("matrices", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix} 1 & 2 \end{pmatrix}", False),
    ("matrices", r"\begin{pmatrix} 2 & 0 \\ 0 & 2 \end{pmatrix}", r"2I", False),
    ("multiple", r"1, 2", r"2, 1", True),
    ("multiple", r"x=1, x=2", r"1, 2", True),
    ("multiple", r"\pm 2", r"2, -2", True),
    ("multiple", r"2 \text{ and } 3", r"2, 3", True),
    ("multiple", r"1, 2", r"1, 3", False),
    ("multiple", r"1, 2", r"1", False),
    ("multiple", r"(1, 2)", r"(2, 1)", False),
    ("equations", r"x=5", r"5", True),
    ("equations", r"y=2x+1", r"2x+1", True),
    ("equations", r"x=5", r"y=5", False),
    ("numbers", r"1000", r"1,000", True),
    ("numbers", r"5", r"5.0", True),
    ("numbers", r"1000000000", r"1000000001", False),
    ("numbers", r"3", r"3.0000000001", False),
    # thousands separators: one grouped number only; comma AND space (or a space) separate numbers
    ("numbers", r"1234567", r"1{,}234{,}567", True),
    ("numbers", r"3500", r"3, 500", False),
    ("numbers", r"35", r"3, 5", False),
    ("numbers", r"1000", r"1 000", False),
]

CATEGORIES = {
    "fractions",
    "radicals",
    "polynomials",
    "sets",
    "intervals",
    "units",
    "percentages",
    "degrees",
    "scientific",
    "matrices",
    "multiple",
}
#: the issue's examples: a fresh install (no math-verify) scored each 0
ISSUE_CASES = [
    (r"\frac{\sqrt 2}{2}", r"\dfrac{\sqrt{2}}{2}"),
    (r"x^2+2x+1", r"(x+1)^2"),
    (r"\{3, 2\}", r"2,3"),
]
IDS = [f"{category}-{i}" for i, (category, *_) in enumerate(CASES)]


def _scorer(gold: str, prediction: str) -> bool:
    """The ``math`` scorer as training and evaluation call it: a response with a final ``\\boxed{}``."""
    value = score("math", f"The answer is \\boxed{{{prediction}}}.", gold)
    assert value in (0.0, 1.0)
    return value == 1.0


@pytest.mark.parametrize(("category", "gold", "prediction", "expected"), CASES, ids=IDS)
def test_scorer_matches_math_verify(category: str, gold: str, prediction: str, expected: bool) -> None:
    assert _scorer(gold, prediction) is expected


@pytest.mark.parametrize(("category", "gold", "prediction", "expected"), CASES, ids=IDS)
def test_table_is_math_verifys_verdict(category: str, gold: str, prediction: str, expected: bool) -> None:
    assert verify(parse(f"${gold}$"), parse(f"${prediction}$")) is expected


def test_scorer_matches_math_verify_in_a_worker_thread() -> None:
    # Reward workers run math-verify without its signal-based time limit: same verdicts.
    with ThreadPoolExecutor(max_workers=1) as pool:
        verdicts = list(pool.map(lambda row: _scorer(row[1], row[2]), CASES))
    wrong = [row for row, verdict in zip(CASES, verdicts, strict=True) if verdict is not row[3]]
    assert not wrong


def test_table_size_and_coverage() -> None:
    assert len(CASES) >= 40
    for category in CATEGORIES:
        verdicts = {expected for cat, _, _, expected in CASES if cat == category}
        assert verdicts == {True, False}, f"{category}: needs equivalent and non-equivalent rows"
    assert {category for category, *_ in CASES} - CATEGORIES == {"equations", "numbers"}
    assert len({(gold, prediction) for _, gold, prediction, _ in CASES}) == len(CASES)
    table = {(gold, prediction): expected for _, gold, prediction, expected in CASES}
    assert all(table.get(case) is True for case in ISSUE_CASES)


def test_missing_math_verify_is_an_import_error() -> None:
    # A hard dependency: without it the scorers do not import (no silent string-only fallback).
    code = textwrap.dedent(
        """
        import sys
        sys.modules["math_verify"] = None  # as if not installed
        try:
            import rlpipe.rewards
        except ImportError as exc:
            print(exc)
        else:
            print("imported")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "math-verify" in out and "pip install" in out, out
