"""Issue 23: metrics files hold finite numbers only; the writer refuses NaN/inf, the reader names
the file, line and key of anything else (a "NaN" string must not reach the diagnosis)."""

from __future__ import annotations

import json
import logging
import math

import pytest

from rlpipe.analysis.diagnostics import diagnose_metrics_file
from rlpipe.tracking.metrics import append_metrics, metrics_row, read_metrics


def test_the_writer_refuses_non_finite_values_and_says_which(tmp_path, caplog) -> None:
    path = tmp_path / "metrics.jsonl"
    with caplog.at_level(logging.WARNING):
        row = metrics_row({"loss": math.nan, "reward": 0.5, "grad_norm": math.inf, "flag": True, "x": [1]},
                          step=3, run="r")  # fmt: skip
    assert row == {"step": 3, "run": "r", "reward": 0.5, "nonfinite": ["grad_norm", "loss"]}
    assert "step 3: non-finite grad_norm, loss" in caplog.text
    append_metrics(path, row)
    assert read_metrics(path) == [row]
    with pytest.raises(ValueError):
        append_metrics(path, {"step": 4, "loss": math.nan})  # only metrics_row's rows are written


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"step": 2, "reward": "NaN"}', r"metrics.jsonl:2: metric 'reward' is 'NaN', not a finite number"),
        ('{"step": 2, "reward": NaN}', r"metrics.jsonl:2: metric 'reward' is nan"),
        ('{"step": 2, "loss": true}', r"metrics.jsonl:2: metric 'loss' is True"),
        ('{"step": 2, "rew', r"metrics.jsonl:2: not a JSON metrics line"),
        ("[1, 2]", r"metrics.jsonl:2: a metrics line must be a JSON object"),
    ],
)
def test_the_reader_names_file_line_and_key(tmp_path, line, message) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"step": 1, "reward": 0.1, "run": "r"}) + "\n" + line + "\n")
    with pytest.raises(ValueError, match=message):
        read_metrics(path)
    with pytest.raises(ValueError, match=message):
        diagnose_metrics_file(path)  # the diagnosis reads through it
