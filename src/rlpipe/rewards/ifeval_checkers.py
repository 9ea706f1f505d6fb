"""IFEval's instruction checkers, one function per instruction id (used by ``rlpipe.rewards.ifeval``).

Each checker takes the graded text and the instruction's kwargs and says whether the text follows the
instruction. The semantics are IFEval's (Zhou et al. 2023, google-research ``instruction_following_eval``
as carried by lm-evaluation-harness), written here from its documented behaviour; where IFEval uses
nltk, a dependency-free approximation stands in (see ``count_sentences`` and ``word_tokens``).

Keyword-like kwargs are literal text (IFEval passes them to ``re`` unescaped, so ``C++`` crashes
there and ``.`` matches any character); a frequency keyword, a section splitter, a postscript marker, a
start phrase and an end phrase are stripped of surrounding spaces as IFEval strips them; the keywords
of ``keywords:existence`` and ``keywords:forbidden_words`` and a paragraph's first word are not.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Checker = Callable[[str, dict[str, Any]], bool]
CHECKERS: dict[str, Checker] = {}
_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def _checker(*names: str) -> Callable[[Checker], Checker]:
    def decorator(fn: Checker) -> Checker:
        for name in names:
            CHECKERS[name] = fn
        return fn

    return decorator


def _compare(count: int, relation: str | None, target: int) -> bool:
    """IFEval relations: ``less than`` is strict, ``at least`` is >=; any other relation is refused."""
    relation = (relation or "at least").strip().lower()
    if relation == "less than":
        return count < target
    if relation == "at least":
        return count >= target
    warn_once(f"relation:{relation}", f"ifeval: unknown relation {relation!r}; counted as not followed")
    return False


# --------------------------------------------------------------------------------------------------
# Text helpers


def words(text: str) -> list[str]:
    """IFEval's word count tokens: runs of ``\\w`` characters."""
    return re.findall(r"\w+", text)


# Abbreviations after which a period does not end a sentence (English Punkt model's abbreviation
# types; an initial among them, such as "C.", never ends a sentence, other initials are handled apart).
_ABBREVIATIONS = frozenset("cdefghklmnprstvw") | frozenset(
    """
    ct m.j a.c n.h ms p.a.m dr pa p.m u.k st dec u.s.a lt g.k adm h.m ga tenn yr sen n.c j.j d.h s.g
    inc vs s.p.a a.t feb sr jan s.a.y n.y col g.f c.o.m.b ft va r.k e.f chg r.i a.g minn a.h n.j l.f
    f.j gen i.m.s s.a aug j.p okla m.d.c ltd oct vt r.a j.c ariz w.w b.v ore w.r e.h mrs cie corp n.v
    a.d r.j ok e.m w.c ill nov u.s prof conn u.s.s.r mg f.g ph.d calif messrs h.f wash tues sw bros
    u.n wis mr sep d.c ave e.l co s.s reps r.t h.c wed a.s fla jr r.h c.v m.b.a rep a.a c.i.t l.a b.f
    j.b d.w j.k ala w.va sept mich n.m j.r l.p s.c colo fri a.m g.d kan maj ky a.m.e n.d t.j cos nev
    """.split()  # noqa: SIM905
)
# Capitalised words that start a new sentence after an abbreviation or an ellipsis: the Punkt
# model's frequent sentence starters and the common words its orthographic statistics show lower-case
# somewhere but never capitalised inside a sentence.
_ABBREVIATION_BREAKERS = frozenset(
    """
    according although always among anyway both but despite does even finally he her here him however
    i if in indeed instead it many meanwhile moreover most nevertheless nonetheless nor note okay
    overall please remember sales separately similarly since so some sometimes still such thank thanks
    the there these they this though thus under unfortunately us were when which while yes yet your
    """.split()  # noqa: SIM905
)
# Common words (seen lower-case): capitalised after an initial ("A. The") they start a sentence,
# while a name ("J. Smith") does not.
_COMMON_WORDS = _ABBREVIATION_BREAKERS | frozenset(
    """
    a after again all also an and another any are as at be because before by can could dear did do
    each every few first for from great hello hi his how is its just last let like maybe more much my
    never next no not now of ok on once one only or other our perhaps second she sure that their then
    those to today was we well what where who why will with would you
    """.split()  # noqa: SIM905
)
_CLOSERS = "\"')]}*»”’"
_OPENERS = "\"'([{*«“‘"
_NUMBER = re.compile(r"^-?[.,]?\d[\d,.-]*$")


