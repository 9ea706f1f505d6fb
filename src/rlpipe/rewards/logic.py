"""Logic-puzzle scorers: ARC-AGI grids, zebra puzzles, ordering puzzles.

All three read the last ``<answer>...</answer>`` block of the answer region (the text after the last
``</think>``; an unclosed ``<think>`` has no answer), matched with DOTALL so multi-line answers count.
The content is decoded as JSON, else as a Python literal. Ground truths may arrive as numpy arrays from
parquet; anything with ``tolist()`` is converted.

``arc_grid``: exact match of the grid (list of rows of ints). Besides ``[[1,2],[3,4]]`` (also embedded in
prose inside the tag) the answer may be rows of digits, one row per line, separated by spaces or commas
(``1 2\\n3 4``), or runs of digits (``12\\n34``). A string ground truth may also be numpy's printed form
(``[[1 2]\\n [3 4]]``). Any shape difference scores 0 (the suite's metric is exact match).

``zebra``: ground truth ``{"header": [...], "rows": [[...], ...]}``. The answer is the same kind of dict.
Score = fraction of ground-truth cells whose predicted cell (same row and column index) equals it after
stripping and case-folding. An answer with fewer rows, or a row with fewer cells, than the truth
scores 0 (as in the reference); extra rows and cells are ignored.

``ordering``: ground truth is a list of item names; 1 when the answer's list has exactly the same items
in the same order (items compared after whitespace normalisation and case-folding). The answer may be a
JSON/Python list, one bracketed list inside prose (``the order is [a, b, c]``), or one item per line /
comma-separated.

Reference: GURU (Reasoning360 ``verl/utils/reward_score/arcagi.py``, ``zebra_puzzle.py``,
``puzzles_dataset.py``). Written decisions where rlpipe differs:

- ``arc_grid.answer-after-think``, ``zebra.answer-after-think``, ``ordering.answer-after-think``: the
  reference reads the last ``<answer>`` anywhere, so an answer inside the reasoning, or in a response cut
  off inside an unclosed ``<think>``, is graded; rlpipe grades only the text after ``</think>``.
- ``arc_grid.spaced-brackets``: the reference needs the literal ``[[`` and ``]]``, so a pretty-printed
  grid (``[`` on its own line) scores 0 there; rlpipe decodes it.
- ``arc_grid.digit-rows``: rlpipe also reads rows of digits (``1 2\\n3 4``) and numpy's printed form;
  the reference reads only list literals.
- ``arc_grid.refuse-default-grid``: the reference replaces an unreadable answer with the grid
  ``[[0]]``, which pays any non-answer on a ``[[0]]`` ground truth; rlpipe scores no grid 0.
- ``arc_grid.refuse-hedge``: the reference grades the first grid in the answer, so ``[[right]] or maybe
  [[wrong]]`` earns reward; rlpipe refuses an answer holding two grids.
- ``zebra.multiline-answer``, ``ordering.multiline-answer``: the reference's ``<answer>`` regex lacks
  DOTALL, so every answer spanning lines (pretty-printed JSON, one item per line) scores 0 there.
- ``zebra.cell-normalisation``: the reference compares cells with ``==``, so ``"British"``, ``" cat "``
  or the number ``1`` miss the truth's ``"british"``, ``"cat"``, ``"1"``; rlpipe compares stripped,
  case-folded text.
- ``ordering.casefold-truth``: the reference lower-cases the prediction but not the truth, so puzzles
  over capitalised names (GURU's "people" puzzles) always score 0 there; rlpipe case-folds both.
- ``ordering.plain-list``: rlpipe also reads an unbracketed ``a, b, c`` (the reference scores it 0).
- ``ordering.refuse-hedge``: the reference takes the first bracketed list, so ``[a, b] or [b, a]``
  earns reward; rlpipe scores an answer with several lists 0.
- ``ordering.exact-items``: the reference keeps only the word characters of the list, so an item
  ``...`` (``['a', 'b', ...]``) vanishes; rlpipe compares whole items, and ``...`` is not one.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from rlpipe.rewards.extract import answer_region, last_answer_tag
from rlpipe.rewards.registry import register


def _to_py(value: Any) -> Any:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _to_py(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_py(v) for v in value]
    return value


def _decode(text: str) -> Any:
    text = text.strip()
    fence = re.fullmatch(r"```[a-zA-Z]*\s*\n?(.*?)\n?```", text, re.DOTALL)
    if fence:
        text = fence.group(1).strip()
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _answer(response: str) -> str | None:
    region = answer_region(response)
    return None if region is None else last_answer_tag(region)


def parse_grid(text: str) -> list[list[int]] | None:
    """A grid of ints from a list literal or from digit rows; None when it is not one."""
    value = _decode(text)
    if isinstance(value, list | tuple) and value and all(isinstance(r, list | tuple) for r in value):
        try:
            return [[int(c) for c in row] for row in value]
        except (TypeError, ValueError):
            return None
    embedded = re.search(r"\[\s*\[.*\]\s*\]", text, re.DOTALL)
    if embedded and embedded.group(0) != text.strip():  # "The output grid is [[1, 2], [3, 4]]."
        return parse_grid(embedded.group(0))
    rows = [line.strip().strip("[],") for line in text.strip().splitlines() if line.strip()]
    grid: list[list[int]] = []
    for row in rows:
        if re.fullmatch(r"\d+", row):
            grid.append([int(c) for c in row])
        elif re.fullmatch(r"\d+([\s,]+\d+)*", row):
            grid.append([int(c) for c in re.split(r"[\s,]+", row)])
        else:
            return None
    return grid or None


@register("arc_grid")
def arc_grid(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the grid in the last ``<answer>`` block equals the ground-truth grid exactly."""
    answer = _answer(response)
    if answer is None:
        return 0.0
    truth = _to_py(ground_truth)
    if isinstance(truth, str):
        truth = parse_grid(truth)
    predicted = parse_grid(answer)
    if predicted is None or not isinstance(truth, list):
        return 0.0
    try:
        return float(predicted == [[int(c) for c in row] for row in truth])
    except (TypeError, ValueError):
        return 0.0


