"""IFEval scorers: prompt-level strict and loose instruction following (Zhou et al. 2023).

``ifeval_strict``: 1 when the answer region (text after the last ``</think>``) follows *every*
instruction of the prompt, else 0. ``ifeval_loose``: the same, but an instruction counts as followed
when any of eight variants of the response follows it: the response with the first line, the last
line, both or neither removed, each with and without the markdown ``*`` characters (IFEval's loose
rule).

Where the instructions come from: ``extra_info["instruction_id_list"]`` and ``extra_info["kwargs"]``
(GURU rows), or the ground truth when it is a dict with those keys (or a JSON string of one), or the
ground truth as the kwargs list with the ids in ``extra_info``. ``None``-valued kwargs (parquet fills
absent keys with nulls) are dropped; whole-number floats become ints. The prompt, when a row carries
it (``extra_info["prompt"]`` or the ground-truth dict's ``prompt``), is used only to refuse a copy of it.

Covered instruction ids: the 25 of IFEval's registry (keywords:existence, keywords:frequency,
keywords:forbidden_words, keywords:letter_frequency, language:response_language,
length_constraints:number_sentences, length_constraints:number_paragraphs,
length_constraints:number_words, length_constraints:nth_paragraph_first_word,
detectable_content:number_placeholders, detectable_content:postscript,
detectable_format:number_bullet_lists, detectable_format:constrained_response,
detectable_format:number_highlighted_sections, detectable_format:multiple_sections,
detectable_format:json_format, detectable_format:title, combination:two_responses,
combination:repeat_prompt, startend:end_checker, startend:quotation,
change_case:capital_word_frequency, change_case:english_capital, change_case:english_lowercase,
punctuation:no_comma), plus the checkers IFEval defines but leaves out of its registry, under the ids
its registry comments and its test file give them: keywords:key_sentences,
detectable_content:rephrase_paragraph, detectable_format:rephrase (= detectable_format:rephrasing),
multi-turn:constrained_start; and the test file's other names for registered checkers:
keywords:include_keywords, keywords:keyword_frequency, length_constraint:number_paragraphs,
length_constraint:number_words, detectable_format:exact_number_bullet_points,
detectable_format:minimum_number_highlighted_sections. The checkers live in
``rlpipe.rewards.ifeval_checkers`` (their docstrings give the details).

An unknown instruction id, bad kwargs, or a checker that cannot run (no language detector) count as
NOT followed and are logged (a warning each).

Approximations (documented, deterministic): IFEval counts sentences with nltk's Punkt model and
capital words with nltk's word tokenizer; rlpipe does without nltk (``count_sentences`` and
``word_tokens`` in ``ifeval_checkers`` say how). Language detection uses ``langdetect`` with a fixed
seed (IFEval leaves it unseeded).

Written decisions (where rlpipe deliberately differs from the reference, with the parity case id
prefix ``ifeval_strict.`` or ``ifeval_loose.`` for the scorer):

- ``ifeval_strict.refuse-undetectable-language`` / ``ifeval_loose.refuse-undetectable-language``: a
  text the language detector cannot classify (no letters: digits, symbols, emoji) does not follow
  ``language:response_language`` (nor ``change_case:english_*``). IFEval counts it as followed, so a
  response "12345" earns the reward of a German answer.
- ``ifeval_strict.refuse-copied-prompt`` / ``ifeval_loose.refuse-copied-prompt``: a response that is
  the prompt copied (whitespace and case aside) scores 0 when the row carries the prompt, and
  ``combination:repeat_prompt`` needs an answer after the repeated request. IFEval scores the bare
  copy 1 whenever the prompt itself happens to satisfy the instructions (it names the keywords, has no
  comma, ...).
- ``ifeval_strict.refuse-all-options`` / ``ifeval_loose.refuse-all-options``:
  ``detectable_format:constrained_response`` is followed when exactly one of the options ("My answer is
  yes.", "... no.", "... maybe.") appears; IFEval accepts a response that lists them all.
- ``ifeval_loose.rephrase-loose-variants``: for ``detectable_format:rephrase``, every loose variant is
  tried; IFEval's checker raises on the first variant without a ``*change*`` (the one with ``*``
  removed), which fails the whole prompt.
- ``ifeval_strict.refuse-no-instructions`` / ``ifeval_loose.refuse-no-instructions``: an item without
  instructions scores 0 (IFEval's ``all([])`` gives every response 1).
- ``ifeval_strict.refuse-unclosed-think`` / ``ifeval_loose.refuse-unclosed-think``: a response that
  opened ``<think>`` and never closed it was cut off mid-reasoning and scores 0; the GURU reward
  grades the whole text then, reasoning included.
- ``ifeval_strict.last-think`` / ``ifeval_loose.last-think``: with several ``</think>``, the text after
  the last one is graded (the GURU reward grades the text between the first and the second).
- ``ifeval_strict.sentence-approximation`` / ``ifeval_loose.sentence-approximation``: sentences are
  counted without nltk (``ifeval_checkers.count_sentences``); whether a single-letter initial followed
  by a capitalised word ends a sentence, Punkt decides from its statistics on that word and rlpipe
  from a short list of common words (in "Tom B. Brown and ..." Punkt ends a sentence after "B.",
  knowing "brown" as a common word; rlpipe does not). On 2,137 markdown paragraphs the two counts
  differ on 3, all of this kind.
- ``ifeval_strict.literal-keywords`` / ``ifeval_loose.literal-keywords``: keywords, forbidden words,
  section splitters, postscript markers and start phrases are literal text; IFEval hands them to
  ``re`` unescaped (``C++`` raises, scored 0; ``.`` matches any character).
"""

