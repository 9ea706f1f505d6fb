"""Math scorers (AIME, MATH500, AMC, GSM8K): the final answer of the last ``\\boxed{}`` after ``</think>``.

``math``: 1 when the last complete ``\\boxed{...}`` of the answer region (see ``extract.answer_region``)
is equivalent to the ground truth. The reference is ``math-verify`` (a hard dependency, PyPI
``math-verify``): ``verify(parse(f"${truth}$"), parse(f"${answer}$"))``, gold first. The ``$`` delimiters
matter: ``parse`` reads LaTeX only inside math delimiters or ``\\boxed{}``, so bare ``\\sqrt{8}`` parses to
nothing. Two cheap checks may say "equal" first (math-verify agrees with them on the parity table;
on answers it cannot parse, such as identical free text, they are what finds the match):

1. normalised strings equal (spacing, ``\\left``/``\\right``, ``\\dfrac``, ``^\\circ``, ``\\text{}``
   units, a leading ``x =`` unless both sides name different variables, trailing ``.``, ``$``);
2. both parse as plain numbers (ints, decimals, ``a/b``, ``\\frac{a}{b}``, thousands separators; no
   ``1.5e3``, which math-verify reads as 1.5 * e * 3) and are exactly equal.

Everything else, "not equal" verdicts included, is math-verify's: it rounds floats to 6 decimals
(``\\frac{1}{3}`` = ``0.333333``), reads ``25\\%`` as 25 or 0.25, and compares sets, intervals, matrices,
polynomials and equations symbolically. When math-verify raises or hits its time limit the verdict
is "not equal" (unless a cheap check said equal). Its signal-based time limit only works in the main
thread; elsewhere it runs without one, so there inputs that can explode (power towers, 4+-digit
exponents or factorials, > 400 chars) are "not equal" without calling it.
tests/rewards/test_math_equivalence.py holds the parity table against math-verify's own verdicts.

The ground truth may itself be wrapped in ``\\boxed{}``, be a GSM8K solution ending in ``#### 42``, or be a
list of acceptable answers (any one matches).

``gsm8k``: the prediction is the last ``\\boxed{}``, else the number after the last ``####``; compared
numerically (no "last number in the text" fallback: it rewards answers that merely mention the number).
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
from collections.abc import Callable
from fractions import Fraction
from functools import cache
from typing import Any

from rlpipe.rewards.extract import answer_region, last_boxed, strip_text_macro
from rlpipe.rewards.registry import register

log = logging.getLogger(__name__)


_MISSING = (
    "rlpipe's math scorer needs math-verify (a dependency of rlpipe), which is not installed: "
    "pip install 'math-verify>=0.9,<0.10' (or reinstall rlpipe: pip install -e .)"
)
# Fail when the scorers are imported, not at the first reward: without math-verify the verdicts would
# silently change (equivalent answers scored 0). The import itself waits for the first use (_math_verify).
if importlib.util.find_spec("math_verify") is None:
    raise ImportError(_MISSING)


@cache
def _math_verify() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``(parse, verify)`` of ``math-verify``, imported on first use (it pulls in sympy, ~0.4 s)."""
    from math_verify import parse, verify

    return parse, verify


_MV_TIMEOUT_S = 5


