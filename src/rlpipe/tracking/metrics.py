"""Training metrics files (``metrics.jsonl``): one JSON object per logged step, finite numbers only.

``NaN`` is not JSON, and a NaN (or a string) where a number belongs would flow into the run's
diagnosis and the report as if it were a measurement. So the one writer, :func:`metrics_row`,
refuses non-finite values: they are not written; their names are listed under
``"nonfinite"`` and a warning says which step (a diverged loss stays visible). The one reader,
:func:`read_metrics`, refuses anything else: a value that is neither a finite number nor one of
the few text fields is an error naming the file, line and key.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from typing import Any

from rlpipe.tracking.io import iter_jsonl

log = logging.getLogger(__name__)

#: Fields that hold text, not measurements.
TEXT_KEYS = frozenset({"run"})
#: The field listing the metrics of a step whose value was not finite.
NONFINITE_KEY = "nonfinite"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def metrics_row(values: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """The line to append for one step: ``fields`` (step, run, time) then ``values``' numbers.

    Values that are not numbers (a trainer's nested or text logs) are left out; non-finite numbers
    are refused: left out and named under ``"nonfinite"``, with a warning.
    """
    row: dict[str, Any] = {}
    refused = []
    for key, value in {**fields, **values}.items():
        if key in TEXT_KEYS and isinstance(value, str):
            row[key] = value
        elif _is_number(value):
            if math.isfinite(value):
                row[key] = value
            else:
                refused.append(key)
    if refused:
        row[NONFINITE_KEY] = sorted(refused)
        log.warning(
            "step %s: non-finite %s not written to the metrics", row.get("step"), ", ".join(sorted(refused))
        )
    return row


def append_metrics(path: str | os.PathLike[str], row: Mapping[str, Any]) -> None:
    """Append one row (from :func:`metrics_row`) as a line, flushed: a crash loses at most it."""
    with open(path, "a") as fh:
        fh.write(json.dumps(row, allow_nan=False) + "\n")
        fh.flush()


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every row of a metrics file, checked: ``ValueError`` names the file, line and key of a
    malformed line or of a value that is not a finite number (``NaN``, ``"NaN"``, ``true``...)."""
    rows = []
    for lineno, _, row in iter_jsonl(path, noun="metrics line"):
        for key, value in row.items():
            if key in TEXT_KEYS and isinstance(value, str):
                continue
            if key == NONFINITE_KEY and isinstance(value, list) and all(isinstance(v, str) for v in value):
                continue
            if not _is_number(value) or not math.isfinite(value):
                raise ValueError(f"{path}:{lineno}: metric {key!r} is {value!r}, not a finite number")
        rows.append(row)
    return rows
