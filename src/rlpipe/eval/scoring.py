"""Scoring of generated completions (a CPU job) and the per-task summary of one checkpoint."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from rlpipe.data.splits import TEST
from rlpipe.eval.estimates import bootstrap_mean_ci, finite_counts, item_scores, task_pass_at_k
from rlpipe.rewards import score
from rlpipe.tracking.io import atomic_path, read_jsonl, write_jsonl
from rlpipe.tracking.logs import Progress
from rlpipe.tracking.manifest import check_outputs, sidecar, write_sidecar

log = logging.getLogger(__name__)

NAN = float("nan")

SUMMARY_COLUMNS = [
    "experiment", "run", "method", "step", "task", "domain", "n", "k",
    "score", "se", "ci_lo", "ci_hi", "pass_at_k", "mean_tokens", "truncated",
    "score_items", "empty_items", "missing_samples", "pass_at_k_items",
]  # fmt: skip
"""The per-task summary of one checkpoint (``summary.csv``, concatenated into ``scores.csv``).

``n``: the task's test items (in the suite data, whether or not any completion of them came back);
``k``: samples per item. A *missing sample* is an (item, sample) without a finite score: its record
is absent from the completions (a ragged or truncated completions file, an item never generated) or
its completion is ``None`` (a failed generation). Missing samples are never scored as 0, and never
silently dropped either:

* ``score`` (avg@k, with ``se``/``ci_lo``/``ci_hi``): the mean over items of each item's mean over its
  finite samples (unbiased per item), over the ``score_items`` items with at least one finite sample;
  ``empty_items = n - score_items`` items have none and are not in it.
* ``pass_at_k``: the mean over all ``n`` items of the unbiased per-item pass@k, or NaN (the report's
  "n/a") unless every item has k finite samples: ``pass_at_k_items`` is the number that do. A mean over
  only those would drop the items that lost samples, typically the hard ones (time-outs), biased up.
* ``missing_samples``: the missing (item, sample) cells of the task's ``n x k``, empty items included.

Any missing sample logs a WARNING naming the task and these counts.
"""


#: The checksum file of a scoring job's two outputs (``rules/eval.smk`` declares it).
SCORES_CHECKSUMS = "scores.sha256"


def checksums_path(output: str | Path) -> Path:
    """Where the checksums of a scoring output (``scores.jsonl`` or ``summary.csv``) are: beside it."""
    return Path(output).parent / SCORES_CHECKSUMS


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

    The completions are checked against their checksums first; :func:`checksums_path` beside
    ``scores_out`` vouches for both outputs (``rlpipe.tracking.manifest``). Every sample's record
    carries its item's ``split`` (:mod:`rlpipe.data.splits`); the summary (and so ``scores.csv``) is
    over the *test* items only, the numbers the report shows. A record whose ``completion`` is
    ``None`` (a failed generation) is not scored: its score is NaN, a missing sample, as is every
    (item, sample) of a test item with no record at all. How the summary counts
    and states missing samples: ``SUMMARY_COLUMNS``.
    """
    import pandas as pd

    rows: dict[str, dict[str, Any]] = {}
    test_items: dict[str, dict[str, None]] = defaultdict(dict)  # task -> test item ids, in data order
    for p in data_paths:
        for r in read_jsonl(p):
            rows[r["id"]] = r
            if r.get("split", TEST) == TEST:
                # data/suite/<task>.jsonl: the file stem is the task where a row does not name it
                test_items[r.get("task", Path(p).stem)][r["id"]] = None
    check_outputs(sidecar(completions_path))  # what generation wrote, unaltered
    completions = read_jsonl(completions_path)
    progress = Progress(log, "score", len(completions))
    scored = []
    for rec in completions:
        row = rows.get(rec["id"])
        if row is None:
            raise KeyError(f"{completions_path}: item {rec['id']!r} is not in the suite data")
        if rec.get("completion") is None:
            value = NAN
        else:
            value = score(row["scorer"], rec["completion"], row["ground_truth"], row.get("extra_info"))
        scored.append({**rec, "split": row.get("split", TEST), "score": value})
        progress.update()
    write_jsonl(scores_out, scored)

    by_task: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for task, ids in test_items.items():
        if task in suite["tasks"]:
            for item in ids:
                by_task[task][item] = []  # an item no record came back for still counts
    for rec in scored:
        if rec["split"] == TEST:
            by_task[rec["task"]][rec["id"]].append(rec)
    summary = []
    for task, items in sorted(by_task.items()):
        k = suite["tasks"][task]["samples"]
        matrix = sample_matrix(items, k, f"{completions_path}: task {task!r}")
        ci = bootstrap_mean_ci(item_scores(matrix), seed=seed)
        counts = finite_counts(matrix)
        missing = {
            "score_items": int((counts > 0).sum()),
            "empty_items": int((counts == 0).sum()),
            "missing_samples": int(matrix.size - counts.sum()),
            "pass_at_k_items": int((counts >= k).sum()),
        }
        generated = [r for samples in items.values() for r in samples if r.get("completion") is not None]
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
                "pass_at_k": task_pass_at_k(matrix, k),
                "mean_tokens": float(np.mean([r["n_tokens"] for r in generated])) if generated else NAN,
                "truncated": float(np.mean([r["truncated"] for r in generated])) if generated else NAN,
                **missing,
            }
        )
        log.info(
            "%s: avg@%d = %.4f ± %.4f over %d of %d items",
            task, k, ci.mean, ci.se, missing["score_items"], len(items),
        )  # fmt: skip
        if missing["missing_samples"]:
            log.warning(
                "%s: %d of %d samples missing (no completion or no score); avg@%d is over the %d items "
                "with a sample (%d items have none); pass@%d is n/a: only %d of %d items have all %d samples",
                task, missing["missing_samples"], matrix.size, k, missing["score_items"],
                missing["empty_items"], k, missing["pass_at_k_items"], len(items), k,
            )  # fmt: skip
    with atomic_path(summary_out) as tmp:
        pd.DataFrame(summary, columns=SUMMARY_COLUMNS).to_csv(tmp, index=False)
    write_sidecar(checksums_path(scores_out), [scores_out, summary_out])  # last: it marks both complete


def sample_matrix(items: dict[str, list[dict[str, Any]]], k: int, where: str) -> np.ndarray:
    """``scores[items, k]`` of one task, NaN where an (item, sample) has no record or no score.

    The records of an item may be fewer than k, or none (ragged): the rest stays NaN. A sample index
    outside ``0..k-1`` or a second record of one (item, sample) is an error, not overwritten or
    dropped.
    """
    matrix = np.full((len(items), k), np.nan)
    for i, (item, samples) in enumerate(items.items()):
        seen: set[int] = set()
        for rec in samples:
            s = rec["sample"]
            if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s < k:
                raise ValueError(f"{where}: item {item!r} has sample {s!r}, not one of 0..{k - 1}")
            if s in seen:
                raise ValueError(f"{where}: item {item!r} has two records of sample {s}")
            seen.add(s)
            matrix[i, s] = rec["score"]
    return matrix
