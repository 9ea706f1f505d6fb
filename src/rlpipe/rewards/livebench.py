"""LiveBench scorer (reasoning, language, data_analysis), routed by ``extra_info["task"]``.

``livebench`` follows LiveBench's own per-task scorers (``livebench/process_results/`` of LiveBench/LiveBench,
as ``gen_ground_truth_judgment.py`` calls them), which the GURU suite's router (Reasoning360,
``verl/utils/reward_score/livebench``) copies. The graded text is the answer region (after ``</think>``).
The question's release date (``extra_info["date"]`` or ``["livebench_release_date"]``) picks the evaluator
where LiveBench has two, as LiveBench does; the question text (``extra_info["prompt"]``, a string or the
list of turns the GURU data keeps) gives ``tablereformat`` its target format. Per subtask:

* ``web_of_lies_v2``: the last ``<solution>`` block; else the last three yes/no/unknown words inside
  ``**bold**`` spans; else the last ``\\boxed{}`` (``\\textbf{}`` counts as a box); else the yes/no/unknown
  triple written latest in the text. 1 when it equals the ground truth (lower case), or holds three such
  words and contains it.
* ``web_of_lies_v3``: ``<solution>``, else box, else the plain triple; partial credit
  ``(all right + share right) / 2`` over the comma-separated positions.
* ``zebra_puzzle``: questions released before 2024-11-25 (the GURU suite's) answer one word as ``***X***``
  (else the last word of the answer); a digit matches its number word, ``X`` matches ``"X movies"``.
  Later ones answer ``<solution>a, b, c</solution>`` (else box, else a last line with the right number
  of commas), partial credit as above; an item is right when it equals or contains the truth.
  Without a date: the prompt's format decides, else a ground truth with commas means the new format
  (``livebench.undated-format``).
* ``spatial``: the whole answer equals the truth, or one of the last three bold spans does (lower case,
  number words zero-twenty read as digits, "two tetrahedra" for "tetrahedra"), else the last box.
* ``connections``: before 2024-11-25 (and without a date) every bold span is a comma-separated list,
  grouped by four in order; score = share of the truth's groups found. Later: the ``<solution>`` words
  (several blocks: their last words), else the box; score = share of the truth's groups matched.
* ``typos``: 1 when the ground truth occurs in the last ``<solution>`` block (else the answer, or its
  ``--- text ---`` part), lines joined by spaces.
* ``plot_unscrambling``: the ``<PLOT_SUMMARY>`` text (else the answer) is split into sentences on ``.``;
  each true sentence is mapped to its closest answer sentence (``difflib.get_close_matches``); score
  = 1 - (edit distance of that order from the true order) / number of sentences.
* ``cta``: the answer (or its last box), lower case with every non-word character removed, equals or ends
  with the class name so cleaned.
* ``tablejoin``: the mapping (``<solution>``, the whole answer, the last fenced block, the box) read as a
  Python literal (``null`` read as ``None``; ``None`` values dropped); F1 of its pairs against the ground
  truth's, rounded to 2 decimals.
* ``tablereformat``: answer and ground truth read by pandas in the target format (JSON, JSONL, CSV, TSV,
  HTML, markdown; a leading "Here is the table ..." dropped; CSV/TSV/JSONL found inside surrounding text);
  1 when both have the same rows in the same order, the same columns, and equal cells (numbers within 1e-6).

Not covered (score 0, logged once per task): ``house_traversal`` and any other task.

Written decisions (where rlpipe deliberately differs from LiveBench; each has a case in
``tests/rewards/parity/cases/livebench.jsonl``):

* ``livebench.refuse-copied-prompt``: the question's own text (``extra_info["prompt"]``) and the
  format examples it gives in parentheses, ``(for example, **yes, no, yes**)``, are removed before grading:
  LiveBench scores a copied prompt 1 when its example happens to equal the truth.
* ``livebench.unclosed-think``: a response whose ``<think>`` never closes has no answer (0); LiveBench
  strips only closed blocks and grades the unfinished reasoning.
* ``livebench.refuse-hedge``: several candidate answers are a hedge, scored 0 where LiveBench takes
  whichever is right: yes/no alternatives inside a bold span ("**yes or no**", web_of_lies), two or more
  different answers among the bold spans spatial searches, two ``***X***`` answers on the final line or a
  final line with "or" (old zebra), a zebra item offering alternatives ("cat or fish"), a cta answer
  naming several of the listed classes (or "a or b"), a typos text offered as "X or <text>", a
  web_of_lies_v3 answer with more items than questions.
* ``livebench.zebra-whole-word``: a zebra item contains the truth only as a whole word ("light blue" for
  "blue", not "12" for "2").
* ``livebench.cta-whole-name``: the class name must end the answer as a whole name ("inspection_date",
  not "last_inspection_date").
* ``livebench.connections-last-answer``: when several bold spans each list all the words (several
  complete answers), only the last is graded; LiveBench takes the best.
* ``livebench.refuse-repeated-group``: a correct group repeated in the ``<solution>`` list counts once;
  LiveBench counts every repeat, so one right group written four times scores 1.
* ``livebench.multiline-solution``: a zebra ``<solution>`` block may span lines; LiveBench's pattern
  stops at a line break and scores it 0.
* ``livebench.plot-unmatched``: a true plot sentence whose closest answer sentence is less than 50 %
  similar (difflib ratio) counts as missing; LiveBench always maps it to some answer sentence, so any
  one-line text (a refusal, a copied question) earns 1/n.
* ``livebench.plot-repeats``: an answer that repeats a sentence it is graded on (the plot told twice,
  several orders offered) scores 0.
* ``livebench.undated-format``: a zebra question without a release date is read in the format its prompt
  (else its ground truth: several comma-separated answers) shows; the GURU router always applies the old
  single-answer evaluator, which scores a ``<solution>`` answer 0. Undated ``connections`` questions are
  graded as the GURU router grades them (bold lists) unless the prompt asks for ``<solution>`` tags.
"""

