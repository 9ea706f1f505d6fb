"""Scoring of generated completions (a CPU job) and the per-task summary of one checkpoint."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import numpy as np

from rlpipe.data.splits import TEST
from rlpipe.eval.estimates import bootstrap_mean_ci, item_pass_at_k, item_scores
from rlpipe.rewards import score
from rlpipe.tracking.io import atomic_path, read_jsonl, write_jsonl
from rlpipe.tracking.logs import Progress

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = [
    "experiment", "run", "method", "step", "task", "domain", "n", "k",
    "score", "se", "ci_lo", "ci_hi", "pass_at_k", "mean_tokens", "truncated",
]  # fmt: skip


def score_completions(
    completions_path: str,
    data_paths: list[str],
    suite: dict[str, Any],
    meta: dict[str, Any],
    scores_out: str,
    summary_out: str,
    seed: int = 0,
) -> None:
    """Score every completion with its row's scorer; write per-sample scores and a task summary.

    Every sample's record carries its item's ``split`` (:mod:`rlpipe.data.splits`); the summary
    (and so ``scores.csv``) is over the *test* items only, the numbers the report shows.
    """
    import pandas as pd

    rows = {r["id"]: r for p in data_paths for r in read_jsonl(p)}
    completions = read_jsonl(completions_path)
    progress = Progress(log, "score", len(completions))
    scored = []
    for rec in completions:
        row = rows.get(rec["id"])
        if row is None:
            raise KeyError(f"{completions_path}: item {rec['id']!r} is not in the suite data")
        value = score(row["scorer"], rec["completion"], row["ground_truth"], row.get("extra_info"))
        scored.append({**rec, "split": row.get("split", TEST), "score": value})
        progress.update()
    write_jsonl(scores_out, scored)

    by_task: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for rec in scored:
        if rec["split"] == TEST:
            by_task[rec["task"]][rec["id"]].append(rec)
    summary = []
    for task, items in sorted(by_task.items()):
        k = suite["tasks"][task]["samples"]
        matrix = np.full((len(items), k), np.nan)
        for i, samples in enumerate(items.values()):
            for rec in samples:
                matrix[i, rec["sample"]] = rec["score"]
        ci = bootstrap_mean_ci(item_scores(matrix), seed=seed)
        flat = [rec for samples in items.values() for rec in samples]
        summary.append(
            {
                **meta,
                "task": task,
                "domain": suite["tasks"][task]["domain"],
                "n": len(items),
                "k": k,
                "score": ci.mean,
                "se": ci.se,
                "ci_lo": ci.lo,
                "ci_hi": ci.hi,
                "pass_at_k": float(np.nanmean(item_pass_at_k(matrix, k))),
                "mean_tokens": float(np.mean([r["n_tokens"] for r in flat])),
                "truncated": float(np.mean([r["truncated"] for r in flat])),
            }
        )
        log.info("%s: avg@%d = %.4f ± %.4f over %d items", task, k, ci.mean, ci.se, len(items))
    with atomic_path(summary_out) as tmp:
        pd.DataFrame(summary, columns=SUMMARY_COLUMNS).to_csv(tmp, index=False)
