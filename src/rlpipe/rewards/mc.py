"""Multiple-choice scorer (GPQA-diamond, SuperGPQA): one option letter A-J.

``mc``: the predicted letter is read from the answer region (the text after the last ``</think>``; an
unclosed ``<think>`` has no answer; text after an end-of-sequence token such as ``</s>`` is cut off).
The last ``\\boxed{}`` decides when there is one: ``B``, ``(B)``, ``\\text{B}``, ``B. some text``,
``B) text``, ``Option B``, a lone ``b``. Without a box, the last committed phrase decides:
``Answer: B``, ``the answer is (B)``, ``my choice is C``, ``I think C is correct``, ``option A is the
best choice``, ``I'll go with D``, ``the correct option is (B)``. An answer naming several letters
(``A B C D``, ``A or B``) commits to none. The ground truth is a letter,
optionally in parentheses or ``\\boxed{}``.

The reference is GURU's SuperGPQA scorer (Reasoning360 ``verl/utils/reward_score/supergpqa.py``, used
for both ``stem__gpqa*`` and ``stem__supergpqa``). Written decisions where rlpipe differs:

- ``mc.no-random-fallback``: when the reference extracts nothing (no box, no ``Final Answer:`` line)
  it scores a RANDOM letter, so its score is noise. rlpipe is deterministic: it reads a committed
  letter from ordinary phrasing, else scores 0.
- ``mc.refuse-hedge``: the reference takes the alphabetically first option letter found anywhere in
  the box, so ``\\boxed{A B C D}``, ``\\boxed{A or B}`` or ``\\boxed{B, C}`` earn reward whenever the
  truth is the first listed letter. rlpipe scores an answer that names several letters 0.
- ``mc.leading-letter``: the reference takes the alphabetically first capital A-J anywhere in the box,
  inside words and option text included (``\\boxed{Carbon}`` -> C, ``\\boxed{D. Electron Affinity}`` ->
  A, ``\\boxed{B) Both A and C}`` -> A). rlpipe reads the standalone letter the box starts with.
- ``mc.refuse-copied-prompt``: GURU's GPQA/SuperGPQA prompts end "Only put the letter in the box, e.g.
  \\boxed{A}.", so the reference pays a response that copies the prompt whenever the truth is A. rlpipe
  ignores a box given as an example (after "e.g.", "for example", "such as").
- ``mc.answer-after-think``: the reference reads the last box anywhere, reasoning included; rlpipe only
  grades the text after ``</think>`` (a box inside the reasoning, or in an unclosed ``<think>``, is not
  an answer), where a later ``Answer: X`` phrase also counts.
"""

from __future__ import annotations

import re
from typing import Any

from rlpipe.rewards.extract import answer_region, last_boxed, strip_text_macro
from rlpipe.rewards.registry import register

_LETTERS = "ABCDEFGHIJ"
# A standalone upper-case option letter (never the inside of a word such as "Carbon" or "C2H6").
_L = r"\(?\s*((?-i:[A-J]))\s*\)?(?![A-Za-z0-9'-])"
_BOXED_LETTER = re.compile(
    r"^(?:option\s*|choice\s*)?\(?\s*((?-i:[A-J]))\s*\)?(.*)$", re.IGNORECASE | re.DOTALL
)
# Another letter right after the chosen one ("A B", "A or B", "A, B", "A/B", "A and B"): a hedge.
_HEDGE_TAIL = re.compile(
    r"^[ \t]*(?:,|/|&|\bor\b|\band\b|\bvs\.?)?[ \t]*\(?(?-i:[A-J])\)?(?![A-Za-z0-9'])", re.IGNORECASE
)
_VERB = r"(?:is|would\s+be|will\s+be|should\s+be|must\s+be|=|:)"
_PREFIX = r"\s*[:*]*\s*(?:option\s*|choice\s*)?\**\s*"
_PHRASES = [
    # "Answer: C", "the answer is (C)", "Final answer: **C**", "correct answer would be option C"
    re.compile(r"\banswer\s*" + _VERB + "?" + _PREFIX + _L, re.IGNORECASE),
    # "my choice is C", "the correct option is (B)", "best choice: D"
    re.compile(r"\b(?:choice|option|pick|selection)\s*" + _VERB + _PREFIX + _L, re.IGNORECASE),
    # "I choose C", "I'll go with option B", "I select (D)", "I would pick A"
    re.compile(
        r"\b(?:choose|chose|select|pick|go\s+with|going\s+with|opt\s+for)\s+" + _PREFIX + _L, re.IGNORECASE
    ),
    # "C is correct", "option A is the best choice", "(B) is the right answer", "D is the answer"
    re.compile(
        r"(?<![A-Za-z0-9])(?:option\s*|choice\s*)?\**\(?((?-i:[A-J]))\)?\**\s+(?:is|seems|appears)\s+"
        r"(?:to\s+be\s+)?(?:the\s+)?(?:most\s+)?(?:correct|right|best|answer\b)",
        re.IGNORECASE,
    ),
]