from __future__ import annotations

import ast
import csv
import difflib
import io
import itertools
import json
import logging
import math
import re
import warnings
from html.parser import HTMLParser
from typing import Any

import numpy as np

from rlpipe.rewards.extract import answer_region
from rlpipe.rewards.registry import register

log = logging.getLogger(__name__)
_warned: set[str] = set()

NEW_PUZZLES = "2024-11-25"  # zebra_puzzle / connections: <solution> tags from this release on
TABLE_V2 = "2025-04-25"  # tablereformat: "Source Format: / Target Format:" prompts from this release on
_YES_NO = ("yes", "no", "unknown")
_COMBOS = [", ".join(c) for c in itertools.product(_YES_NO, repeat=3)]
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        (
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        )  # fmt: skip
    )
}
_DIGIT_WORDS = {str(i): w for w, i in ((w, int(d)) for w, d in _NUMBER_WORDS.items()) if 1 <= i <= 9}
_SHAPES = {"tetrahedra", "tetrahedron", "triangle", "square"}
_SHAPE_WORDS = re.compile(
    r"(?:equilateral |isosceles |right |regular )?(?:triangle|square|pentagon|hexagon|circle|sphere|cube|"
    r"tetrahedr(?:on|a)|pyramid|rectangle|quadrilateral|octahedr(?:on|a)|cone|cylinder|prism)s?"
)


class _Unparsable(Exception):
    """The reference would raise here (a malformed box), which LiveBench scores 0."""


# ---------------------------------------------------------------------------------------------- helpers


def _last_box(text: str) -> str | None:
    """LiveBench's last-box rule: ``\\boxed `` (a space) anywhere wins, then the last ``\\boxed`` (else
    ``\\fbox``) up to the brace that closes the first one opened; ``$`` removed. Returns the contents."""
    if "\\boxed " in text:
        return text.split("\\boxed ")[-1].split("$")[0]
    start = text.rfind("\\boxed")
    if start < 0:
        start = text.rfind("\\fbox")
        if start < 0:
            return None
    depth, end = 0, None
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                end = i
                break
    if end is None:
        return None
    box = text[start : end + 1].replace("$", "").replace("fbox", "boxed")
    if not (box.startswith("\\boxed{") and box.endswith("}")):
        raise _Unparsable(box)
    return box[len("\\boxed{") : -1]


