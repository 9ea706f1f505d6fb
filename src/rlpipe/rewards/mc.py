"""Multiple-choice scorer (GPQA-diamond, SuperGPQA): one option letter A-J.

``mc``: the predicted letter is taken from the last ``\\boxed{}`` of the answer region (``B``, ``(B)``,
``\\text{B}``, ``B. some text``, ``B)``), else from the last ``Answer: B`` / ``answer is (B)`` phrase.
Nothing extracted scores 0 -- never a random letter (the reference's random fallback made scores
non-deterministic). The ground truth is a letter, optionally in parentheses or ``\\boxed{}``.
"""

from __future__ import annotations

import re
from typing import Any

from rlpipe.rewards.extract import answer_region, last_boxed, strip_text_macro
from rlpipe.rewards.registry import register

_LETTERS = "ABCDEFGHIJ"
_BOXED_LETTER = re.compile(r"^\(?\s*([A-J])\s*\)?(?:$|[.:)\s])")
_ANSWER_PHRASE = re.compile(
    r"answer\s*(?:is|:)?\s*[:*]*\s*(?:option\s*)?\**\s*\(?\s*([A-J])\s*\)?(?![A-Za-z])", re.IGNORECASE
)


def extract_letter(response: str) -> str | None:
    """The chosen option letter, or None when the response commits to none."""
    region = answer_region(response)
    if region is None:
        return None
    boxed = last_boxed(region)
    if boxed is not None:
        match = _BOXED_LETTER.match(strip_text_macro(boxed).strip())
        return match.group(1) if match else None
    found = _ANSWER_PHRASE.findall(region)
    return found[-1].upper() if found else None


@register("mc")
def mc_score(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the extracted letter equals the ground-truth letter; deterministic, 0 if none."""
    truth = str(ground_truth).strip()
    boxed = last_boxed(truth)
    truth = (boxed if boxed is not None else truth).strip("() ").upper()
    if len(truth) != 1 or truth not in _LETTERS:
        return 0.0
    return float(extract_letter(response) == truth)