def _ends_sentence(word: str, ellipsis: bool, following: str) -> bool:
    """Whether a period after ``word`` (lower-cased, period removed) ends the sentence, given the next
    token (Punkt's abbreviation, initial and number heuristics, approximated)."""
    first = following[:1]
    capital = first.isupper()
    nxt = following.lower().rstrip(".,;:!?")
    initial = _is_initial(word)
    if ellipsis or _abbreviation(word):
        return capital and nxt in _ABBREVIATION_BREAKERS and not (initial and not ellipsis)
    if initial:
        if capital:
            return nxt in _COMMON_WORDS
        return not first.islower() and first not in ";:,.!?"
    if _NUMBER.match(word):
        return not first.islower() and first not in ";:,.!?"
    return True


# A sentence-final ``. ! ?`` run is a candidate when the token ends there or one of these follows it.
_CANDIDATE = re.compile(r"[.?!]+(?=[?!)\";}\]*:@'({\[\u201d\u2019\u00bb]|$)")
_ABSORBED = "\"')]}\u201d\u2019\u00bb"  # closers that stay with the sentence they close


def count_sentences(text: str) -> int:
    """Sentences as IFEval counts them (nltk's English Punkt model), approximated without nltk.

    Candidates are runs of ``. ! ?`` at the end of a whitespace-delimited token or followed by one of
    ``? ! ) " ; } ] * : @ ' ( { [ ” ’ »``. A run with ``!`` or ``?`` ends the sentence; a period does
    too unless (``_ends_sentence``): it closes an ellipsis (two dots or more) or a known abbreviation
    and the next word is not a capitalised frequent sentence starter ("The", "He", ...); it follows a
    single-letter initial and the next word is lower-case or a capitalised name ("J. Smith"); it
    follows a number and the next token starts lower-case or with ``; : , . ! ?``; or the word is an
    abbreviation, an initial or a number and punctuation follows. What follows the end within the
    token starts the next sentence, except closing quotes and brackets (``" ' ) ] } ” ’ »``), which
    stay with the sentence they close (so a final ``.**`` makes a sentence of its own, as in Punkt).
    Only the last candidate of a token counts, and at the very end of the text the last one followed
    by punctuation (``etc.).`` ending a text ends a sentence after ``etc.``). Line breaks alone do not
    end a sentence.
    """
    tokens = text.split()
    count = 0
    pending = False
    for i, token in enumerate(tokens):
        pending = True
        candidates = list(_CANDIDATE.finditer(token))
        if i == len(tokens) - 1:  # the text's end is no candidate: the last one before it is
            candidates = [m for m in candidates if m.end() < len(token)]
        for match in candidates[-1:]:  # Punkt reads the last candidate of a token
            run, tail = match.group(0), token[match.end() :]
            if "!" not in run and "?" not in run:
                ellipsis = len(run) > 1
                word = token[: match.start()].lstrip(_OPENERS).lower()
                if tail:  # punctuation follows: not after an abbreviation, initial, number, ellipsis
                    if ellipsis or _abbreviation(word) or _is_initial(word) or _NUMBER.match(word):
                        continue
                elif i + 1 < len(tokens) and not _ends_sentence(word, ellipsis, tokens[i + 1]):
                    continue
            count += 1
            pending = bool(tail) and not all(c in _ABSORBED for c in tail)
    return count + int(pending)


def _is_initial(word: str) -> bool:
    return re.fullmatch(r"[^\W\d_]", word) is not None


def _abbreviation(word: str) -> bool:
    return word in _ABBREVIATIONS or word.split("-")[-1] in _ABBREVIATIONS


_CLITIC = re.compile(r"^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$", re.IGNORECASE)


