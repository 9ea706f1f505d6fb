"""Tabular scorer: relative tolerance, stripped units, multi-answers."""

import pytest

from rlpipe.rewards import score


@pytest.mark.parametrize(
    ("response", "truth"),
    [
        (r"\boxed{12.5\%}", "12.5"),
        (r"\boxed{\$1,234.5}", "1234.5"),
        (r"\boxed{1234.9}", "1234.0"),  # within 1e-3 relative
        (r"\boxed{45%}", "45%"),
        (r"\boxed{3 | 4}", "4|3"),  # order-insensitive
        (r"\boxed{Revenue}", "revenue"),
        (r"\boxed{12.5}", 0.125),  # x100 of the truth: FinQA stores 12.5% as 0.125 (GURU's grader)
        (r"\boxed{12.5\%}", 0.125),  # "%" is /100
        (r"\boxed{0.125}", "12.5%"),  # /100 of the truth (this test expected 0: percent is now interpreted)
        ("12.5", "12.5"),  # a region without a box is the answer, as in GURU (this test expected 0)
        (r"\boxed{3:4}", 0.75),
        (r"\boxed{\frac{3}{4}}", "0.75"),
        (r"\boxed{(5.2 - 4.8) / 4.8}", "0.08333"),
        (r"\boxed{-0.05 \text{ million}}", -0.05),
        (r"\boxed{\textbf{1.5|2.5}}", "2.5|1.5"),
        (r"\boxed{x = 5}", "5"),
        (r"<think>\boxed{1}</think>so \boxed{\text{2,000}}", "2000"),
    ],
)
def test_tabular_positive(response: str, truth: str) -> None:
    assert score("tabular", response, truth) == 1.0


@pytest.mark.parametrize(
    ("response", "truth"),
    [
        (r"\boxed{1236.5}", "1234"),  # outside 1e-3
        (r"\boxed{(12)}", "-12"),  # parentheses group, as in GURU (this test expected 1: accounting negative)
        (r"\boxed{1.25}", "12.5%"),  # x10 is not a percentage slip
        (r"\boxed{3}", "3|4"),
        (r"\boxed{3|4|5}", "3|4"),
        (r"\boxed{3|3}", "3|4"),
        ("The answer is 12.5.", "12.5"),  # no box: the whole region is not a number
        (r"\boxed{3,4}", "34"),  # tabular.strict-thousands
        (r"\boxed{12 | 13}", "13"),  # tabular.refuse-hedge (GURU: 12 | 13 == 13, bitwise)
        (r"\boxed{A B C D}", "12"),
        (r"<think>\boxed{12}", "12"),  # unclosed think: no answer
        (r"\boxed{}", "0"),
    ],
)
def test_tabular_negative(response: str, truth: str) -> None:
    assert score("tabular", response, truth) == 0.0