def _solutions(text: str, dotall: bool = False) -> list[str]:
    flags = re.DOTALL if dotall else 0
    found = re.findall(r"<solution>(.*?)</solution>", text, flags)
    return found or re.findall(r"</solution>(.*?)</solution>", text, flags)


def _plain_triple(text: str) -> str | None:
    """The yes/no/unknown triple whose first occurrence comes latest (LiveBench's plain fallback)."""
    lowered = text.lower()
    best, where = None, -1
    for combo in _COMBOS:
        index = lowered.find(combo)
        if index > where:
            best, where = combo, index
    return best


def _turns(extra_info: dict) -> list[str]:
    prompt = extra_info.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list | tuple):
        out = []
        for turn in prompt:
            if isinstance(turn, dict):
                turn = turn.get("content")
            if isinstance(turn, str):
                out.append(turn)
        return out
    return []


_EXAMPLE = re.compile(r"\((?:for example|e\.g\.)[^()]*\)", re.IGNORECASE)


def _without_prompt(region: str, turns: list[str]) -> str:
    """livebench.refuse-copied-prompt: the question's text and its "(for example, ...)" formats removed."""
    for turn in turns:
        turn = turn.strip()
        if len(turn) >= 20:
            region = region.replace(turn, "")
    return _EXAMPLE.sub("", region)


def _release(extra_info: dict) -> str | None:
    for key in ("date", "livebench_release_date"):
        value = extra_info.get(key)
        if value is not None and str(value).strip():
            return str(value).strip()[:10]
    return None


def _partial(items: list[str], truth: list[str], same: Any) -> float:
    right = sum(1 for i, t in enumerate(truth) if i < len(items) and same(items[i], t))
    return ((right == len(truth)) + right / len(truth)) / 2


# ------------------------------------------------------------------------------------------- reasoning

_HEDGE_YES_NO = re.compile(r"\b(?:yes|no|unknown)\s*(?:/|\bor\b)\s*(?:yes|no|unknown)\b", re.IGNORECASE)


def _web_of_lies(region: str, truth: str, ctx: dict) -> float:
    found = _solutions(region)
    parsed = found[-1] if found else None
    bold = re.findall(r"\*\*(.*?)\*\*", region)
    if parsed is None and bold:
        if any(_HEDGE_YES_NO.search(span) for span in bold):
            return 0.0  # livebench.refuse-hedge
        words = [w.lower().strip().replace(",", "").replace(".", "") for span in bold for w in span.split()]
        last = [w for w in words if w in _YES_NO][-3:]
        parsed = ", ".join(last) if last else None
    if parsed is None or not parsed.strip():
        region = region.replace("\\\\boxed{\\\\textbf{", "\\\\boxed{").replace("\\\\fbox{", "\\\\boxed{")
        region = region.replace("\\textbf{", "\\boxed{")
        box = _last_box(region)
        if box:
            parsed = box
    if parsed is None:
        parsed = _plain_triple(region)
    if not parsed:
        return 0.0
    want = truth.lower()
    if parsed == want:
        return 1.0
    counted = parsed.count("yes") + parsed.count("no") + parsed.count("unknown")
    return float(counted == 3 and want in parsed)


def _web_of_lies_v3(region: str, truth: str, ctx: dict) -> float:
    found = re.findall(r"<solution>(.*?)</solution>", region)
    parsed = found[-1] if found else None
    if parsed is None or not parsed.strip():
        region = region.replace("\\\\boxed{\\\\textbf{", "\\\\boxed{").replace("\\\\fbox{", "\\\\boxed{")
        region = region.replace("\\textbf{", "\\boxed{")
        box = _last_box(region)
        if box:
            parsed = box.replace("\\text{", "").replace("}", "")
    if parsed is None:
        parsed = _plain_triple(region)
    if parsed is None:
        return 0.0
    if len(parsed.split(",")) > len(truth.split(",")):
        return 0.0  # livebench.refuse-hedge: more answers than questions
    return _partial(parsed.split(","), truth.split(","), lambda a, b: a == b)


def _zebra_word_matches(word: str, truth: str) -> bool:
    t = truth.lower()
    return word.lower() == t or _DIGIT_WORDS.get(word, "\0") == t or word.lower() + " movies" == t