def word_tokens(text: str) -> list[str]:
    """Words as nltk's ``word_tokenize`` splits them (IFEval's capital-word count), approximated.

    Punctuation other than ``- . / + ' _ = ~ ^ | \\`` separates tokens (``AI-generated``, ``U.S.``,
    ``AI/ML`` stay one token), ``--`` separates, clitics (``n't``, ``'s``, ``'re``, ``'ve``, ``'ll``, ``'d``,
    ``'m``) are tokens of their own and a leading quote is split off.
    """
    out: list[str] = []
    for raw in re.split(r"[^\w\-./+'=~^|\\]+|--", text):
        token = raw.lstrip("'")
        if not token:
            continue
        clitic = _CLITIC.match(token)
        if clitic and clitic.group(1).strip("'"):
            out.extend([clitic.group(1), clitic.group(2)])
        else:
            out.append(token)
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences for ``keywords:key_sentences``: IFEval's rule-based splitter, re-written.

    Line breaks become spaces; a sentence ends after ``.``, ``?`` or ``!`` (a closing double quote
    stays with its sentence; an ellipsis ends one) except in titles (Mr. Mrs. Ms. Dr. St.), decimal
    numbers, web addresses (``.com`` ...), ``Ph.D.``, acronyms (``U.S.``) and single-letter initials.
    Each sentence is stripped.
    """
    text = " " + text.replace("\n", " ") + "  "
    keep, stop = "\x00", "\x01"  # a period that does not end a sentence; a sentence end
    starters = (
        r"(Mr|Mrs|Ms|Dr|Prof|Capt|Cpt|Lt|He\s|She\s|It\s|They\s|Their\s|Our\s|We\s|But\s"
        r"|However\s|That\s|This\s|Wherever)"
    )
    text = re.sub(r"(Mr|St|Mrs|Ms|Dr)\.", r"\1" + keep, text)
    text = re.sub(r"\.(com|net|org|io|gov|edu|me)", keep + r"\1", text)
    text = re.sub(r"(\d)\.(\d)", r"\1" + keep + r"\2", text)
    text = re.sub(r"\.{2,}", lambda m: keep * len(m.group(0)) + stop, text)
    text = text.replace("Ph.D.", f"Ph{keep}D{keep}")
    text = re.sub(r"\s([A-Za-z])\. ", r" \1" + keep + " ", text)
    text = re.sub(r"([A-Z]\.[A-Z]\.(?:[A-Z]\.)?) " + starters, r"\1" + stop + r" \2", text)
    text = re.sub(
        r"([A-Za-z])\.([A-Za-z])\.(?:([A-Za-z])\.)?",
        lambda m: keep.join(g for g in m.groups() if g) + keep,
        text,
    )
    text = re.sub(r" (Inc|Ltd|Jr|Sr|Co)\. " + starters, r" \1" + stop + r" \2", text)
    text = re.sub(r" (Inc|Ltd|Jr|Sr|Co)\.", r" \1" + keep, text)
    text = re.sub(r" ([A-Za-z])\.", r" \1" + keep, text)
    text = text.replace(".\u201d", "\u201d.")
    for mark in ".!?":
        text = text.replace(mark + '"', '"' + mark)
    text = re.sub(r"([.!?])", "\\1" + stop, text).replace(keep, ".")
    sentences = [part.strip() for part in text.split(stop)]
    if sentences and not sentences[-1]:
        sentences.pop()
    return sentences


def _detect_language(text: str) -> str | None:
    """langdetect's code for ``text`` (fixed seed); ``"undetectable"`` for a text without letters;
    None when langdetect is not installed."""
    try:
        import langdetect
        from langdetect import DetectorFactory
    except ImportError:
        warn_once("langdetect", "ifeval: langdetect is not installed; language checks are not followed")
        return None
    DetectorFactory.seed = 0
    try:
        return str(langdetect.detect(text))
    except Exception:  # noqa: BLE001 - langdetect raises on texts without letters
        return "undetectable"


# --------------------------------------------------------------------------------------------------
# Checkers


@_checker("keywords:existence", "keywords:include_keywords")
def _existence(r: str, kw: dict[str, Any]) -> bool:
    return all(re.search(re.escape(str(k)), r, re.IGNORECASE) for k in kw.get("keywords") or [])


@_checker("keywords:frequency", "keywords:keyword_frequency")
def _frequency(r: str, kw: dict[str, Any]) -> bool:
    """The keyword is stripped of surrounding spaces (as IFEval) and counted case-insensitively."""
    keyword = str(kw["keyword"]).strip()
    if not keyword:
        return False
    count = len(re.findall(re.escape(keyword), r, re.IGNORECASE))
    return _compare(count, kw.get("relation"), int(kw["frequency"]))


@_checker("keywords:forbidden_words")
def _forbidden(r: str, kw: dict[str, Any]) -> bool:
    return not any(
        re.search(r"\b" + re.escape(str(w)) + r"\b", r, re.IGNORECASE)
        for w in kw.get("forbidden_words") or []
    )


@_checker("keywords:letter_frequency")
def _letter_frequency(r: str, kw: dict[str, Any]) -> bool:
    letter = str(kw["letter"]).strip().lower()
    if len(letter) != 1:
        return False
    return _compare(r.lower().count(letter), kw.get("let_relation"), int(kw["let_frequency"]))


@_checker("keywords:key_sentences")
def _key_sentences(r: str, kw: dict[str, Any]) -> bool:
    """Exactly ``num_sentences`` of the key sentences appear as whole sentences of the response."""
    sentences = split_sentences(r)
    found = sum(1 for sentence in kw["key_sentences"] if str(sentence) in sentences)
    return found == int(kw["num_sentences"])


@_checker("language:response_language")
def _language(r: str, kw: dict[str, Any]) -> bool:
    """Detected language equals the requested one; a text the detector cannot classify (no letters)
    or a missing detector is not followed (IFEval counts the former as followed)."""
    return _detect_language(r) == str(kw["language"])


@_checker("length_constraints:number_sentences")
def _number_sentences(r: str, kw: dict[str, Any]) -> bool:
    return _compare(count_sentences(r), kw.get("relation"), int(kw["num_sentences"]))


@_checker("length_constraints:number_paragraphs", "length_constraint:number_paragraphs")
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


@_checker("length_constraints:number_words", "length_constraint:number_words")
def _number_words(r: str, kw: dict[str, Any]) -> bool:
    return _compare(len(words(r)), kw.get("relation"), int(kw["num_words"]))


@_checker("length_constraints:nth_paragraph_first_word")
def _nth_paragraph_first_word(r: str, kw: dict[str, Any]) -> bool:
    """Paragraphs are split at ``\\n\\n`` and the non-empty ones counted; the nth (counted in the
    split, at most the non-empty count) must be non-empty. Its first word is read after leading
    quotes up to the first ``. , ? ! ' "`` and compared lower-cased (as IFEval, unstripped)."""
    paragraphs = r.split("\n\n")
    count = sum(1 for p in paragraphs if p.strip())
    nth = int(kw["nth_paragraph"])
    if not 1 <= nth <= count:
        return False
    paragraph = paragraphs[nth - 1].strip()
    if not paragraph:
        return False
    first = ""
    for ch in paragraph.split()[0].lstrip("'").lstrip('"'):
        if ch in ".,?!'\"":
            break
        first += ch.lower()
    return count == int(kw["num_paragraphs"]) and first == str(kw["first_word"]).lower()


