"""Dataset preparation: every source normalised into one row schema, written atomically.

Row schema: ``id``, ``domain``, ``task``, ``prompt`` (chat messages), ``ground_truth``,
``scorer``, ``extra_info`` (and ``solution`` where a reference answer exists, for SFT).
"""

from __future__ import annotations

import logging
from typing import Any

from rlpipe.data import sources
from rlpipe.data import tasks as procedural
from rlpipe.data.splits import DEFAULT_VALIDATION_FRACTION, VALIDATION, item_split
from rlpipe.tracking.io import write_json, write_jsonl

log = logging.getLogger(__name__)


def prepare_train_data(
    task_sizes: dict[str, int],
    validation_per_task: int,
    seed: int,
    train_out: str,
    validation_out: str,
    train_sources: dict[str, dict[str, Any]] | None = None,
) -> None:
    """The training mix and its validation split: procedural tasks (``task -> n problems``) and/or
    real datasets (``train_sources``: ``data.sources`` as resolved by ``rlpipe.config.load_train_sources``).

    Every row carries its task, domain and scorer, so the reward of a mixed batch scores each row with
    its own scorer and PCGrad can split it by domain. Real datasets are read by
    ``rlpipe.data.sources.load_training_rows`` (the suites' loader); their provenance is written next to
    the training rows as ``<train_out>.meta.json`` (task -> repository, revision, files, sha256, counts).
    """
    train: list[dict[str, Any]] = []
    validation: list[dict[str, Any]] = []
    for task, n in sorted(task_sizes.items()):
        train += procedural.generate(task, "train", n, seed)
        validation += procedural.generate(task, "validation", validation_per_task, seed)
        log.info("task %s: %d train, %d validation rows", task, n, validation_per_task)
    meta: dict[str, Any] = {}
    for name, spec in sorted((train_sources or {}).items()):
        rows, held_out, meta[name] = sources.load_training_rows(name, spec)
        train += rows
        validation += held_out
        log.info(
            "dataset %s (%s, scorer %s): %d train, %d validation rows from %s",
            name, spec["domain"], spec["scorer"], len(rows), len(held_out),
            meta[name].get("repo_id") or meta[name]["type"],
        )  # fmt: skip
    if meta:
        # The sidecar first: a complete rows file then always has its provenance next to it.
        write_json(f"{train_out}.meta.json", meta)
    write_jsonl(train_out, train)
    write_jsonl(validation_out, validation)


def prepare_suite_task(name: str, task: dict[str, Any], seed: int, out: str) -> None:
    """Rows of one suite task, with the suite's scorer and domain stamped on every row.

    Procedural tasks are generated from ``seed``; every other source (hub dataset, parquet, jsonl) is
    read by ``rlpipe.data.sources``, which ignores ``seed`` (a benchmark subset must not change with the
    experiment's seed) and whose provenance record is written next to the rows as ``<out>.meta.json``.
    """
    source = task["source"]
    fraction = task.get("validation_fraction", DEFAULT_VALIDATION_FRACTION)
    if source["type"] != "procedural":
        rows, meta = sources.load_rows(name, task)
        for row in rows:
            row["split"] = item_split(row["id"], fraction)
        # The sidecar first: a complete rows file then always has its provenance next to it.
        write_json(f"{out}.meta.json", meta)
        write_jsonl(out, rows)
        log.info("wrote %d rows to %s (from %s)", len(rows), out, meta.get("repo_id") or meta["type"])
        return
    rows = procedural.generate(source["task"], source.get("split", "test"), source["n"], seed)
    for row in rows:
        row["task"] = name
        row["id"] = f"{name}/{row['extra_info']['index']}"
        row["scorer"] = task["scorer"]
        row["domain"] = task["domain"]
        row["split"] = item_split(row["id"], fraction)
    write_jsonl(out, rows)
    n_val = sum(row["split"] == VALIDATION for row in rows)
    log.info("wrote %d rows to %s (%d validation, %d test)", len(rows), out, n_val, len(rows) - n_val)