def _zebra_old(region: str, truth: str, ctx: dict) -> float:
    bold = list(re.finditer(r"\*\*\*(\w+)\*\*\*", region))
    if bold:
        last = bold[-1]
        line_start = region.rfind("\n", 0, last.start()) + 1
        line_end = region.find("\n", last.end())
        line = region[line_start : line_end if line_end >= 0 else len(region)]
        if len({w.lower() for w in re.findall(r"\*\*\*(\w+)\*\*\*", line)}) > 1:
            return 0.0  # livebench.refuse-hedge: "***2*** or ***3***"
        return float(_zebra_word_matches(last.group(1), truth))
    words = re.findall(r"\b\w+\b", region)
    lines = [line for line in region.splitlines() if line.strip()]
    if lines and re.search(r"\bor\b", lines[-1], re.IGNORECASE):
        return 0.0  # livebench.refuse-hedge: "it is 2 or 3"
    return float(_zebra_word_matches(words[-1] if words else "", truth))


_HEDGE_ITEM = re.compile(r"\bor\b|/|\|")


def _zebra_item(item: str, truth: str) -> bool:
    got = item.strip().lower().replace("-", " ").replace("position", "")
    want = truth.strip().lower().replace("-", " ")
    if got == want:
        return True
    if _HEDGE_ITEM.search(got):
        return False  # livebench.refuse-hedge
    return re.search(r"(?<!\w)" + re.escape(want) + r"(?!\w)", got) is not None  # livebench.zebra-whole-word


def _zebra_new(region: str, truth: str, ctx: dict) -> float:
    want = truth.split(",")
    found = _solutions(region, dotall=True)  # livebench.multiline-solution
    if not found:
        region = region.replace("\\\\fbox{", "\\\\boxed{")
        box = _last_box(region)
        if box:
            found = [box.replace("\\text{", "").replace("}", "").replace("\\", "")]
    if not found:
        last_line = region.strip().split("\n")[-1]
        if last_line.count(",") == len(want) - 1:
            found = [last_line]
    if not found:
        return 0.0
    if len(found) > 1:
        items = [w for block in found for w in block.split(",")][-len(want) :]
    else:
        items = found[-1].split(",")
    return _partial(items, want, _zebra_item)


def _zebra(region: str, truth: str, ctx: dict) -> float:
    new = _new_puzzle(ctx, undated="," in truth)  # livebench.undated-format
    return (_zebra_new if new else _zebra_old)(region, truth, ctx)


def _spatial_value(span: str, truth_is_number: bool) -> str | None:
    """A bold span read as a candidate answer of the truth's kind (for the hedge check), else None."""
    if truth_is_number:
        if re.fullmatch(r"-?\d+", span):
            return span
        return _NUMBER_WORDS.get(span)
    return span if _SHAPE_WORDS.fullmatch(span) else None


def _spatial(region: str, truth: str, ctx: dict) -> float:
    if region == truth:
        return 1.0
    want = truth.strip().lower()
    spans = [s.strip().lower() for s in re.findall(r"\*\*([^\*]+)\*\*", region)][-3:]
    hit = False
    for word in spans:
        if word == want or _NUMBER_WORDS.get(word) == want:
            hit = True
        if want in _SHAPES and want in word and len(word) < 2 * len(want) + 5:
            hit = True
    if hit:
        number = re.fullmatch(r"-?\d+", want) is not None or want in _NUMBER_WORDS
        values = {v for v in (_spatial_value(s, number) for s in spans) if v is not None}
        return float(len(values) <= 1)  # livebench.refuse-hedge
    box = _last_box(region.replace("\\\\fbox{", "\\\\boxed{"))
    if box:
        for macro in ("\\textbf{", "\\mathbf{", "\\text{", "}"):
            box = box.replace(macro, "")
        return float(box == truth)
    return 0.0


# -------------------------------------------------------------------------------------------- language


def _groups(words: list[str]) -> list[set[str]]:
    groups: list[set[str]] = [set()]
    for word in (w.strip().lower() for w in words):
        if len(groups[-1]) == 4:
            groups.append(set())
        groups[-1].add(word)
    return groups