@_checker("detectable_content:number_placeholders")
def _placeholders(r: str, kw: dict[str, Any]) -> bool:
    return len(re.findall(r"\[.*?\]", r)) >= int(kw["num_placeholders"])


@_checker("detectable_content:postscript")
def _postscript(r: str, kw: dict[str, Any]) -> bool:
    marker = str(kw["postscript_marker"]).strip()
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    elif marker:
        pattern = r"\s*" + re.escape(marker.lower()) + r".*$"
    else:
        return False
    return bool(re.search(pattern, r.lower(), re.MULTILINE))


@_checker("detectable_content:rephrase_paragraph")
def _rephrase_paragraph(r: str, kw: dict[str, Any]) -> bool:
    """Words (``\\w+``, lower-cased) shared with the original paragraph, counted with multiplicity
    (the smaller of the two counts per word), lie within ``[low, high]``."""
    mine = Counter(re.findall(r"\w+", r.lower()))
    original = Counter(re.findall(r"\w+", str(kw["original_paragraph"]).lower()))
    shared = sum(min(n, mine[word]) for word, n in original.items())
    return int(kw["low"]) <= shared <= int(kw["high"])


@_checker("detectable_format:number_bullet_lists", "detectable_format:exact_number_bullet_points")
def _bullets(r: str, kw: dict[str, Any]) -> bool:
    stars = re.findall(r"^\s*\*[^\*].*$", r, re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", r, re.MULTILINE)
    return len(stars) + len(dashes) == int(kw["num_bullets"])


@_checker("detectable_format:constrained_response")
def _constrained(r: str, kw: dict[str, Any]) -> bool:
    """Exactly one of the options appears (IFEval accepts any, so all of them at once too: decision
    ``refuse-all-options``)."""
    options = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
    return sum(1 for option in options if option in r) == 1


@_checker("multi-turn:constrained_start")
def _constrained_start(r: str, kw: dict[str, Any]) -> bool:
    """Some line starts (after spaces) with the starter phrase, stripped, case-sensitive."""
    starter = str(kw["starter"]).strip()
    return bool(starter) and bool(re.search(r"^\s*" + re.escape(starter), r, re.MULTILINE))


@_checker(
    "detectable_format:number_highlighted_sections",
    "detectable_format:minimum_number_highlighted_sections",
)
def _highlights(r: str, kw: dict[str, Any]) -> bool:
    single = [h for h in re.findall(r"\*[^\n\*]*\*", r) if h.strip("*").strip()]
    double = [
        h for h in re.findall(r"\*\*[^\n\*]*\*\*", r) if h.removeprefix("**").removesuffix("**").strip()
    ]
    return len(single) + len(double) >= int(kw["num_highlights"])


@_checker("detectable_format:multiple_sections")
def _sections(r: str, kw: dict[str, Any]) -> bool:
    splitter = str(kw["section_spliter"]).strip()
    if not splitter:
        return False
    sections = re.split(r"\s?" + re.escape(splitter) + r"\s?\d+\s?", r)
    return len(sections) - 1 >= int(kw["num_sections"])


_CHANGE = re.compile(r"\*.*\*")


@_checker("detectable_format:rephrase", "detectable_format:rephrasing")
def _rephrase(r: str, kw: dict[str, Any]) -> bool:
    """The response marks its changes as ``*change*`` (on one line) and, with every ``*...*`` span
    removed, equals the original message with its own marked spans removed. A response or an
    original without a marked change is not followed (IFEval raises)."""
    original = str(kw["original_message"])
    if not _CHANGE.search(r) or not _CHANGE.search(original):
        return False
    return re.sub(r"\*.*?\*", "", r) == re.sub(r"\*.*?\*", "", original)


@_checker("detectable_format:json_format")
def _json(r: str, kw: dict[str, Any]) -> bool:
    """The stripped response, less one leading code fence (optionally tagged json/Json/JSON) and one
    trailing fence, parses as JSON."""
    text = r.strip()
    for prefix in ("```json", "```Json", "```JSON", "```"):
        text = text.removeprefix(prefix)
    text = text.removesuffix("```").strip()
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


@_checker("detectable_format:title")
def _title(r: str, kw: dict[str, Any]) -> bool:
    return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", r))


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
    """The response starts with the request (case-insensitive) and goes on with an answer: the
    request alone is not followed (IFEval accepts it: decision ``refuse-copied-prompt``)."""
    text = r.strip().lower()
    request = str(kw["prompt_to_repeat"]).strip().lower()
    return bool(request) and text.startswith(request) and bool(re.search(r"\w", text[len(request) :]))


@_checker("startend:end_checker")
def _end_checker(r: str, kw: dict[str, Any]) -> bool:
    return r.strip().strip('"').lower().endswith(str(kw["end_phrase"]).strip().lower())


@_checker("startend:quotation")
def _quotation(r: str, kw: dict[str, Any]) -> bool:
    text = r.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'


@_checker("change_case:capital_word_frequency")
def _capital_words(r: str, kw: dict[str, Any]) -> bool:
    count = sum(1 for w in word_tokens(r) if w.isupper())
    return _compare(count, kw.get("capital_relation"), int(kw["capital_frequency"]))


@_checker("change_case:english_capital")
def _english_capital(r: str, kw: dict[str, Any]) -> bool:
    return r.isupper() and _detect_language(r) == "en"


@_checker("change_case:english_lowercase")
def _english_lowercase(r: str, kw: dict[str, Any]) -> bool:
    return r.islower() and _detect_language(r) == "en"


@_checker("punctuation:no_comma")
def _no_comma(r: str, kw: dict[str, Any]) -> bool:
    return "," not in r
