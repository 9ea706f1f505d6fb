"""Tabular-reasoning scorer (FinQA, HiTab, MultiHiertt): numeric answers with a relative tolerance.

``tabular``: the prediction is the last ``\\boxed{}`` of the answer region. Both prediction and ground
truth are split on ``|`` into answers (multi-answer questions); the counts must agree and every
ground-truth answer must be matched by a distinct predicted one (order-insensitive: the tasks list sets
of cells). Two answers match when, after stripping ``%``, ``$`` (also ``\\%``, ``\\$``), thousands
separators, ``\\text{}`` and spaces, both are numbers within relative tolerance 1e-3 (absolute 1e-9
around zero), or else their lower-cased normalised strings are equal. ``5%`` matches ``5`` (not
``0.05``): percent signs are stripped, as in GURU, not interpreted.
"""

from __future__ import annotations

import math
import re
from typing import Any

from rlpipe.rewards.extract import answer_region, last_boxed, strip_text_macro
from rlpipe.rewards.registry import register

_REL_TOL = 1e-3


def _clean(text: str) -> str:
    text = strip_text_macro(text.strip())
    text = re.sub(r"\\text\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"\\[%$]|[%$]|\\,|\\!", "", text)
    return text.strip().strip(".").strip()


def _number(text: str) -> float | None:
    compact = text.replace(" ", "")
    if re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?", compact):
        compact = compact.replace(",", "")
    negative = re.fullmatch(r"\((.+)\)", compact)  # accounting negative (12.5)
    if negative:
        compact = "-" + negative.group(1)
    try:
        value = float(compact)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def answers_match(prediction: str, truth: str) -> bool:
    """Whether one predicted answer matches one ground-truth answer (see module docstring)."""
    p, t = _clean(prediction), _clean(truth)
    a, b = _number(p), _number(t)
    if a is not None and b is not None:
        return math.isclose(a, b, rel_tol=_REL_TOL, abs_tol=1e-9)
    return " ".join(p.lower().split()) == " ".join(t.lower().split()) and bool(t)


@register("tabular")
def tabular_score(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the ``|``-separated answers in the last ``\\boxed{}`` match the ground truth's."""
    region = answer_region(response)
    if region is None:
        return 0.0
    boxed = last_boxed(region)
    if boxed is None:
        return 0.0
    truth_text = str(ground_truth)
    truth_boxed = last_boxed(truth_text)
    truths = [t for t in (truth_boxed or truth_text).split("|") if t.strip()]
    preds = [p for p in boxed.split("|") if p.strip()]
    if not truths or len(preds) != len(truths):
        return 0.0
    remaining = list(preds)
    for truth in truths:
        hit = next((i for i, p in enumerate(remaining) if answers_match(p, truth)), None)
        if hit is None:
            return 0.0
        remaining.pop(hit)
    return 1.0
