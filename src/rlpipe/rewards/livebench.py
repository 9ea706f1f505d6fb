"""LiveBench scorer (reasoning, language, data_analysis), routed by ``extra_info["task"]``.

``livebench``: the answer region (after ``</think>``) is graded by the subtask's rule. Covered subtasks:

* reasoning ``web_of_lies_v2`` (and ``web_of_lies*``): the last ``**bold**`` span (else last ``\\boxed{}``)
  lists yes/no/unknown words; 1 when the list equals the ground truth's list.
* reasoning ``zebra_puzzle``: ``<solution>a, b, c</solution>``; 1 when every comma-separated item equals
  the ground truth's (case-folded, whitespace-normalised).
* reasoning ``spatial``: last bold span (else ``\\boxed{}``); equal to the ground truth after normalisation,
  number words zero-twenty read as digits.
* language ``connections``: ``<solution>`` holds the words, consecutive groups of four; score = fraction of
  ground-truth groups (groups of four in the ground-truth order) matched as sets by a predicted group.
* language ``typos``: 1 when the whitespace-normalised ground-truth text occurs in the answer region.
* language ``plot_unscrambling``: the response's lines are mapped to the closest ground-truth sentence
  (difflib ratio >= 0.8); score = 1 - (edit distance between the predicted and true order) / n.
* data_analysis ``cta``: the last non-empty line, stripped of quotes/backticks/markdown and final
  punctuation, equals the class name case-insensitively.
* data_analysis ``tablejoin``: the last ``{...}`` mapping (JSON or Python literal) vs the ground-truth
  mapping: F1 over (left column, right column) pairs.
* data_analysis ``tablereformat``: ground truth and answer (the last fenced block, else the whole answer
  region) are read as tables in any of JSON records, JSON ``{row: {col: v}}`` / ``{col: {row: v}}``, JSONL,
  HTML, markdown, TSV, CSV; 1 when some reading of the answer has the same set of rows (column name to
  cell; cells whitespace-normalised and case-folded, numbers compared as numbers) as some reading of
  the ground truth. Row order is ignored (JSON objects do not keep it across orientations).

Not covered (score 0, logged once per task): ``house_traversal`` and any other task.
"""

from __future__ import annotations

import ast
import csv
import difflib
import json
import logging
import re
from html.parser import HTMLParser
from typing import Any

from rlpipe.rewards.extract import answer_region, last_boxed, strip_text_macro
from rlpipe.rewards.registry import register

log = logging.getLogger(__name__)
_warned: set[str] = set()

_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        [
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
        ]
    )
}


def _norm(text: str) -> str:
    text = strip_text_macro(str(text)).casefold()
    text = re.sub(r"[*_`\"'.]", "", text)
    return " ".join(text.split())


def _last_bold(region: str) -> str | None:
    found = re.findall(r"\*\*(.+?)\*\*", region, re.DOTALL)
    if found:
        return found[-1]
    return last_boxed(region)


def _last_solution(region: str) -> str | None:
    found = re.findall(r"<solution>(.*?)</solution>", region, re.DOTALL | re.IGNORECASE)
    return found[-1] if found else None


def _items(text: str) -> list[str]:
    return [_norm(p) for p in re.split(r"[,\n]", text) if p.strip()]


def _web_of_lies(region: str, truth: str) -> float:
    answer = _last_bold(region)
    if answer is None:
        return 0.0
    words = re.findall(r"\b(yes|no|unknown)\b", answer.casefold())
    return float(bool(words) and words == re.findall(r"\b(yes|no|unknown)\b", truth.casefold()))


def _zebra(region: str, truth: str) -> float:
    answer = _last_solution(region)
    return float(answer is not None and _items(answer) == _items(truth))


def _spatial(region: str, truth: str) -> float:
    answer = _last_bold(region)
    if answer is None:
        return 0.0
    a, t = _norm(answer), _norm(truth)
    return float(_NUMBER_WORDS.get(a, a) == _NUMBER_WORDS.get(t, t))


def _connections(region: str, truth: str) -> float:
    answer = _last_solution(region)
    if answer is None:
        return 0.0
    truth_words, pred_words = _items(truth), _items(answer)
    truth_groups = [frozenset(truth_words[i : i + 4]) for i in range(0, len(truth_words), 4)]
    pred_groups = {frozenset(pred_words[i : i + 4]) for i in range(0, len(pred_words), 4)}
    if not truth_groups:
        return 0.0
    return sum(g in pred_groups for g in truth_groups) / len(truth_groups)


def _typos(region: str, truth: str) -> float:
    return float(" ".join(truth.split()) in " ".join(region.split()))