def _cell(value: Any) -> str:
    return " ".join(str(value).split()).casefold()


@register("zebra")
def zebra(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """Fraction of ground-truth cells reproduced at the same position in the answer's table.

    The answer must be a ``{"header", "rows"}`` dict with at least the truth's rows and cells (a shorter
    table, or a bare rows list, scores 0, as in the reference). Decisions: ``zebra.multiline-answer``,
    ``zebra.cell-normalisation``, ``zebra.answer-after-think`` (module docstring).
    """
    truth = _to_py(ground_truth)
    if isinstance(truth, str):
        truth = _decode(truth)
    if not isinstance(truth, dict) or not isinstance(truth.get("rows"), list):
        return 0.0
    answer = _answer(response)
    if answer is None:
        return 0.0
    predicted = _decode(answer)
    rows = predicted.get("rows") if isinstance(predicted, dict) else None
    if not isinstance(rows, list) or len(rows) < len(truth["rows"]):
        return 0.0
    total = correct = 0
    for truth_row, pred_row in zip(truth["rows"], rows, strict=False):
        if not isinstance(pred_row, list | tuple) or len(pred_row) < len(truth_row):
            return 0.0
        for truth_cell, pred_cell in zip(truth_row, pred_row, strict=False):
            total += 1
            correct += int(_cell(pred_cell) == _cell(truth_cell))
    return correct / total if total else 0.0


def _items(value: Any) -> list[str] | None:
    if isinstance(value, list | tuple) and all(isinstance(v, str | int | float) for v in value):
        return [_cell(v) for v in value]
    return None


_BRACKETED = re.compile(r"\[([^\[\]]*)\]")


def _listed_items(answer: str) -> list[str] | None:
    """Items of the one bracketed list in ``answer`` (prose around it allowed); None for 0 or 2+ lists."""
    lists = _BRACKETED.findall(answer)
    if len(lists) != 1:
        return None
    return [_cell(p.strip().strip("'\"").strip()) for p in lists[0].split(",") if p.strip()]


@register("ordering")
def ordering(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the answer lists exactly the ground-truth items in the same order.

    Decisions: ``ordering.multiline-answer``, ``ordering.casefold-truth``, ``ordering.plain-list``,
    ``ordering.refuse-hedge``, ``ordering.answer-after-think`` (module docstring).
    """
    truth = _to_py(ground_truth)
    if isinstance(truth, str):
        truth = _decode(truth)
    expected = _items(truth)
    answer = _answer(response)
    if expected is None or answer is None:
        return 0.0
    predicted = _items(_decode(answer))
    if predicted is None and "[" in answer:
        if len(_BRACKETED.findall(answer)) > 1:  # "[a, b] or [b, a]": a hedge
            return 0.0
        predicted = _listed_items(answer)
    if predicted is None:
        parts = answer.splitlines() if "\n" in answer.strip() else answer.split(",")
        predicted = [_cell(re.sub(r"^\s*(\d+[.)]|[-*])\s*", "", p)) for p in parts if p.strip()]
    return float(predicted == expected)