def _connections_old(region: str, truth: str, ctx: dict) -> float:
    spans = re.findall(r"\*\*(.*?)\*\*", region.replace("\n", ""))
    if not spans:
        return 0.0
    want = _groups(truth.split(","))
    size = len(truth.split(","))
    complete = [s for s in spans if len(s.split(",")) == size]
    if complete:
        spans = complete[-1:]  # livebench.connections-last-answer

    def share(span: str) -> float:
        got = _groups(span.split(","))
        return sum(any(g <= o for o in got) for g in want) / len(want)

    return max(share(s) for s in spans)


def _connections_new(region: str, truth: str, ctx: dict) -> float:
    flat = region.replace("\n", "")
    found = (
        re.findall(r"<solution>(.*?)</solution>", region)
        or re.findall(r"<solution>(.*?)</solution>", flat)
        or re.findall(r"</solution>(.*?)</solution>", region)
        or re.findall(r"</solution>(.*?)</solution>", flat)
    )
    want_words = truth.split(",")
    if not found and "\\boxed" in region:
        box = _last_box(region)
        if box is None:
            raise _Unparsable(region[-50:])
        found = [box.replace("\\text{", "").replace("}", "").replace("\\", "")]
    found = [f.replace("\n", "") for f in found]
    if not found:
        return 0.0
    if len(found) > 1:
        words = [w for block in found for w in block.split(",")][-len(want_words) :]
    else:
        words = found[-1].split(",")
    want = _groups(want_words)
    right = {frozenset(g) for g in _groups(words) if g in want}  # livebench.refuse-repeated-group
    return len(right) / len(want)


def _new_puzzle(ctx: dict, undated: bool) -> bool:
    """The <solution>-tag evaluator: by release date, else by the prompt's wording, else ``undated``."""
    if ctx["date"] is not None:
        return ctx["date"] >= NEW_PUZZLES
    if ctx["turns"]:
        return any("<solution>" in turn for turn in ctx["turns"])
    return undated


def _connections(region: str, truth: str, ctx: dict) -> float:
    new = _new_puzzle(ctx, undated=False)
    return (_connections_new if new else _connections_old)(region, truth, ctx)


def _typos(region: str, truth: str, ctx: dict) -> float:
    if not truth:  # nothing to find (and "" occurs at every position: quadratic on long answers)
        return 0.0
    found = re.findall(r"<solution>(.*?)</solution>", region)
    if found:
        parsed = found[-1]
    else:
        parsed = region.replace("<solution>", "").replace("</solution>", "")
        # the search backtracks quadratically on long text; it cannot match without two separators
        marked = re.search(r".* --- (.*?) --- .*", parsed) if parsed.count(" --- ") >= 2 else None
        if marked:
            parsed = marked.group(1)
    parsed = " ".join(line for line in parsed.strip().split("\n") if line)
    if truth not in parsed:
        return 0.0
    for at in (m.start() for m in re.finditer(re.escape(truth), parsed)):
        before, after = parsed[:at].rstrip(" :,;"), parsed[at + len(truth) :].lstrip(" .,;")
        if re.search(r"\bor$", before, re.IGNORECASE) or re.match(r"or\b", after, re.IGNORECASE):
            return 0.0  # livebench.refuse-hedge: "X or <text>"
    return 1.0


