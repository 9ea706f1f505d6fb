"""MuSiQue (multi-hop QA) scorers: SQuAD-style exact match and token F1.

The predicted answer is the last ``<answer>...</answer>`` block of the answer region, else the last
``\\boxed{}``, else the whole answer region. Normalisation (SQuAD): lower-case, drop punctuation, drop
the articles a/an/the, collapse whitespace. The ground truth is one string or a list of acceptable
strings (answer + aliases); the best alias counts.

``musique_em``: 1 when the normalised prediction equals a normalised ground truth.
``musique_f1``: the best token-level F1 (bag of tokens) over the ground truths, in [0, 1].
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Any

from rlpipe.rewards.extract import answer_region, last_answer_tag, last_boxed, strip_text_macro
from rlpipe.rewards.registry import register

_PUNCT = set(string.punctuation)


def squad_normalize(text: str) -> str:
    """Lower-case, strip punctuation and articles, collapse whitespace (SQuAD's evaluation rule)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _truths(ground_truth: Any) -> list[str]:
    if isinstance(ground_truth, str):
        return [ground_truth]
    if isinstance(ground_truth, dict):
        values = [ground_truth.get("answer", "")]
        values += list(ground_truth.get("answer_aliases", []) or [])
        return [str(v) for v in values if v is not None]
    try:
        return [str(v) for v in ground_truth]
    except TypeError:
        return [str(ground_truth)]


def extract_short_answer(response: str) -> str | None:
    """The answer span the scorers compare (see module docstring); None when there is no answer region."""
    region = answer_region(response)
    if region is None:
        return None
    tagged = last_answer_tag(region)
    if tagged is not None:
        return tagged
    boxed = last_boxed(region)
    if boxed is not None:
        return strip_text_macro(boxed)
    return region.strip()


def token_f1(prediction: str, truth: str) -> float:
    """Token-level F1 between normalised strings (both empty counts as a match)."""
    p, t = squad_normalize(prediction).split(), squad_normalize(truth).split()
    if not p or not t:
        return float(p == t)
    common = sum((Counter(p) & Counter(t)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(t)
    return 2 * precision * recall / (precision + recall)


@register("musique_em")
def musique_em(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the normalised answer equals one normalised ground truth."""
    answer = extract_short_answer(response)
    if answer is None:
        return 0.0
    norm = squad_normalize(answer)
    return float(any(norm == squad_normalize(t) for t in _truths(ground_truth)))


@register("musique_f1")
def musique_f1(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """Best token F1 of the answer against the ground truths."""
    answer = extract_short_answer(response)
    if answer is None:
        return 0.0
    return max((token_f1(answer, t) for t in _truths(ground_truth)), default=0.0)
