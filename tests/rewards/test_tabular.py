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
        (r"\boxed{(12)}", "-12"),
        (r"<think>\boxed{1}</think>so \boxed{\text{2,000}}", "2000"),
    ],
)
def test_tabular_positive(response: str, truth: str) -> None:
    assert score("tabular", response, truth) == 1.0


@pytest.mark.parametrize(
    ("response", "truth"),
    [
        (r"\boxed{1236.5}", "1234"),  # outside 1e-3
        (r"\boxed{0.125}", "12.5%"),  # percent is stripped, not interpreted
        (r"\boxed{3}", "3|4"),
        (r"\boxed{3|4|5}", "3|4"),
        (r"\boxed{3|3}", "3|4"),
        ("12.5", "12.5"),  # no box
        (r"\boxed{}", "0"),
    ],
)
def test_tabular_negative(response: str, truth: str) -> None:
    assert score("tabular", response, truth) == 0.0