def _levenshtein(a: list[int], b: list[int]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


_PLOT_MATCH = 0.5  # below this similarity an answer sentence is not the true sentence it is closest to


def _plot(region: str, truth: str, ctx: dict) -> float:
    tagged = re.search(r"<PLOT_SUMMARY>(.*)</PLOT_SUMMARY>", region, re.DOTALL) or re.search(
        r"<PLOT_SUMMARY>(.*)", region, re.DOTALL
    )
    text = tagged.group(1) if tagged else region
    want = [s.strip() for s in truth.split(".") if s.strip()]
    got = [
        s.strip()
        for s in text.split(".")
        if s.strip() and s.strip() not in ("</PLOT_SUMMARY>", "**End of Plot Summary**")
    ]
    if not want:
        return 0.0
    order = []
    for sentence in want:
        best = difflib.get_close_matches(sentence, got, n=1, cutoff=0.0)
        if not best:
            continue
        if got.count(best[0]) > 1:
            return 0.0  # livebench.plot-repeats: a sentence told twice (the plot told twice, a hedge)
        if difflib.SequenceMatcher(None, best[0], sentence).ratio() < _PLOT_MATCH:
            continue  # livebench.plot-unmatched: no answer sentence resembles this one
        order.append(got.index(best[0]))
    return 1.0 - _levenshtein(list(range(len(want))), order) / len(want)


# --------------------------------------------------------------------------------------- data analysis


def _classes(turns: list[str]) -> list[str]:
    for turn in turns:
        listed = re.search(r"Classes:\s*\[(.*?)\]", turn, re.DOTALL)
        if listed:
            return [c for c in re.findall(r"'([^']*)'", listed.group(1)) if c]
    return []


def _cta(region: str, truth: str, ctx: dict) -> float:
    parsed = region
    if "\\boxed{" in parsed:
        box = _last_box(parsed)
        if box is None:
            raise _Unparsable(parsed[-50:])
        parsed = box.replace("\\text{", "").replace("}", "").replace("\\", "")
    want = re.sub(r"[^\w]", "", truth.lower().strip())
    lowered = parsed.lower().strip()
    kept = [(i, ch) for i, ch in enumerate(lowered) if re.match(r"\w", ch)]
    got = "".join(ch for _, ch in kept)
    if not want or not got.endswith(want):
        return 0.0
    if got != want:
        start = kept[len(kept) - len(want)][0]
        if start > 0 and re.match(r"\w", lowered[start - 1]):
            return 0.0  # livebench.cta-whole-name (an underscore joins the name to a longer one)
        before = lowered[:start].rstrip(" \t'\"`*")
        if re.search(r"(?:\bor|\band|,|/|\|)$", before):
            return 0.0  # livebench.refuse-hedge ("a or b", "a, b")
        line = lowered[: len(lowered)].splitlines()[-1] if lowered.splitlines() else lowered
        named = {
            c
            for c in _classes(ctx["turns"])
            if re.search(r"(?<!\w)" + re.escape(c.lower()) + r"(?!\w)", line)
        }
        if len(named) > 1:
            return 0.0  # livebench.refuse-hedge (several listed classes named)
    return 1.0


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except Exception:  # noqa: BLE001 - any unreadable text is "no mapping", as in the reference
        return _Unparsable


def _join_mapping(text: str) -> dict:
    found = re.findall(r"<solution>(.*?)</solution>", text, re.DOTALL)
    if found:
        return _join_mapping(found[-1].strip())
    value = _literal(text)
    if value is _Unparsable:
        flat = text.replace("\n", "")
        blocks = (
            re.findall(r"```python(.*?)```", flat)
            or re.findall(r"```json(.*?)```", flat)
            or re.findall(r"```(.*?)```", flat)
        )
        if not blocks and "\\boxed" in text:
            box = _last_box(text.replace("\n", ""))
            if box:
                blocks = [re.sub(r"\\text{['|\"](.*?)['|\"]}", r"'\1'", box).replace("\\", "")]
        candidate = (blocks[-1] if blocks else text).replace("null", "None")
        value = _literal(candidate)
        if value is _Unparsable:
            return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if v is not None}


def _tablejoin(region: str, truth: str, ctx: dict) -> float:
    expected = ast.literal_eval(truth)
    predicted = _join_mapping(region)
    if not predicted:
        return 0.0
    tp = fp = fn = 0
    for key, value in predicted.items():
        want = expected.get(key)
        if not want:
            fp += 1
        elif want == value:
            tp += 1
        else:
            fp += 1
            fn += 1
    fn += sum(1 for key in expected if not predicted.get(key))
    return float(np.round(2 * tp / (2 * tp + fp + fn), 2))


# tablereformat: pandas reads both tables, as in the reference


