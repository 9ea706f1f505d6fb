"""Logic-puzzle scorers: ARC-AGI grids, zebra puzzles, ordering puzzles.

All three read the last ``<answer>...</answer>`` block of the answer region, matched with DOTALL so
multi-line answers count (the reference's missing DOTALL scored every multi-line answer 0). The
content is decoded as JSON, else as a Python literal. Ground truths may arrive as numpy arrays from
parquet; anything with ``tolist()`` is converted.

``arc_grid``: exact match of the grid (list of rows of ints). Besides ``[[1,2],[3,4]]`` (also embedded in
prose inside the tag) the answer may be rows of digits, one row per line, separated by spaces or commas
(``1 2\\n3 4``), or runs of digits (``12\\n34``). A string ground truth may also be numpy's printed form
(``[[1 2]\\n [3 4]]``). Any shape difference scores 0 (the reference's per-pixel partial credit is not
used: the suite's metric is exact match).

``zebra``: ground truth ``{"header": [...], "rows": [[...], ...]}``. The answer is the same kind of dict
(or just its ``rows`` list). Score = fraction of ground-truth cells whose predicted cell (same row and
column index) equals it after stripping and case-folding; missing rows/cells count as wrong.

``ordering``: ground truth is a list of item names; 1 when the answer's list has exactly the same items
in the same order (items compared after whitespace normalisation and case-folding). The answer may be a
JSON/Python list or one item per line / comma-separated.
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
    """Fraction of ground-truth cells reproduced at the same position in the answer's table."""
    truth = _to_py(ground_truth)
    if isinstance(truth, str):
        truth = _decode(truth)
    if not isinstance(truth, dict) or not isinstance(truth.get("rows"), list):
        return 0.0
    answer = _answer(response)
    if answer is None:
        return 0.0
    predicted = _decode(answer)
    rows = predicted.get("rows") if isinstance(predicted, dict) else predicted
    if not isinstance(rows, list):
        return 0.0
    total = correct = 0
    for i, truth_row in enumerate(truth["rows"]):
        pred_row = rows[i] if i < len(rows) and isinstance(rows[i], list | tuple) else []
        for j, cell in enumerate(truth_row):
            total += 1
            correct += int(j < len(pred_row) and _cell(pred_row[j]) == _cell(cell))
    return correct / total if total else 0.0


def _items(value: Any) -> list[str] | None:
    if isinstance(value, list | tuple):
        return [_cell(v) for v in value]
    return None


@register("ordering")
def ordering(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the answer lists exactly the ground-truth items in the same order."""
    truth = _to_py(ground_truth)
    if isinstance(truth, str):
        truth = _decode(truth)
    expected = _items(truth)
    answer = _answer(response)
    if expected is None or answer is None:
        return 0.0
    predicted = _items(_decode(answer))
    if predicted is None:
        parts = answer.splitlines() if "\n" in answer.strip() else answer.split(",")
        predicted = [_cell(re.sub(r"^\s*(\d+[.)]|[-*])\s*", "", p)) for p in parts if p.strip()]
    return float(predicted == expected)