def _boxed_letter(content: str) -> str | None:
    """The letter a box commits to: ``C``, ``(C)``, ``C. text``, ``Option C``; None for words and hedges."""
    content = strip_text_macro(content).strip()
    lone = re.fullmatch(r"\(?([a-j])\)?\.?", content)  # \boxed{c}: a lone lower-case letter
    if lone:
        return lone.group(1).upper()
    match = _BOXED_LETTER.match(content)
    if not match:
        return None
    rest = match.group(2)
    if rest[:1].isalnum() or rest[:1] == "'" or _HEDGE_TAIL.match(rest):
        return None
    return match.group(1)


_PRONOUN_I = re.compile(
    r"\s+(?:think|believe|guess|am|was|would|will|can|could|must|should|feel|have|need)\b|'"
)
_STOP_TOKENS = ("</s>", "<|im_end|>", "<|endoftext|>")
# A box given as an example in an instruction ("Only put the letter in the box, e.g. \\boxed{A}."), as a
# response that copies the prompt contains it: not an answer.
_EXAMPLE_BOX = re.compile(
    r"(?:e\.\s?g\.|for\s+example|for\s+instance|such\s+as)\s*[:,]?\s*\$?\\boxed\s*\{[^{}]*\}", re.IGNORECASE
)


def extract_letter(response: str) -> str | None:
    """The chosen option letter, or None when the response commits to none (or to several)."""
    if not isinstance(response, str):
        return None
    for stop in _STOP_TOKENS:  # generation ends at an end-of-sequence token; text after it is not read
        response = response.split(stop, 1)[0]
    region = answer_region(response)
    if region is None:
        return None
    region = _EXAMPLE_BOX.sub(" ", region)
    boxed = last_boxed(region)
    if boxed is not None:
        return _boxed_letter(boxed)
    last: tuple[int, str, int] | None = None
    for pattern in _PHRASES:
        for match in pattern.finditer(region):
            if match.group(1) == "I" and _PRONOUN_I.match(region, match.end(1)):
                continue  # "my answer: I think it is B": the pronoun, not option I
            if last is None or match.start(1) > last[0]:
                last = (match.start(1), match.group(1), match.end())
    if last is None:
        return None
    position, letter, end = last
    tail = region[position + 1 :].lstrip(")* ")
    if _HEDGE_TAIL.match(tail) or _HEDGE_TAIL.match(region[end:]):  # "Answer: A or B", "A B C D"
        return None
    return letter


@register("mc")
def mc_score(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the extracted letter equals the ground-truth letter; deterministic, 0 if none.

    Decisions (see the module docstring): ``mc.no-random-fallback``, ``mc.refuse-hedge``,
    ``mc.leading-letter``, ``mc.refuse-copied-prompt``, ``mc.answer-after-think``.
    """
    truth = str(ground_truth).strip()
    boxed = last_boxed(truth)
    truth = (boxed if boxed is not None else truth).strip("() ").upper()
    if len(truth) != 1 or truth not in _LETTERS:
        return 0.0
    return float(extract_letter(response) == truth)
