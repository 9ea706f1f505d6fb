"""Issue 22: missing samples never make a task's pass@k (or avg@k) a silent number over a subset.

The task below has k = 4 samples per item. Its easy items keep all their samples; its hard items are
the ones that lose some (a record missing from the completions, a failed generation whose completion
is ``None``) or all of them -- as with time-outs, which hit the hard items. The old summary took
``np.nanmean`` of the per-item pass@k, i.e. the mean over the items that kept k samples: mostly the
easy ones, biased above the full-data value.

Checked against the old ``scoring.py`` (HEAD before this change): 9 of these tests fail there.
``test_pass_at_k_is_na_when_hard_items_lost_records`` fails on the bias itself (pass_at_k = 6/7 = 0.857
where the full data give 7/10, and n = 9, not 10); ``test_an_item_without_any_record_is_counted``
on n = 2, not 3; the tests with a ``None`` completion crash in the scorer (TypeError); sample -1 is
silently written into the last column and a duplicate record silently overwrites the first.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rlpipe.analysis.aggregate import aggregate
from rlpipe.eval.estimates import finite_counts, item_pass_at_k, item_scores, task_pass_at_k
from rlpipe.eval.scoring import SUMMARY_COLUMNS, score_completions
from rlpipe.tracking.manifest import sidecar, write_sidecar

K = 4
SUITE = {"tasks": {"t": {"samples": K, "domain": "d"}}}
META = {"experiment": "e", "run": "r", "method": "m", "step": 0}
RIGHT, WRONG = "yes", "no"
MISSING = object()  # no record at all for this (item, sample)

# item -> its k samples: RIGHT / WRONG / None (failed generation) / MISSING (no record)
ITEMS: dict[str, list[Any]] = {
    **{f"easy{i}": [RIGHT] * K for i in range(6)},
    "hard_full": [WRONG] * K,  # a hard item that kept its samples
    "hard_one_lost": [WRONG, WRONG, WRONG, MISSING],  # ragged: 3 records
    "hard_one_failed": [WRONG, None, WRONG, WRONG],  # a failed generation
    "mixed": [RIGHT, WRONG, MISSING, RIGHT],  # avg over its 3 finite samples: 2/3
    "hard_all_failed": [None] * K,  # records, but no finite score
    "hard_no_record": [MISSING] * K,  # the item never came back at all
}
N_ITEMS = len(ITEMS)  # 12
# What each sample would have scored had it come back: the hard items' lost samples are wrong too.
FULL = {
    item: [1.0 if s == RIGHT or (s is MISSING and item == "mixed") else 0.0 for s in v]
    for item, v in ITEMS.items()
}


def write(tmp_path: Path, items: dict[str, list[Any]], extra: list[dict[str, Any]] = ()) -> dict[str, str]:
    rows = [
        {
            "id": item,
            "task": "t",
            "domain": "d",
            "scorer": "exact_match",
            "ground_truth": RIGHT,
            "split": "test",
        }
        for item in items
    ]
    # validation items are not in the summary, whatever their samples
    rows.append({"id": "val0", "task": "t", "domain": "d", "scorer": "exact_match", "ground_truth": RIGHT,
                 "split": "validation"})  # fmt: skip
    records = [
        {
            "id": item,
            "task": "t",
            "domain": "d",
            "sample": s,
            "completion": c,
            "n_tokens": 3,
            "truncated": False,
        }
        for item, samples in items.items()
        for s, c in enumerate(samples)
        if c is not MISSING
    ]
    records.append({"id": "val0", "task": "t", "domain": "d", "sample": 0, "completion": WRONG, "n_tokens": 0,
                    "truncated": False})  # fmt: skip
    records += list(extra)
    paths = {name: str(tmp_path / name) for name in ("completions", "scores", "summary")}
    paths["data"] = str(tmp_path / "t.jsonl")  # data/suite/<task>.jsonl
    for path, lines in ((paths["data"], rows), (paths["completions"], records)):
        Path(path).write_text("".join(json.dumps(r) + "\n" for r in lines))
    write_sidecar(sidecar(paths["completions"]), [paths["completions"]])  # as generation does
    return paths


def summarize(tmp_path: Path, items: dict[str, list[Any]], extra: list[dict[str, Any]] = ()) -> pd.Series:
    p = write(tmp_path, items, extra)
    score_completions(p["completions"], [p["data"]], SUITE, META, p["scores"], p["summary"])
    summary = pd.read_csv(p["summary"])
    assert len(summary) == 1
    return summary.iloc[0]


def test_old_rule_is_biased_up_and_new_rule_is_nan() -> None:
    """The estimate level: nanmean over items is above the full-data pass@k; task_pass_at_k is NaN."""
    observed = np.array(
        [[1.0 if s == RIGHT else 0.0 if s == WRONG else np.nan for s in v] for v in ITEMS.values()]
    )
    full = np.array(list(FULL.values()))
    full_value = task_pass_at_k(full, K)
    assert full_value == pytest.approx(7 / 12)  # 6 easy items + "mixed" pass
    old = float(np.nanmean(item_pass_at_k(observed, K)))
    assert old == pytest.approx(6 / 7)  # only the 6 easy items and hard_full kept 4 samples
    assert old > full_value + 0.25
    assert math.isnan(task_pass_at_k(observed, K))
    assert finite_counts(observed).tolist() == [4] * 6 + [4, 3, 3, 3, 0, 0]
    # avg@k per item is the mean over its finite samples: "mixed" is 2/3, not 2/4; empty items NaN
    per_item = item_scores(observed)
    assert per_item[list(ITEMS).index("mixed")] == pytest.approx(2 / 3)
    assert np.isnan(per_item[-2:]).all()


def test_task_pass_at_k_edge_cases() -> None:
    assert math.isnan(task_pass_at_k(np.empty((0, 2)), 2))
    assert task_pass_at_k([[1.0, 0.0], [0.0, 0.0]], 2) == pytest.approx(0.5)
    assert task_pass_at_k([[1.0, 0.0, np.nan], [0.0, 0.0, 1.0]], 2) == pytest.approx(np.mean([1.0, 2 / 3]))
    assert math.isnan(task_pass_at_k([[1.0, np.nan], [1.0, 1.0]], 2))


def test_pass_at_k_is_na_when_hard_items_lost_samples(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="rlpipe.eval.scoring"):
        row = summarize(tmp_path, ITEMS)
    assert list(row.index) == SUMMARY_COLUMNS
    assert math.isnan(row["pass_at_k"])  # the old code: 6/7, over the items that kept 4 samples
    assert row["n"] == N_ITEMS
    assert row["k"] == K
    assert row["pass_at_k_items"] == 7  # 6 easy + hard_full
    assert row["missing_samples"] == 1 + 1 + 1 + 4 + 4
    assert row["score_items"] == N_ITEMS - 2
    assert row["empty_items"] == 2  # hard_all_failed, hard_no_record
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("t: 11 of 48 samples missing")
    assert "(2 items have none)" in warnings[0] and "only 7 of 12 items have all 4 samples" in warnings[0]


def test_pass_at_k_is_na_when_hard_items_lost_records(tmp_path: Path) -> None:
    """Ragged completions only (records missing, none failed): the case the old code ran through."""
    items = {k: v for k, v in ITEMS.items() if None not in v}
    row = summarize(tmp_path, items)
    assert math.isnan(row["pass_at_k"])  # the old code: 6/7 over the 7 items that kept 4 samples
    assert row["n"] == 10  # the old code: 9, without hard_no_record
    assert (row["score_items"], row["empty_items"], row["missing_samples"], row["pass_at_k_items"]) == (
        9,
        1,
        6,
        7,
    )
    assert row["score"] == pytest.approx((6 + 2 / 3) / 9)


def test_avg_at_k_is_per_item_unbiased_and_states_its_items(tmp_path: Path) -> None:
    row = summarize(tmp_path, ITEMS)
    # each item is the mean of its finite samples (missing ones are neither 0 nor 1), over the 10 items
    # with a sample: 6 easy (1), mixed (2/3), 3 hard items with a sample (0)
    assert row["score"] == pytest.approx((6 + 2 / 3) / 10)
    assert row["score_items"] == 10 and row["n"] - row["empty_items"] == row["score_items"]
    assert row["mean_tokens"] == 3  # over the generated completions only
    scores = [json.loads(line) for line in Path(tmp_path / "scores").read_text().splitlines()]
    failed = [r for r in scores if r["completion"] is None]
    assert len(failed) == 1 + 4 and all(math.isnan(r["score"]) for r in failed)  # never scored 0


def test_an_item_without_any_record_is_counted(tmp_path: Path) -> None:
    items = {"a": [RIGHT, WRONG], "b": [WRONG, WRONG], "gone": [MISSING, MISSING]}
    suite = {"tasks": {"t": {"samples": 2, "domain": "d"}}}
    p = write(tmp_path, items)
    score_completions(p["completions"], [p["data"]], suite, META, p["scores"], p["summary"])
    row = pd.read_csv(p["summary"]).iloc[0]
    assert row["n"] == 3  # the old code: 2, the item that never came back was not there at all
    assert (row["score_items"], row["empty_items"], row["missing_samples"], row["pass_at_k_items"]) == (
        2,
        1,
        2,
        2,
    )
    assert row["score"] == pytest.approx(0.25)
    assert math.isnan(row["pass_at_k"])


def test_complete_task_has_zero_counts_and_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    items = {"a": [RIGHT, WRONG, WRONG, WRONG], "b": [WRONG] * K, "c": [RIGHT] * K}
    with caplog.at_level(logging.WARNING, logger="rlpipe.eval.scoring"):
        row = summarize(tmp_path, items)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert row["n"] == 3 and row["pass_at_k"] == pytest.approx(2 / 3)
    assert (row["score_items"], row["empty_items"], row["missing_samples"], row["pass_at_k_items"]) == (
        3,
        0,
        0,
        3,
    )
    assert row["score"] == pytest.approx((0.25 + 0 + 1) / 3)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"sample": 4}, "has sample 4, not one of 0..3"),
        ({"sample": -1}, "has sample -1, not one of 0..3"),
        ({"sample": 0}, "has two records of sample 0"),
    ],
)
def test_bad_sample_index_is_an_error(tmp_path: Path, extra: dict[str, Any], message: str) -> None:
    rec = {"id": "easy0", "task": "t", "domain": "d", "completion": RIGHT, "n_tokens": 1, "truncated": False}
    with pytest.raises(ValueError, match=message):
        summarize(tmp_path, {"easy0": [RIGHT] * K}, [{**rec, **extra}])


def test_new_columns_aggregate_with_old_summaries(tmp_path: Path) -> None:
    """scores.csv concatenates summaries with and without the new columns (an older checkpoint's)."""
    new = tmp_path / "new"
    new.mkdir()
    summarize(new, ITEMS)
    old = pd.read_csv(new / "summary").drop(columns=["score_items", "empty_items", "missing_samples",
                                                     "pass_at_k_items"])  # fmt: skip
    old["run"] = "older"
    old.to_csv(tmp_path / "old.csv", index=False)
    write_sidecar(tmp_path / "scores.sha256", [tmp_path / "old.csv"])
    scores = aggregate([str(new / "summary"), str(tmp_path / "old.csv")], str(tmp_path / "scores.csv"))
    assert len(scores) == 2 and set(SUMMARY_COLUMNS) <= set(scores.columns)
    back = pd.read_csv(tmp_path / "scores.csv").set_index("run")
    assert back.loc["r", "missing_samples"] == 11 and math.isnan(back.loc["older", "missing_samples"])
    assert math.isnan(back.loc["r", "pass_at_k"])
