"""Responses that must never earn reward, and the check that scores them ("reward for nothing").

A reward that pays an empty answer, a hedge or a copy of the question is a reward a policy learns to
hack, and it does so silently: the curve goes up, the model gets worse. Reference scorers have done
exactly this (open-r1 PR #566 paid 1 when the gold answer could not be parsed). Before training, the
pre-flight job scores these responses on real training rows with the run's own scorers and fails when
any of them earns reward (``rlpipe.train.preflight``).

The kinds:

- ``empty``: the empty response.
- ``copied_prompt``: the question itself, word for word.
- ``hedge``: a wrong answer and the right one offered together in every answer slot the scorers read
  (``\\boxed{}``, ``<answer>``, ``Answer:``, the final line). Built only for scalar ground truths
  (not for lists or records, nor JSON text holding one).
- ``all_options``: every option letter A-J at once, for multiple-choice ground truths.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction
from typing import Any

from rlpipe.rewards.extract import last_boxed

KINDS = ("empty", "copied_prompt", "hedge", "all_options")

_LETTER = re.compile(r"^\(?\s*([A-J])\s*\)?$")
_LETTERS = "ABCDEFGHIJ"


def _shown_truth(ground_truth: Any) -> str | None:
    """The answer as a model writes it: a solution's last box or its part after ``####``; None: no scalar."""
    if isinstance(ground_truth, bool) or not isinstance(ground_truth, str | int | float):
        return None
    text = str(ground_truth).strip()
    if text[:1] in "[{" and _is_json(text):  # a list or record (IFEval kwargs, code tests): no one answer
        return None
    if "\\boxed" in text:  # a worked solution as the truth (MATH): its boxed answer
        text = (last_boxed(text) or "").strip()
    elif "####" in text:
        text = text.rsplit("####", 1)[1].strip()
    return text or None


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _wrong_alternative(truth: str) -> str:
    """An answer that differs from ``truth``: the next number, the next letter, or a fixed word."""
    try:
        return str(Fraction(truth.replace(",", "")) + 1)
    except (ValueError, ZeroDivisionError):
        pass
    letter = _LETTER.match(truth)
    if letter:
        return _LETTERS[(_LETTERS.index(letter.group(1)) + 1) % len(_LETTERS)]
    return "none of the above"


def degenerate_responses(prompt: str, ground_truth: Any) -> dict[str, str]:
    """The degenerate responses for one training row, by kind (kinds that do not apply are left out)."""
    out = {"empty": "", "copied_prompt": prompt}
    truth = _shown_truth(ground_truth)
    if truth is None:
        return out
    letter = _LETTER.match(truth)
    if letter:
        truth = letter.group(1)
    wrong = _wrong_alternative(truth)
    both = f"{wrong} or {truth}"
    out["hedge"] = (
        f"I am not sure: it is either {wrong} or {truth}.\n"
        f"<answer>{both}</answer>\nAnswer: {both}\n\\boxed{{{wrong}, {truth}}}\n{both}"
    )
    if letter:
        letters = " ".join(_LETTERS)
        out["all_options"] = (
            f"Each option could be right.\n<answer>{letters}</answer>\n"
            f"Answer: {letters}\n\\boxed{{{letters}}}\n{letters}"
        )
    return out


def reward_for_nothing(
    rows: Iterable[Mapping[str, Any]],
    score: Callable[[str, str, Any, dict | None], float],
    *,
    per_scorer: int = 3,
) -> tuple[int, list[dict[str, Any]]]:
    """Score every degenerate response on up to ``per_scorer`` rows of each scorer.

    ``rows`` are training rows (``prompt`` as chat messages, ``ground_truth``, ``scorer``, optional
    ``extra_info``/``task``); ``score`` is ``rlpipe.rewards.score``. Returns how many responses were
    scored and one finding per response that earned reward (scorer, kind, task, score, response).
    """
    seen: dict[str, int] = {}
    checked, findings = 0, []
    for row in rows:
        scorer = str(row["scorer"])
        if seen.get(scorer, 0) >= per_scorer:
            continue
        seen[scorer] = seen.get(scorer, 0) + 1
        prompt = row["prompt"][-1]["content"] if isinstance(row["prompt"], list) else str(row["prompt"])
        for kind, response in degenerate_responses(prompt, row["ground_truth"]).items():
            checked += 1
            value = float(score(scorer, response, row["ground_truth"], row.get("extra_info")))
            if value > 0.0:
                findings.append(
                    {
                        "scorer": scorer,
                        "kind": kind,
                        "task": row.get("task"),
                        "score": value,
                        "response": response[:300],
                    }
                )
    return checked, findings
