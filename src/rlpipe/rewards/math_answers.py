"""Math scorers (AIME, MATH500, AMC, GSM8K): the boxed final answer after ``</think>``.

``math``: 1 when the boxed answer of the answer region (see ``extract.answer_region``) is equivalent to
the ground truth. The boxed answer is the last complete ``\\boxed{...}`` together with the boxes joined
to it by a comma, "and" or "or" (``extract.last_box_group``): ``$x = \\boxed{2}$ or $x = \\boxed{3}$`` is
the answer ``2, 3``, and pairs boxed one by one are a list of pairs. Boxes that repeat one answer in other
forms count once; boxes that differ are one list, which a set-valued ground truth may equal and a
single-valued one never does. The reference is ``math-verify`` (a hard dependency, PyPI ``math-verify``):
``verify(parse(f"${truth}$"), parse(f"${answer}$"))``, gold first, the answer parsed as LaTeX only (as
math-verify reads a ``\\boxed{}``: its plain-text extraction would find the 5 in
``\\text{not 4 but 5}``), both on one line (its inline ``$...$`` stops at a line break). The ``$``
delimiters matter: ``parse`` reads LaTeX only inside math delimiters or ``\\boxed{}``, so bare
``\\sqrt{8}`` parses to nothing. Two cheap checks may say "equal" first (math-verify agrees with them
on the parity table; on answers it cannot parse, such as identical free text, they are what finds the
match):

1. normalised strings equal (``\\left``/``\\right``, ``\\dfrac``, ``^\\circ``, ``\\text{}`` units,
   a leading ``x =`` unless both sides name different variables, trailing ``.``, ``$``; whitespace goes
   except between two digits: ``3 5`` is not 35 and ``1 000`` not 1000, as for math-verify);
2. both parse as plain numbers (ints, decimals, ``a/b``, ``\\frac{a}{b}``; no ``1.5e3``, which
   math-verify reads as 1.5 * e * 3) and are exactly equal. Thousands separators (``1,234``,
   ``1{,}234``, ``10\\,000``) are read only in an answer that is one such number: ``3, 500`` (comma and
   space) and ``3,5`` are two numbers and never 3500 or 35.

Everything else, "not equal" verdicts included, is math-verify's: it rounds floats to 6 decimals
(``\\frac{1}{3}`` = ``0.333333``), reads ``25\\%`` as 25 or 0.25, and compares sets, intervals, matrices,
polynomials and equations symbolically. When math-verify raises or hits its time limit the verdict
is "not equal" (unless a cheap check said equal). Its signal-based time limit only works in the main
thread; elsewhere it runs without one, so there inputs that can explode (power towers, 4+-digit
exponents or factorials, > 400 chars) are "not equal" without calling it.
tests/rewards/test_math_equivalence.py holds the equivalence table against math-verify's own verdicts;
tests/rewards/parity/cases/{math_verify,guru_math}.jsonl the whole scorer against math-verify and the
GURU (Reasoning360) math reward.

Written decisions (where rlpipe differs from those references on purpose):

- ``math.boxed-answer-only``: only a boxed answer is graded; a response with no complete box after
  ``</think>`` scores 0 even when its text says the right answer (math-verify extracts "the final answer
  is 42" from prose, the GURU reward compares the whole text), and a box is graded even when a later
  sentence states another answer.
- ``math.answer-after-think``: only the text after the last ``</think>`` is graded; a box inside the
  reasoning, or anywhere in a response whose ``<think>`` never closed, is no answer (math-verify reads the
  whole response, the GURU reward all of it when ``</think>`` is missing).
- ``math.last-box-group``: the answer is the last box with the boxes joined to it (above); earlier boxes
  followed by other words are superseded. math-verify joins every bare ``\\boxed{}`` of a response, or of
  one math environment, into one set (``\\boxed{7}. Hmm, no: \\boxed{8}`` is {7, 8}); the GURU reward
  grades the last box alone (a set boxed one element at a time scores 0 there).
- ``math.refuse-hedge``: several candidates for a single-valued answer are wrong, in boxes joined by
  "or" (``$\\boxed{7}$ or $\\boxed{8}$``) or in one box (``\\boxed{5 \\text{ or } 6}``); the GURU reward
  grades the last box and strips "or".
- ``math.strict-equivalence``: no answer merely close to the truth: no relative 1e-4 tolerance
  (10001 is not 10000), no multiplying or dividing by 100 (0.4 is not 40), no dropped interval brackets
  (``[1, 5]`` is not ``[1, 5)``), no dropped digit separators (``3 5``, ``3,5`` are not 35), all of which
  the GURU reward accepts.
- ``math.symbolic-equivalence``: equivalent forms are equal (``\\frac{2}{4}`` = ``\\frac12``, sets in
  another order, ``1.5\\times 10^3`` = 1500, ``30°``, matrices with decimals); the GURU reward's symbolic
  step never succeeds (it uses a timeout decorator as a context manager, its ``\\pi`` branch passes a
  misspelt argument) and it refuses unreduced fractions.
- ``math.thin-space-thousands``: ``10\\,000`` (LaTeX thin space as the thousands separator) is 10000;
  math-verify reads it as 10 + 000.

The ground truth may itself be wrapped in ``\\boxed{}`` (several boxes are read as the answer above), be
a GSM8K solution ending in ``#### 42``, or be a list of acceptable answers (any one matches).

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

from rlpipe.rewards.extract import answer_region, last_box_group, last_boxed, strip_text_macro
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


@cache
def _latex_only() -> list[Any]:
    """math-verify's extraction for a boxed answer: LaTeX only, as math-verify reads a ``\\boxed{}``
    (its plain-text extraction would find a number in ``\\text{not 4 but 5}`` or in prose)."""
    from math_verify import LatexExtractionConfig

    return [LatexExtractionConfig()]


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
    group = last_box_group(text)
    if not group:
        return text
    return ", ".join(box for box in group if box) if len(group) > 1 else group[0]


_REPLACEMENTS = [
    (r"\\left|\\right|\\!|\\displaystyle", ""),
    (r"\\[;: ]", " "),
    (r"\\[dt]frac", r"\\frac"),
    (r"\^\s*\{?\\circ\}?|°", ""),
    (r"\\%|%", ""),
    (r"\\\$|\$", ""),
]
# One number written with thousands separators, and nothing else: "1,234", "1{,}234", "10\,000", "-1,000.5".
# Only a whole answer: in "3, 500" (comma AND space) or "(1,234)" the commas separate elements.
_GROUPED = re.compile(r"\s*[-+]?\d{1,3}(?:(?:,|\{,\}|\\,)\d{3})+(?:\.\d+)?\s*\.?\s*")
_SEPARATOR = re.compile(r",|\{,\}|\\,")


def _normalize(text: str) -> tuple[str | None, str]:
    """``(variable, canonical form)``: ``"x = 5"`` -> ``("x", "5")``, ``"5"`` -> ``(None, "5")``.

    Whitespace (and LaTeX spacing such as ``\\,``) goes, except between two digits, where it stays one
    space: ``"1 000"`` and ``"3 5"`` are not the numbers 1000 and 35 (math-verify reads neither so).
    Thousands separators are removed only from an answer that is one grouped number (``_GROUPED``), so
    ``"3, 500"`` stays two numbers and never equals ``3500``.
    """
    text = strip_text_macro(text.strip())
    text = re.sub(r"\\text\{\s*([^{}]*)\}", r"\1", text)
    for pattern, repl in _REPLACEMENTS:
        text = re.sub(pattern, repl, text)
    if _GROUPED.fullmatch(text):
        text = _SEPARATOR.sub("", text)
    text = re.sub(r"\\,", " ", text)
    text = re.sub(r"(?<=\d)\s+(?=\d)", "\x00", text)
    text = re.sub(r"\s+", "", text).replace("\x00", " ")
    variable = None
    if text.count("=") == 1 and (match := re.match(r"([a-zA-Z])\s*=", text)):
        variable, text = match.group(1), text[match.end() :]
    text = text.rstrip(".")
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


_DOLLAR = re.compile(r"(?<!\\)\$")
_NESTED_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")


def _math_verify_equal(prediction: str, truth: str) -> bool:
    functions = _math_verify()
    mv_parse, mv_verify = functions
    main = threading.current_thread() is threading.main_thread()
    if not main and (_explosive(prediction) or _explosive(truth)):
        return False  # no signal-based time limit outside the main thread: do not risk a hang
    timeout = _MV_TIMEOUT_S if main else None
    try:
        # one line: math-verify's inline $...$ stops at a line break (a multi-line matrix read as nothing);
        # no $ inside (it would end the $...$ early and let a formula inside prose be read alone); no box
        # nested in the answer (math-verify would read that box alone, without the words around it)
        truth, prediction = (" ".join(_DOLLAR.sub("", text).split()) for text in (truth, prediction))
        prediction = _NESTED_BOX.sub("{", prediction)
        gold = mv_parse(f"${truth}$", parsing_timeout=timeout)
        pred = mv_parse(f"${prediction}$", extraction_config=_latex_only(), parsing_timeout=timeout)
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


def _box_answer(boxes: list[str]) -> str | None:
    """The one answer a group of boxes (``extract.last_box_group``) gives: the box, the same answer boxed
    again in another form (``\\boxed{0.5}``, ``\\boxed{\\frac12}``), or else all of them as one list
    (``\\boxed{2}`` and ``\\boxed{3}`` -> ``2, 3``), which a set-valued ground truth may equal and a
    single-valued one never does (a hedge between boxed candidates is wrong, as math-verify says).
    None when no box holds anything (an empty ``\\boxed{}`` adds nothing)."""
    distinct: dict[str, str] = {}
    for box in boxes:
        if box.strip():
            distinct.setdefault(normalize_math(box), box)
    answers = list(distinct.values())
    if not answers:
        return None
    last = answers[-1]
    if len(answers) == 1 or all(math_equal(box, last) for box in answers[:-1]):
        return last
    return ", ".join(answers)


@register("math")
def math_score(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the boxed answer after ``</think>`` (all its distinct boxes together) is equivalent to the
    ground truth."""
    region = answer_region(response)
    if region is None:
        return 0.0
    prediction = _box_answer(last_box_group(region))
    if prediction is None:
        return 0.0
    if hasattr(ground_truth, "tolist"):
        ground_truth = ground_truth.tolist()
    truths = ground_truth if isinstance(ground_truth, list | tuple) else [ground_truth]
    return float(any(math_equal(prediction, _gt_text(t)) for t in truths))


_HASHES = re.compile(r"####\s*([-+$]?\s*[\d,]*\.?\d+)")


@register("gsm8k")
def gsm8k_score(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the last ``\\boxed{}`` (else the last ``#### N``) equals the GSM8K answer numerically.

    A GSM8K answer is one number: boxes joined to the last one (``\\boxed{7} or \\boxed{8}``, see
    ``extract.last_box_group``) that hold different values are a hedge and score 0 (``math.refuse-hedge``).
    """
    region = answer_region(response)
    if region is None:
        return 0.0
    group = last_box_group(region)
    if len({normalize_math(box) for box in group}) > 1:
        return 0.0
    prediction = group[-1] if group else last_boxed(region)
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