class _HtmlTables(HTMLParser):
    """Rows of every <table> (cell text, and whether the cell was a <th>): pandas.read_html's input."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[tuple[str, bool]]]] = []
        self._cell: list[str] | None = None
        self._th = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables and self.tables[-1]:
            self._cell, self._th = [], tag == "th"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append((" ".join("".join(self._cell).split()), self._th))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _read_html(text: str) -> Any:
    import pandas as pd

    parser = _HtmlTables()
    parser.feed(text)
    frames = []
    for rows in parser.tables:
        rows = [r for r in rows if r]
        if not rows:
            continue
        header = 0
        while header < len(rows) - 1 and all(th for _, th in rows[header]):
            header += 1
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        if header:
            writer.writerow([c for c, _ in rows[header - 1]])
        writer.writerows([c for c, _ in r] for r in rows[header:])
        frames.append(pd.read_csv(io.StringIO(buffer.getvalue()), header=0 if header else None))
    if not frames:
        raise ValueError("No tables found")
    return pd.concat(frames, axis=0)


def _read_table(kind: str, text: str, v2: bool) -> Any:
    import pandas as pd

    source = io.StringIO
    if kind == "json":
        orients = [("table", {}), ("index", {}), ("records", {})] if v2 else [
            ("index", {}), ("records", {}), ("records", {"lines": True}), ("table", {})
        ]  # fmt: skip
        for orient, more in orients:
            try:
                return pd.read_json(source(text), orient=orient, encoding="utf-8", **more)
            except Exception:  # noqa: BLE001 - the next orientation is tried, as in the reference
                continue
        if v2:
            return None
        return pd.read_json(source(text), orient="values", encoding="utf-8")
    if kind == "jsonl":
        return pd.read_json(source(text), orient="records", lines=True, encoding="utf-8")
    if kind == "html":
        return _read_html(text)
    if kind == "csv":
        return pd.read_csv(source(text), encoding="utf-8")
    if kind == "tsv":
        return pd.read_csv(source(text), sep="\t", encoding="utf-8")
    if kind == "markdown":
        if not v2:
            return pd.read_table(source(text), sep="|", header=0, index_col=1, skipinitialspace=True)
        lines = text.strip().split("\n")
        body = lines[0] + "\n" + "\n".join(lines[2:] if len(lines) > 2 else [])
        frame = pd.read_table(source(body), sep="|", header=0, skipinitialspace=True).iloc[:, 1:-1]
        for column in frame.columns:
            if frame[column].dtype == "object":
                frame[column] = frame[column].astype(str).str.strip()
        return frame
    raise ValueError(f"unsupported table format {kind!r}")


def _table_text(text: str) -> str:
    found = re.findall(r"<solution>(.*?)</solution>", text, re.DOTALL)
    if found:
        return _table_text(found[-1].strip())
    for fence in (r"```json\n(.*?)```", r"```html\n(.*?)```"):
        found = re.findall(fence, text, re.DOTALL)
        if found:
            return found[-1].strip()
    text = re.sub(r"^```.*\n", "", text).replace("&amp;", "&")
    text = text.replace("```", "").strip()
    text = re.sub(r"^\s*(Here|Input)\b.*?\b(format|table)\s*[:)]\s*", "", text, flags=re.IGNORECASE)
    return text.strip()


def _sep_table_in_text(text: str, header: str, sep: str) -> Any:
    import pandas as pd

    lines = text.strip().split("\n")
    at = next((i for i, line in enumerate(lines) if line.strip() == header.strip()), None)
    if at is None:
        return None
    table = lines[at:]
    while table:
        try:
            return pd.read_csv(io.StringIO("\n".join(table)), sep=sep)
        except Exception:  # noqa: BLE001 - drop trailing text until it parses, as in the reference
            table = table[:-1]
    return None


def _jsonl_table_in_text(text: str, columns: Any) -> Any:
    import pandas as pd

    rows = []
    for line in text.strip().split("\n"):
        if len(line) < 2 or line[0] != "{" or line[-1] != "}" or not all(c in line for c in columns):
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return pd.DataFrame(rows) if rows else None


def _same_table(got: Any, want: Any) -> bool:
    from pandas.api.types import is_numeric_dtype

    try:
        want.columns = [str(c).strip() for c in want.columns]
        got.columns = [str(c).strip() for c in got.columns]
        if "index" in want.columns:
            want = want.drop(columns=["index"])
        if "index" in got.columns:
            got = got.drop(columns=["index"])
        if len(got) != len(want) or sorted(got.columns) != sorted(want.columns):
            return False
        for i in range(len(got)):
            for key in got.columns:
                a, b = got.iloc[i][key], want.iloc[i][key]
                a = a.strip() if isinstance(a, str) else a
                b = b.strip() if isinstance(b, str) else b
                if (isinstance(a, float) or is_numeric_dtype(a)) and (
                    isinstance(b, float) or is_numeric_dtype(b)
                ):
                    try:
                        a, b = float(a), float(b)
                    except (TypeError, ValueError):
                        if str(a).strip() != str(b).strip():
                            return False
                        continue
                    if math.isnan(a) and math.isnan(b):
                        continue
                    if not abs(a - b) < 1e-6:
                        return False
                elif not bool(a == b):
                    return False
    except Exception:  # noqa: BLE001 - a table that cannot be compared is not the same table
        return False
    return True


def _formats(turns: list[str], truth: str) -> tuple[str, bool]:
    """The target format and whether the prompt is LiveBench's v2 wording."""
    for turn in reversed(turns):
        target = re.findall(r"Target Format:\s*(.*)", turn)
        if target:
            return target[-1].strip().lower(), True
        v1 = re.search(r"Please convert the Input Table from .*? format to (.*?) format", turn, re.DOTALL)
        if v1:
            return v1.group(1).strip().lower(), False
    text = truth.strip()
    if text.startswith("<"):
        return "html", False
    if text.startswith("|"):
        return "markdown", False
    if text.startswith("{") and "\n{" in text:
        return "jsonl", False
    if text.startswith(("{", "[")):
        return "json", False
    return ("tsv" if "\t" in text.split("\n")[0] else "csv"), False


