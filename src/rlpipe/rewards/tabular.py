"""Tabular-reasoning scorer (FinQA, HiTab, MultiHiertt): numeric answers with a relative tolerance.

``tabular``: the prediction is the last ``\\boxed{}`` of the answer region (the text after the last
``</think>``); a region without a box is itself the prediction (so a bare ``12.5`` counts, as in GURU).
Both sides are lower-cased. A ground truth containing ``|`` is a list of answers (multi-answer
questions): the prediction is split on ``|`` too, the counts must agree and every ground-truth answer
must be matched by a distinct predicted one (order-insensitive). A single ground truth takes a single
prediction.

Two answers match when the prediction reads as a number and so does the truth, and the prediction is
within relative tolerance 1e-3 of the truth, of truth/100 or of truth*100 (the GURU grader's percentage
leniency: FinQA stores ``2.85%`` as ``0.0285``, and ``2.85``, ``2.85%`` and ``0.0285`` all match it).
Reading a prediction as a number: ``$``, ``\\$`` and thousands separators are dropped, ``%`` means /100,
``a:b`` is a ratio, ``\\frac{a}{b}`` a quotient, and plain arithmetic (``+ - * / **``, parentheses) is
evaluated (safely, without ``eval``); ``(12)`` is 12, not an accounting -12. A prediction that is no
number matches when its normalised text equals the truth's (spaces, ``\\text{}`` wrappers, ``\\$``,
``\\%``, a unit written as ``\\text{ million}`` after the value and a short ``x =`` prefix removed).

Reference: GURU's table scorer (Reasoning360 ``verl/utils/reward_score/tablereason.py`` with
``prime_math.grader.math_equal``). Written decisions where rlpipe differs:

- ``tabular.refuse-hedge``: for a single ground truth the reference evaluates ``12 | 13`` as Python's
  bitwise or (= 13) and pays it; rlpipe scores several ``|``-separated answers to a one-answer question 0.
- ``tabular.strict-thousands``: the reference deletes every comma, so ``\\boxed{3,4}`` equals 34;
  rlpipe drops only real thousands separators (``1,234``); other commas make the answer a non-number.
- ``tabular.unwrap-text``: the reference keeps a single-backslash ``\\text{}`` wrapper, so
  ``\\boxed{\\text{2,000}}`` or ``\\boxed{\\text{Revenue}}`` never match; rlpipe unwraps it.
- ``tabular.answer-after-think``: a response with an unclosed ``<think>`` was cut off mid-reasoning: rlpipe
  gives it no answer (the reference grades the last box anywhere in it).
- ``tabular.frac-value``: rlpipe evaluates ``\\frac{3}{4}`` to 0.75; the reference compares it as text
  and matches only ``0.5`` (which its normaliser rewrites to ``\\frac{1}{2}``).
- ``tabular.multi-answer-matching``: the reference pairs multi-answers after sorting both lists as
  strings, so ``$5|10`` fails against ``10|5``; rlpipe matches each truth to any distinct prediction.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from typing import Any

from rlpipe.rewards.extract import answer_region, last_boxed, strip_text_macro
from rlpipe.rewards.registry import register

_REL_TOL = 1e-3
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_TEXT_MACRO = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit|emph)\s*\{([^{}]*)\}")
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def _arith(node: ast.AST) -> float:
    """Value of a plain arithmetic expression tree; ValueError for anything else."""
    if isinstance(node, ast.Expression):
        return _arith(node.body)
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _arith(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_arith(node.left), _arith(node.right))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        base, exponent = _arith(node.left), _arith(node.right)
        if abs(exponent) > 64 or abs(base) > 1e6:
            raise ValueError("power too large")
        return float(base**exponent)
    raise ValueError("not arithmetic")


def _evaluate(text: str) -> float | None:
    if not text or len(text) > 200 or not re.fullmatch(r"[0-9eE.+\-*/() ]+", text):
        return None
    try:
        value = _arith(ast.parse(text, mode="eval"))
    except (
        SyntaxError,
        ValueError,
        TypeError,
        ZeroDivisionError,
        OverflowError,
        RecursionError,
        MemoryError,
    ):
        return None
    if isinstance(value, complex) or not math.isfinite(value):
        return None
    return value


def _unwrap(text: str) -> str:
    previous = None
    while previous != text:
        previous, text = text, _TEXT_MACRO.sub(r"\1", text)
    return text.strip()


def _prediction_number(text: str) -> float | None:
    """A predicted answer as a number: ``$``/thousands dropped, ``%`` = /100, ``a:b`` = a/b, arithmetic."""
    text = _THOUSANDS.sub("", _unwrap(text))
    if "," in text:
        return None
    text = _FRAC.sub(r"(\1)/(\2)", text)
    text = (
        text.replace("\\%", "%").replace("%", " / 100").replace("$", "").replace(":", "/").replace("\\", "")
    )
    return _evaluate(text.strip())


def _truth_number(text: str) -> float | None:
    """A ground-truth answer as a number: a leading ``$`` and a trailing ``%`` are dropped."""
    text = _THOUSANDS.sub("", text.strip())
    if "," in text:
        return None
    text = re.sub(r"^\\?\$", "", text)
    text = re.sub(r"\\?%$", "", text)
    return _evaluate(text.strip())


def _normalised_text(text: str) -> str:
    if "\\text{ " in text:  # a unit after the value, "12 \\text{ million}": dropped as in the reference
        text = text.split("\\text{ ")[0]
    text = _unwrap(text)
    for token in ("\\!", "\\left", "\\right", "\\$", "\\%", "\\\\"):
        text = text.replace(token, "")
    text = "".join(text.split())
    lhs = text.split("=")
    if len(lhs) == 2 and len(lhs[0]) <= 2:  # "x=5" -> "5"
        text = lhs[1]
    return text


def answers_match(prediction: str, truth: str) -> bool:
    """Whether one predicted answer matches one ground-truth answer (see module docstring)."""
    prediction, truth = prediction.strip().lower(), truth.strip().lower()
    predicted = _prediction_number(prediction)
    if predicted is not None:
        expected = _truth_number(truth)
        if expected is None:
            return False
        return any(
            math.isclose(predicted, candidate, rel_tol=_REL_TOL)
            for candidate in (expected, expected / 100, expected * 100)
        )
    normalised = _normalised_text(truth)
    return bool(normalised) and _normalised_text(prediction) == normalised


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split("|")]


@register("tabular")
def tabular_score(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the ``|``-separated answers in the last ``\\boxed{}`` (else the region) match the truth's.

    Decisions (see the module docstring): ``tabular.refuse-hedge``, ``tabular.strict-thousands``,
    ``tabular.unwrap-text``, ``tabular.answer-after-think``, ``tabular.frac-value``,
    ``tabular.multi-answer-matching``.
    """
    region = answer_region(response)
    if region is None:
        return 0.0
    boxed = last_boxed(region)
    prediction = strip_text_macro(boxed if boxed is not None else region)
    truth_text = str(ground_truth)
    truth_boxed = last_boxed(truth_text)
    truths = _split(truth_boxed or truth_text)
    preds = _split(prediction)
    if not any(truths) or len(preds) != len(truths):
        return 0.0
    remaining = list(preds)
    for truth in truths:
        hit = next((i for i, p in enumerate(remaining) if answers_match(p, truth)), None)
        if hit is None:
            return 0.0
        remaining.pop(hit)
    return 1.0