class _NoTimeoutNotice(logging.Filter):
    """Drop math-verify's per-call notice that its timeout is disabled (expected in worker threads)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_NoTimeoutNotice())


def _gt_text(ground_truth: Any) -> str:
    text = str(ground_truth).strip()
    if "####" in text:
        text = text.rsplit("####", 1)[1].strip()
    boxed = last_boxed(text)
    return boxed if boxed is not None else text


_REPLACEMENTS = [
    (r"\\left|\\right|\\!|\\,|\\;|\\:|\\ |\\displaystyle", ""),
    (r"\\[dt]frac", r"\\frac"),
    (r"\^\s*\{?\\circ\}?|°", ""),
    (r"\\%|%", ""),
    (r"\\\$|\$", ""),
    (r"\s+", ""),
]


def _normalize(text: str) -> tuple[str | None, str]:
    """``(variable, canonical form)``: ``"x = 5"`` -> ``("x", "5")``, ``"5"`` -> ``(None, "5")``."""
    text = strip_text_macro(text.strip())
    text = re.sub(r"\\text\{\s*([^{}]*)\}", r"\1", text)
    for pattern, repl in _REPLACEMENTS:
        text = re.sub(pattern, repl, text)
    variable = None
    if text.count("=") == 1 and (match := re.match(r"([a-zA-Z])\s*=", text)):
        variable, text = match.group(1), text[match.end() :]
    text = text.rstrip(".")
    text = re.sub(r"(\d),(\d{3})(?!\d)", r"\1\2", text)
    if re.fullmatch(r"-?\d+\.0+", text):
        text = text.split(".")[0]
    return variable, text


def normalize_math(text: str) -> str:
    """A canonical string form of a math answer (used for the cheap equality check)."""
    return _normalize(text)[1]


def to_number(text: str, exponent: bool = True) -> Fraction | None:
    """Parse a plain number (int, decimal, ``a/b``, ``\\frac{a}{b}``, and ``1.5e3`` when ``exponent``);
    None for anything else."""
    text = normalize_math(text)
    frac = re.fullmatch(r"(-?)\\frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}", text) or re.fullmatch(
        r"(-?)\\frac(\d)(\d)", text
    )
    try:
        if frac:
            value = Fraction(frac.group(2)) / Fraction(frac.group(3))
            return -value if frac.group(1) else value
        if re.fullmatch(r"-?\d+(\.\d+)?/-?\d+(\.\d+)?", text):
            num, den = text.split("/")
            return Fraction(num) / Fraction(den)
        if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)" + (r"(e[-+]?\d+)?" if exponent else ""), text):
            return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    return None


_EXPLOSIVE = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\{?\s*\d{4,}|\d{4,}\s*!|!\s*!")


def _explosive(text: str) -> bool:
    """Inputs that can make sympy run (nearly) forever: towers, huge powers/factorials, very long text."""
    return len(text) > 400 or bool(_EXPLOSIVE.search(text))


def _math_verify_equal(prediction: str, truth: str) -> bool:
    functions = _math_verify()
    mv_parse, mv_verify = functions
    main = threading.current_thread() is threading.main_thread()
    if not main and (_explosive(prediction) or _explosive(truth)):
        return False  # no signal-based time limit outside the main thread: do not risk a hang
    timeout = _MV_TIMEOUT_S if main else None
    try:
        gold = mv_parse(f"${truth}$", parsing_timeout=timeout)
        pred = mv_parse(f"${prediction}$", parsing_timeout=timeout)
        if not gold or not pred:
            return False
        return bool(mv_verify(gold, pred, timeout_seconds=timeout))
    except Exception as exc:  # noqa: BLE001 - includes its TimeoutException: fall back, never raise
        log.debug("math-verify failed on %r vs %r: %s", prediction, truth, exc)
        return False


def math_equal(prediction: str, truth: str) -> bool:
    """Whether two final answers are the same mathematical object (see module docstring)."""
    (pred_var, pred), (truth_var, gold) = _normalize(prediction), _normalize(truth)
    # "x = 5" is the answer 5, but "y = 5" is not "x = 5" (math-verify compares the equations).
    if pred_var is None or truth_var is None or pred_var == truth_var:
        if pred == gold:
            return True
        a, b = to_number(prediction, exponent=False), to_number(truth, exponent=False)
        if a is not None and a == b:
            return True
    # Unequal plain numbers still go to math-verify: 1/3 = 0.333333 (6-decimal rounding), 25% = 0.25.
    return _math_verify_equal(prediction, truth)


@register("math")
def math_score(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the last ``\\boxed{}`` after ``</think>`` is equivalent to the ground truth."""
    region = answer_region(response)
    if region is None:
        return 0.0
    prediction = last_boxed(region)
    if prediction is None or not prediction.strip():
        return 0.0
    if hasattr(ground_truth, "tolist"):
        ground_truth = ground_truth.tolist()
    truths = ground_truth if isinstance(ground_truth, list | tuple) else [ground_truth]
    return float(any(math_equal(prediction, _gt_text(t)) for t in truths))


_HASHES = re.compile(r"####\s*([-+$]?\s*[\d,]*\.?\d+)")


@register("gsm8k")
def gsm8k_score(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the last ``\\boxed{}`` (else the last ``#### N``) equals the GSM8K answer numerically."""
    region = answer_region(response)
    if region is None:
        return 0.0
    prediction = last_boxed(region)
    if prediction is None:
        found = _HASHES.findall(region)
        if not found:
            return 0.0
        prediction = found[-1].replace("$", "").replace(" ", "")
    truth = to_number(_gt_text(ground_truth))
    value = to_number(prediction)
    if truth is None or value is None:
        return float(normalize_math(prediction) == normalize_math(_gt_text(ground_truth)))
    return float(value == truth)