def _tablereformat(region: str, truth: str, ctx: dict) -> float:
    with warnings.catch_warnings():  # pandas' deprecation notes on the readers LiveBench calls
        warnings.simplefilter("ignore")
        return _tablereformat_quiet(region, truth, ctx)


def _tablereformat_quiet(region: str, truth: str, ctx: dict) -> float:
    kind, v2 = _formats(ctx["turns"], truth)
    if ctx["date"] is not None:
        v2 = ctx["date"] >= TABLE_V2
    want = _read_table(kind, truth, v2)
    text = _table_text(region)
    try:
        got = _read_table(kind, text, v2)
    except Exception:  # noqa: BLE001 - unreadable as a whole: look for the table inside the text
        got = None
        if kind in ("csv", "tsv"):
            got = _sep_table_in_text(
                text, ("\t" if kind == "tsv" else ",").join(want.columns), "\t" if kind == "tsv" else ","
            )
        elif kind == "jsonl":
            got = _jsonl_table_in_text(text, want.columns)
        if got is None:
            return 0.0
    if _same_table(got, want):
        return 1.0
    if kind == "csv":
        got = _sep_table_in_text(text, ",".join(want.columns), ",")
    elif kind == "jsonl":
        got = _jsonl_table_in_text(text, want.columns)
    return float(got is not None and _same_table(got, want))


# ------------------------------------------------------------------------------------------------ router

_RULES = {
    "web_of_lies_v2": _web_of_lies,
    "web_of_lies_v3": _web_of_lies_v3,
    "spatial": _spatial,
    "connections": _connections,
    "typos": _typos,
    "plot_unscrambling": _plot,
    "cta": _cta,
    "tablejoin": _tablejoin,
    "tablereformat": _tablereformat,
}


def _rule(task: str) -> Any:
    if "zebra_puzzle" in task:
        return _zebra
    return _RULES.get(task)


@register("livebench")
def livebench(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """Score by the LiveBench subtask rule named in ``extra_info["task"]`` (see the module docstring for
    the rules and the written decisions ``livebench.*``)."""
    extra_info = extra_info if isinstance(extra_info, dict) else {}
    task = str(extra_info.get("task", "")).strip()
    rule = _rule(task)
    if rule is None:
        if task not in _warned:
            _warned.add(task)
            log.warning("livebench: subtask %r is not covered; scored 0", task)
        return 0.0
    region = answer_region(response)  # livebench.unclosed-think: None when <think> never closes
    if region is None:
        return 0.0
    turns = _turns(extra_info)
    region = _without_prompt(region, turns)
    ctx = {"date": _release(extra_info), "turns": turns}
    try:
        value = float(rule(region, str(ground_truth), ctx))
    except Exception:  # noqa: BLE001 - LiveBench scores any failure while grading 0
        return 0.0
    return min(1.0, max(0.0, value)) if math.isfinite(value) else 0.0