from __future__ import annotations

import json
import re
from typing import Any

from rlpipe.rewards.extract import answer_region
from rlpipe.rewards.ifeval_checkers import CHECKERS, warn_once
from rlpipe.rewards.registry import register

__all__ = ["CHECKERS", "follows", "ifeval_loose", "ifeval_strict", "instructions", "loose_variants"]


def _clean_kwargs(kwargs: Any) -> dict[str, Any]:
    if not isinstance(kwargs, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if value is None:
            continue
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        out[key] = value
    return out


def _sources(ground_truth: Any, extra_info: dict | None) -> dict[str, Any]:
    """``extra_info`` overlaid with the ground truth's keys when it is a dict (or a JSON string of one);
    a list ground truth is the kwargs list."""
    info = dict(extra_info or {})
    truth = ground_truth
    if isinstance(truth, str):
        try:
            truth = json.loads(truth)
        except (ValueError, RecursionError):
            truth = None
    if isinstance(truth, dict):
        keys = ("instruction_id_list", "kwargs", "prompt")
        info = {**info, **{k: truth[k] for k in keys if k in truth}}
    elif truth is not None and "kwargs" not in info and not isinstance(truth, str):
        info["kwargs"] = truth
    return info


def instructions(ground_truth: Any, extra_info: dict | None) -> list[tuple[str, dict[str, Any]]]:
    """The ``(instruction_id, kwargs)`` pairs of one prompt (see module docstring for the sources)."""
    info = _sources(ground_truth, extra_info)
    ids = info.get("instruction_id_list")
    ids = list(ids.tolist() if hasattr(ids, "tolist") else ids or [])
    kwargs = info.get("kwargs")
    kwargs = list(kwargs.tolist() if hasattr(kwargs, "tolist") else kwargs or [])
    kwargs += [{}] * (len(ids) - len(kwargs))
    return [(str(i), _clean_kwargs(k)) for i, k in zip(ids, kwargs, strict=False)]


def _normalised(text: str) -> str:
    return " ".join(text.split()).lower()


def follows(response: str, instruction_id: str, kwargs: dict[str, Any]) -> bool:
    """Whether ``response`` follows one instruction; unknown ids and bad kwargs count as not followed."""
    checker = CHECKERS.get(instruction_id)
    if checker is None:
        warn_once(
            instruction_id, f"ifeval: unknown instruction id {instruction_id!r}; counted as not followed"
        )
        return False
    if not response.strip():
        return False
    try:
        return bool(checker(response, kwargs))
    except (KeyError, ValueError, TypeError, re.error) as exc:
        warn_once(f"kw:{instruction_id}", f"ifeval: bad kwargs for {instruction_id}: {exc!r}")
        return False


def loose_variants(response: str) -> list[str]:
    """IFEval's loose variants: drop first/last line, and/or remove ``*``."""
    lines = response.split("\n")
    bases = [
        response,
        "\n".join(lines[1:]).strip(),
        "\n".join(lines[:-1]).strip(),
        "\n".join(lines[1:-1]).strip(),
    ]
    out: list[str] = []
    for base in bases:
        for variant in (base, base.replace("*", "")):
            if variant.strip() and variant not in out:
                out.append(variant)
    return out


def _prompt_level(response: str, ground_truth: Any, extra_info: dict | None, loose: bool) -> float:
    region = answer_region(response)
    pairs = instructions(ground_truth, extra_info)
    if not pairs:
        warn_once("no-instructions", "ifeval: item without instructions scores 0")
        return 0.0
    if region is None or not region.strip():
        return 0.0
    prompt = _sources(ground_truth, extra_info).get("prompt")
    if isinstance(prompt, str) and prompt.strip() and _normalised(region) == _normalised(prompt):
        return 0.0  # the prompt copied (decision refuse-copied-prompt)
    variants = loose_variants(region) if loose else [region]
    return float(all(any(follows(v, i, kw) for v in variants) for i, kw in pairs))


@register("ifeval_strict")
def ifeval_strict(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the response follows every instruction of the prompt (IFEval prompt-level strict).

    Differences from the reference are written decisions, listed in the module docstring:
    ``ifeval_strict.refuse-undetectable-language``, ``ifeval_strict.refuse-copied-prompt``,
    ``ifeval_strict.refuse-no-instructions``, ``ifeval_strict.refuse-unclosed-think``,
    ``ifeval_strict.refuse-all-options``,
    ``ifeval_strict.last-think``, ``ifeval_strict.literal-keywords``,
    ``ifeval_strict.sentence-approximation``.
    """
    return _prompt_level(response, ground_truth, extra_info, loose=False)


@register("ifeval_loose")
def ifeval_loose(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when, per instruction, some loose variant of the response follows it (prompt-level loose).

    Differences from the reference are written decisions, listed in the module docstring:
    ``ifeval_loose.refuse-undetectable-language``, ``ifeval_loose.refuse-copied-prompt``,
    ``ifeval_loose.refuse-no-instructions``, ``ifeval_loose.refuse-unclosed-think``,
    ``ifeval_loose.refuse-all-options``, ``ifeval_loose.rephrase-loose-variants``,
    ``ifeval_loose.last-think``, ``ifeval_loose.literal-keywords``,
    ``ifeval_loose.sentence-approximation``.
    """
    return _prompt_level(response, ground_truth, extra_info, loose=True)
