"""IFEval scorers: prompt-level strict and loose instruction following (Zhou et al. 2023).

``ifeval_strict``: 1 when the answer region (text after ``</think>``) follows *every* instruction of the
prompt, else 0. ``ifeval_loose``: the same, but an instruction counts as followed when any of eight
variants of the response follows it: the response with the first line, the last line, both or neither
removed, each with and without the markdown ``*`` characters (IFEval's loose rule).

Where the instructions come from: ``extra_info["instruction_id_list"]`` and ``extra_info["kwargs"]``
(GURU rows), or the ground truth when it is a dict with those keys (or a JSON string of one), or the
ground truth as the kwargs list with the ids in ``extra_info``. ``None``-valued kwargs (parquet fills
absent keys with nulls) are dropped; whole-number floats become ints.

Covered instruction ids (all 25 of IFEval):
keywords:existence, keywords:frequency, keywords:forbidden_words, keywords:letter_frequency,
language:response_language, length_constraints:number_sentences, length_constraints:number_paragraphs,
length_constraints:number_words, length_constraints:nth_paragraph_first_word,
detectable_content:number_placeholders, detectable_content:postscript,
detectable_format:number_bullet_lists, detectable_format:constrained_response,
detectable_format:number_highlighted_sections, detectable_format:multiple_sections,
detectable_format:json_format, detectable_format:title, combination:two_responses,
combination:repeat_prompt, startend:end_checker, startend:quotation,
change_case:capital_word_frequency, change_case:english_capital, change_case:english_lowercase,
punctuation:no_comma.

An unknown instruction id counts as NOT followed and is logged (a warning per id).

Approximations (documented, deterministic): words are ``\\w+`` runs (IFEval's regexp tokenizer for word
counts; for capital-word counting IFEval uses nltk's word tokenizer); sentences are split at ``.``, ``!``,
``?`` followed by whitespace or the end, with a few abbreviations protected. Language detection uses the
optional ``langdetect`` package with a fixed seed; a text it cannot classify (no letters) counts as
following, as in IFEval; without the package ``language:response_language`` is not followed and
``change_case:english_*`` check only the letter case (both logged once).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from rlpipe.rewards.extract import answer_region
from rlpipe.rewards.registry import register

log = logging.getLogger(__name__)

Checker = Callable[[str, dict[str, Any]], bool]
CHECKERS: dict[str, Checker] = {}
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def _checker(name: str) -> Callable[[Checker], Checker]:
    def decorator(fn: Checker) -> Checker:
        CHECKERS[name] = fn
        return fn

    return decorator


def _compare(count: int, relation: str | None, target: int) -> bool:
    """IFEval relations: ``less than`` is strict, ``at least`` is >=."""
    relation = (relation or "at least").strip().lower()
    if relation == "less than":
        return count < target
    if relation == "at least":
        return count >= target
    _warn_once(f"relation:{relation}", f"ifeval: unknown relation {relation!r}; counted as not followed")
    return False


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def _detect_language(text: str) -> str | None:
    try:
        import langdetect
        from langdetect import DetectorFactory
    except ImportError:
        _warn_once("langdetect", "ifeval: langdetect is not installed; language checks degrade")
        return None
    DetectorFactory.seed = 0
    try:
        return str(langdetect.detect(text))
    except Exception:  # noqa: BLE001 - langdetect raises on texts without letters
        return "undetectable"


@_checker("keywords:existence")
def _existence(r: str, kw: dict[str, Any]) -> bool:
    return all(re.search(re.escape(str(k)), r, re.IGNORECASE) for k in kw.get("keywords") or [])


@_checker("keywords:frequency")
def _frequency(r: str, kw: dict[str, Any]) -> bool:
    count = len(re.findall(re.escape(str(kw["keyword"])), r, re.IGNORECASE))
    return _compare(count, kw.get("relation"), int(kw["frequency"]))


@_checker("keywords:forbidden_words")
def _forbidden(r: str, kw: dict[str, Any]) -> bool:
    return not any(
        re.search(r"\b" + re.escape(str(w)) + r"\b", r, re.IGNORECASE)
        for w in kw.get("forbidden_words") or []
    )


@_checker("keywords:letter_frequency")
def _letter_frequency(r: str, kw: dict[str, Any]) -> bool:
    count = r.lower().count(str(kw["letter"]).lower())
    return _compare(count, kw.get("let_relation"), int(kw["let_frequency"]))


@_checker("language:response_language")
def _language(r: str, kw: dict[str, Any]) -> bool:
    """IFEval counts a text whose language cannot be detected (no letters) as following."""
    detected = _detect_language(r)
    return detected is not None and detected in (str(kw["language"]), "undetectable")


_ABBREV = re.compile(r"\b(Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|vs|etc|e\.g|i\.e)\.", re.IGNORECASE)


def _sentences(text: str) -> list[str]:
    protected = _ABBREV.sub(lambda m: m.group(0).replace(".", "<DOT>"), text)
    protected = re.sub(r"(\d)\.(\d)", r"\1<DOT>\2", protected)
    parts = re.split(r"(?<=[.!?])[\"')\]]*\s+", protected.strip())
    return [p for p in parts if re.search(r"\w", p)]


@_checker("length_constraints:number_sentences")
def _number_sentences(r: str, kw: dict[str, Any]) -> bool:
    return _compare(len(_sentences(r)), kw.get("relation"), int(kw["num_sentences"]))


@_checker("length_constraints:number_paragraphs")
def _number_paragraphs(r: str, kw: dict[str, Any]) -> bool:
    paragraphs = re.split(r"\s?\*\*\*\s?", r)
    count = len(paragraphs)
    for i, paragraph in enumerate(paragraphs):
        if not paragraph.strip():
            if i in (0, len(paragraphs) - 1):
                count -= 1
            else:
                return False
    return count == int(kw["num_paragraphs"])


@_checker("length_constraints:number_words")
def _number_words(r: str, kw: dict[str, Any]) -> bool:
    return _compare(len(_words(r)), kw.get("relation"), int(kw["num_words"]))


@_checker("length_constraints:nth_paragraph_first_word")
def _nth_paragraph_first_word(r: str, kw: dict[str, Any]) -> bool:
    """Paragraphs are split at blank lines ``\\n\\n``; empty ones do not count. The first word is read
    after leading quotes up to the first ``. , ? ! ' "`` and compared lower-cased (as IFEval)."""
    paragraphs = r.split("\n\n")
    count = sum(1 for p in paragraphs if p.strip())
    nth = int(kw["nth_paragraph"])
    if count != int(kw["num_paragraphs"]) or not 1 <= nth <= len(paragraphs):
        return False
    words = paragraphs[nth - 1].strip().split()
    if not words:
        return False
    first = ""
    for ch in words[0].lstrip("'").lstrip('"'):
        if ch in ".,?!'\"":
            break
        first += ch.lower()
    return first == str(kw["first_word"]).strip().lower()


