"""Scorers for short, exact answers: the procedural tasks of the embedded default use these."""

from __future__ import annotations

import re
from typing import Any

from rlpipe.rewards.registry import register

_THINK_END = "</think>"


def final_text(response: str) -> str:
    """The part of a response after the last ``</think>`` (reasoning is never graded), stripped."""
    if _THINK_END in response:
        response = response.rsplit(_THINK_END, 1)[1]
    return response.strip()


@register("exact_match")
def exact_match(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the final answer equals the ground truth after whitespace normalisation."""
    answer = " ".join(final_text(response).split())
    return float(answer == " ".join(str(ground_truth).split()))


_INT = re.compile(r"^[+-]?\d+$")


@register("integer")
def integer(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the final answer is exactly one integer equal to the ground truth.

    Extra text (``"12 or 13"``) scores 0 on purpose: hedging must not be rewarded.
    """
    answer = final_text(response).replace(",", "")
    if not _INT.match(answer):
        return 0.0
    return float(int(answer) == int(str(ground_truth)))
