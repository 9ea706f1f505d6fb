"""Aggregation of per-checkpoint summaries into the experiment's tidy ``scores.csv``."""

from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from collections.abc import Mapping

import numpy as np
import pandas as pd

from rlpipe.data.splits import TEST
from rlpipe.eval.scoring import checksums_path
from rlpipe.tracking.io import atomic_path, read_jsonl
from rlpipe.tracking.manifest import check_outputs

log = logging.getLogger(__name__)

KEY = ["experiment", "run", "step", "task"]


def aggregate(summary_paths: list[str], out: str) -> pd.DataFrame:
    """Concatenate summaries, one row per (run, step, task), sorted so reruns are byte-identical.

    Each summary is verified against the checksums its scoring job wrote (``scores.sha256``).
    """
    frames = []
    for path in summary_paths:
        check_outputs(checksums_path(path), only=[os.path.basename(path)])
        frames.append(pd.read_csv(path))
    scores = pd.concat(frames, ignore_index=True).sort_values(KEY).reset_index(drop=True)
    dupes = scores.duplicated(KEY)
    if dupes.any():
        raise ValueError(f"duplicate (run, step, task) rows: {scores[dupes][KEY].to_dict('records')[:3]}")
    with atomic_path(out) as tmp:
        scores.to_csv(tmp, index=False, float_format="%.6g")
    log.info("wrote %d rows (%d runs) to %s", len(scores), scores["run"].nunique(), out)
    return scores


def with_base_rows(scores: pd.DataFrame, base_of: dict[str, str]) -> pd.DataFrame:
    """Scores where every run also has a step-0 row: its base model's scores.

    ``base_of`` maps run -> base pseudo-run. Learning curves then start where training started.
    """
    parts = [scores]
    for run, base in base_of.items():
        start = scores[(scores["run"] == base) & (scores["step"] == 0)].copy()
        start["run"] = run
        parts.append(start)
    return pd.concat(parts, ignore_index=True)


def domain_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Macro average of task scores per (run, step, domain); SE combined as for a mean of means."""
    grouped = scores.groupby(["run", "step", "domain"])
    out = grouped.agg(score=("score", "mean"), n_tasks=("task", "nunique")).reset_index()
    se = grouped["se"].apply(lambda s: float((s.pow(2).sum()) ** 0.5 / len(s))).reset_index(drop=True)
    out["se"] = se
    return out


def task_score(item_scores: Mapping[str, float]) -> float:
    """A task's avg@k from its items' scores (:func:`item_matrix`): the mean over the items with a
    finite score (an item whose every sample failed is NaN, and the statistics drop it likewise);
    NaN with none."""
    finite = [v for v in item_scores.values() if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def item_matrix(scores_jsonl: str | os.PathLike[str], split: str = TEST) -> dict[str, dict[str, float]]:
    """task -> item id -> mean score over its samples (the items of avg@k) of one ``split``
    (test: what is reported; validation: what selection uses), from a scores.jsonl verified against
    its checksum."""
    check_outputs(checksums_path(scores_jsonl), only=[os.path.basename(scores_jsonl)])
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rec in read_jsonl(scores_jsonl):
        if rec.get("split", TEST) == split:
            acc[rec["task"]][rec["id"]].append(float("nan") if rec["score"] is None else float(rec["score"]))
    # an item's score is the mean of its finite samples, as the summary's avg@k (eval.scoring):
    # one failed sample must not turn the whole item into NaN and drop it from the paired CIs
    return {
        task: {
            i: float(np.mean(f)) if len(f := [x for x in v if x == x]) else float("nan")
            for i, v in items.items()
        }
        for task, items in acc.items()
    }