@_checker("detectable_content:number_placeholders")
def _placeholders(r: str, kw: dict[str, Any]) -> bool:
    return len(re.findall(r"\[.*?\]", r)) >= int(kw["num_placeholders"])


@_checker("detectable_content:postscript")
def _postscript(r: str, kw: dict[str, Any]) -> bool:
    marker = str(kw["postscript_marker"]).strip().lower()
    if marker == "p.p.s":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "p.s.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + re.escape(marker) + r".*$"
    return bool(re.search(pattern, r.lower(), re.MULTILINE))


@_checker("detectable_format:number_bullet_lists")
def _bullets(r: str, kw: dict[str, Any]) -> bool:
    stars = re.findall(r"^\s*\*[^\*].*$", r, re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", r, re.MULTILINE)
    return len(stars) + len(dashes) == int(kw["num_bullets"])


@_checker("detectable_format:constrained_response")
def _constrained(r: str, kw: dict[str, Any]) -> bool:
    options = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
    return any(option in r.strip() for option in options)


@_checker("detectable_format:number_highlighted_sections")
def _highlights(r: str, kw: dict[str, Any]) -> bool:
    single = [h for h in re.findall(r"\*[^\n\*]*\*", r) if h.strip("*").strip()]
    double = [
        h for h in re.findall(r"\*\*[^\n\*]*\*\*", r) if h.removeprefix("**").removesuffix("**").strip()
    ]
    return len(single) + len(double) >= int(kw["num_highlights"])


@_checker("detectable_format:multiple_sections")
def _sections(r: str, kw: dict[str, Any]) -> bool:
    splitter = str(kw["section_spliter"]).strip()
    sections = re.split(r"\s?" + re.escape(splitter) + r"\s?\d+\s?", r)
    return len(sections) - 1 >= int(kw["num_sections"])


@_checker("detectable_format:json_format")
def _json(r: str, kw: dict[str, Any]) -> bool:
    text = r.strip()
    text = re.sub(r"^```(?:json|Json|JSON)?\s*", "", text)
    text = re.sub(r"\s*```$", "", text).strip()
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


@_checker("detectable_format:title")
def _title(r: str, kw: dict[str, Any]) -> bool:
    return any(t.strip("<>").strip() for t in re.findall(r"<<[^\n]+>>", r))


@_checker("combination:two_responses")
def _two_responses(r: str, kw: dict[str, Any]) -> bool:
    parts = r.split("******")
    valid = []
    for i, part in enumerate(parts):
        if not part.strip():
            if i not in (0, len(parts) - 1):
                return False
        else:
            valid.append(part.strip())
    return len(valid) == 2 and valid[0] != valid[1]


@_checker("combination:repeat_prompt")
def _repeat_prompt(r: str, kw: dict[str, Any]) -> bool:
    return r.strip().lower().startswith(str(kw["prompt_to_repeat"]).strip().lower())


@_checker("startend:end_checker")
def _end_checker(r: str, kw: dict[str, Any]) -> bool:
    return r.strip().strip('"').lower().endswith(str(kw["end_phrase"]).strip().lower())


@_checker("startend:quotation")
def _quotation(r: str, kw: dict[str, Any]) -> bool:
    text = r.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'


@_checker("change_case:capital_word_frequency")
def _capital_words(r: str, kw: dict[str, Any]) -> bool:
    count = sum(1 for w in _words(r) if w.isupper())
    return _compare(count, kw.get("capital_relation"), int(kw["capital_frequency"]))


def _is_english(r: str) -> bool:
    detected = _detect_language(r)
    return detected in (None, "en", "undetectable")


@_checker("change_case:english_capital")
def _english_capital(r: str, kw: dict[str, Any]) -> bool:
    return r.isupper() and _is_english(r)


@_checker("change_case:english_lowercase")
def _english_lowercase(r: str, kw: dict[str, Any]) -> bool:
    return r.islower() and _is_english(r)


@_checker("punctuation:no_comma")
def _no_comma(r: str, kw: dict[str, Any]) -> bool:
    return "," not in r


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


def instructions(ground_truth: Any, extra_info: dict | None) -> list[tuple[str, dict[str, Any]]]:
    """The ``(instruction_id, kwargs)`` pairs of one prompt (see module docstring for the sources)."""
    info = dict(extra_info or {})
    truth = ground_truth
    if isinstance(truth, str):
        try:
            truth = json.loads(truth)
        except (ValueError, RecursionError):
            truth = None
    if isinstance(truth, dict):
        info = {**info, **{k: truth[k] for k in ("instruction_id_list", "kwargs") if k in truth}}
    elif truth is not None and "kwargs" not in info and not isinstance(truth, str):
        info["kwargs"] = truth
    ids = info.get("instruction_id_list")
    ids = list(ids.tolist() if hasattr(ids, "tolist") else ids or [])
    kwargs = info.get("kwargs")
    kwargs = list(kwargs.tolist() if hasattr(kwargs, "tolist") else kwargs or [])
    kwargs += [{}] * (len(ids) - len(kwargs))
    return [(str(i), _clean_kwargs(k)) for i, k in zip(ids, kwargs, strict=False)]


def follows(response: str, instruction_id: str, kwargs: dict[str, Any]) -> bool:
    """Whether ``response`` follows one instruction; unknown ids and bad kwargs count as not followed."""
    checker = CHECKERS.get(instruction_id)
    if checker is None:
        _warn_once(
            instruction_id, f"ifeval: unknown instruction id {instruction_id!r}; counted as not followed"
        )
        return False
    if not response.strip():
        return False
    try:
        return bool(checker(response, kwargs))
    except (KeyError, ValueError, TypeError, re.error) as exc:
        _warn_once(f"kw:{instruction_id}", f"ifeval: bad kwargs for {instruction_id}: {exc!r}")
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
    if region is None or not pairs:
        if not pairs:
            _warn_once("no-instructions", "ifeval: item without instructions scores 0")
        return 0.0
    variants = loose_variants(region) if loose else [region]
    return float(all(any(follows(v, i, kw) for v in variants) for i, kw in pairs))


@register("ifeval_strict")
def ifeval_strict(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the response follows every instruction of the prompt (IFEval prompt-level strict)."""
    return _prompt_level(response, ground_truth, extra_info, loose=False)


@register("ifeval_loose")
def ifeval_loose(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when, per instruction, some loose variant of the response follows it (prompt-level loose)."""
    return _prompt_level(response, ground_truth, extra_info, loose=True)