def _edit_distance(a: list[int], b: list[int]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def _plot(region: str, truth: str) -> float:
    sentences = [s.strip() for s in truth.splitlines() if s.strip()]
    if not sentences:
        return 0.0
    order: list[int] = []
    for line in region.splitlines():
        line = line.strip()
        if not line:
            continue
        ratios = [difflib.SequenceMatcher(None, line, s).ratio() for s in sentences]
        best = max(range(len(sentences)), key=ratios.__getitem__)
        if ratios[best] >= 0.8 and best not in order:
            order.append(best)
    return max(0.0, 1.0 - _edit_distance(order, list(range(len(sentences)))) / len(sentences))


def _cta(region: str, truth: str) -> float:
    lines = [line for line in region.strip().splitlines() if line.strip()]
    if not lines:
        return 0.0
    return float(_norm(lines[-1]).rstrip(".:;!") == _norm(truth))


def _mapping(text: str) -> dict | None:
    found = re.findall(r"\{[^{}]*\}", text, re.DOTALL)
    for candidate in reversed(found):
        for decode in (json.loads, ast.literal_eval):
            try:
                value = decode(candidate)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(value, dict):
                return value
    return None


def _tablejoin(region: str, truth: str) -> float:
    predicted, expected = _mapping(region), _mapping(truth)
    if not predicted or not expected:
        return 0.0
    p = {(str(k), str(v)) for k, v in predicted.items()}
    t = {(str(k), str(v)) for k, v in expected.items()}
    hits = len(p & t)
    if not hits:
        return 0.0
    precision, recall = hits / len(p), hits / len(t)
    return 2 * precision * recall / (precision + recall)


def _cell_text(value: Any) -> str:
    text = " ".join(str(value).split()).strip().strip('"').casefold()
    try:
        number = float(text.replace(",", "")) if text not in ("nan", "inf", "-inf") else None
    except ValueError:
        number = None
    return format(number, ".10g") if number is not None else text


class _HtmlTable(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _grid_to_rows(grid: list[list[str]]) -> list[dict[str, Any]] | None:
    grid = [row for row in grid if any(c.strip() for c in row)]
    if len(grid) < 2 or any(len(row) != len(grid[0]) for row in grid):
        return None
    return [dict(zip(grid[0], row, strict=True)) for row in grid[1:]]


def _table_views(text: str) -> list[list[dict[str, Any]]]:
    """Every plausible reading of ``text`` as a table (list of row dicts), over the formats LiveBench uses."""
    text = text.strip()
    fence = re.search(r"```[a-zA-Z]*\n(.*?)```", text, re.DOTALL)
    if fence:
        text = fence.group(1).strip()
    views: list[list[dict[str, Any]]] = []
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        views.append(value)
    elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        views.append(list(value.values()))  # orient="index": {row: {col: value}}
        keys = list(dict.fromkeys(k for v in value.values() for k in v))
        views.append([{col: value[col].get(k) for col in value} for k in keys])  # orient="columns"
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        records = [json.loads(line) for line in lines]
        if records and all(isinstance(r, dict) for r in records):
            views.append(records)
    except (ValueError, RecursionError):
        pass
    if "<tr" in text.lower():
        parser = _HtmlTable()
        parser.feed(text)
        if rows := _grid_to_rows(parser.rows):
            views.append(rows)
    if lines and all("|" in line for line in lines):
        grid = [
            [c.strip() for c in line.strip().strip("|").split("|")]
            for line in lines
            if not re.fullmatch(r"[\s|:-]+", line)
        ]
        if rows := _grid_to_rows(grid):
            views.append(rows)
    for delimiter in ("\t", ","):
        if (
            lines
            and delimiter in lines[0]
            and (rows := _grid_to_rows(list(csv.reader(lines, delimiter=delimiter))))
        ):
            views.append(rows)
    return views


def _canonical(rows: list[dict[str, Any]]) -> tuple:
    return tuple(
        sorted(tuple(sorted((_cell_text(k), _cell_text(v)) for k, v in row.items())) for row in rows)
    )


def _tablereformat(region: str, truth: str) -> float:
    truths = {_canonical(v) for v in _table_views(truth)}
    return float(bool(truths) and any(_canonical(v) in truths for v in _table_views(region)))


_RULES = {
    "web_of_lies": _web_of_lies,
    "zebra_puzzle": _zebra,
    "spatial": _spatial,
    "connections": _connections,
    "typos": _typos,
    "plot_unscrambling": _plot,
    "cta": _cta,
    "tablejoin": _tablejoin,
    "tablereformat": _tablereformat,
}


def _rule(task: str) -> Any:
    if task.startswith("web_of_lies"):
        return _web_of_lies
    return _RULES.get(task)


@register("livebench")
def livebench(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """Score by the LiveBench subtask rule named in ``extra_info["task"]`` (see module docstring)."""
    task = str((extra_info or {}).get("task", "")).strip()
    rule = _rule(task)
    if rule is None:
        if task not in _warned:
            _warned.add(task)
            log.warning("livebench: subtask %r is not covered; scored 0", task)
        return 0.0
    region = answer_region(response)
    if region is None:
        return 0.0
    return float(rule(region, str(ground_truth)))
