"""Weights & Biases: one W&B run per training run (``job_type: train``) and one for its
evaluations (``job_type: eval``), grouped by experiment, logged from the experiment's own files.

Offline by default: the mode is ``tracking.wandb.mode`` when the config sets it, else
``WANDB_MODE`` when the environment sets it, else ``online`` only when ``WANDB_API_KEY`` is set
-- so a laptop or CI run never tries the network and nothing is uploaded by surprise. Offline
runs live under ``results/<experiment>/wandb/`` and are uploaded later with ``wandb sync``.

The runs are written from ``metrics.jsonl`` and ``scores.csv`` after the jobs that produce them,
so training and evaluation jobs need no W&B at all (and cannot fail because of it). Evaluation
scores are logged with the training step as W&B's step, so train and eval runs share an x-axis.
W&B cannot set a run's colour from the SDK; the run's plot colour (hex, the same as in every
matplotlib plot) is in its config as ``color``, for W&B's "key-based colours" on that key.

Nothing secret is written: runs log only the run spec, metrics and scores; git and system
metadata collection are off (a git remote URL can carry a token).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlpipe.tracking.io import read_jsonl, write_json

log = logging.getLogger(__name__)

MODES = ("online", "offline", "disabled")
DEFAULT_PROJECT = "rlpipe"


def resolve_mode(cfg: Mapping[str, Any] | None, env: Mapping[str, str] | None = None) -> str:
    """The W&B mode: the config's, else ``WANDB_MODE``, else online iff ``WANDB_API_KEY``, else offline."""
    env = os.environ if env is None else env
    mode = (cfg or {}).get("mode")
    if mode:
        return str(mode)
    if env.get("WANDB_MODE") in MODES:
        return env["WANDB_MODE"]
    if env.get("WANDB_DISABLED", "").lower() in ("1", "true", "yes"):
        return "disabled"
    return "online" if env.get("WANDB_API_KEY") else "offline"


def run_id(experiment: str, run: str, job_type: str) -> str:
    """A stable W&B run id: logging again updates the same run instead of adding one."""
    base = re.sub(r"[^A-Za-z0-9_-]", "-", f"{experiment}-{run}-{job_type}")
    digest = hashlib.sha1(f"{experiment}\0{run}\0{job_type}".encode()).hexdigest()[:8]
    return f"{base[:55]}-{digest}"


def _by_step(rows: Sequence[Mapping[str, Any]]) -> list[tuple[int, dict[str, float]]]:
    """Metric rows merged per step (W&B steps must increase), numbers only, NaN dropped."""
    merged: dict[int, dict[str, float]] = {}
    for row in rows:
        step = row.get("step")
        if not isinstance(step, int | float):
            continue
        for key, value in row.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(value):
                merged.setdefault(int(step), {})[key] = float(value)
    return sorted(merged.items())


def eval_rows(scores: Any, run: str, base: str) -> list[tuple[int, dict[str, float]]]:
    """Per step of ``run`` (step 0 = its base model): ``eval/<task>``, ``eval/domain/<d>``, ``eval/mean``."""
    import pandas as pd

    frame = pd.concat([scores[(scores["run"] == base) & (scores["step"] == 0)], scores[scores["run"] == run]])
    out = []
    for step, sub in frame.groupby("step"):
        values = {f"eval/{t}": float(s) for t, s in zip(sub["task"], sub["score"], strict=True)}
        values.update(
            {f"eval/pass_at_k/{t}": float(s) for t, s in zip(sub["task"], sub["pass_at_k"], strict=True)}
        )
        for domain, dsub in sub.groupby("domain"):
            values[f"eval/domain/{domain}"] = float(dsub["score"].mean())
        values["eval/mean"] = float(sub["score"].mean())
        out.append((int(step), values))
    return out


def _clear_previous(results_dir: Path, rid: str) -> None:
    """Remove earlier offline copies of run ``rid`` so ``wandb sync`` uploads only the latest."""
    root = results_dir / "wandb"
    if root.is_dir():
        for old in root.glob(f"*-{rid}"):
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)


def log_experiment(
    *,
    experiment: str,
    runs: Mapping[str, Mapping[str, Any]],
    base_of: Mapping[str, str],
    metrics: Mapping[str, str],
    scores_csv: str,
    colors: Mapping[str, str],
    cfg: Mapping[str, Any] | None,
    results_dir: str,
    manifest: str,
    images: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write the W&B runs of an experiment under ``<results_dir>/wandb/`` and a manifest (JSON)."""
    import pandas as pd

    mode = resolve_mode(cfg)
    project = (cfg or {}).get("project") or DEFAULT_PROJECT
    entity = (cfg or {}).get("entity")
    out: dict[str, Any] = {
        "mode": mode,
        "project": project,
        "entity": entity,
        "group": experiment,
        "runs": {},
    }
    root = Path(results_dir)
    if mode == "disabled":
        write_json(manifest, out)
        log.info("W&B disabled: nothing logged")
        return out
    import wandb

    root.mkdir(parents=True, exist_ok=True)
    scores = pd.read_csv(scores_csv)
    settings = wandb.Settings(
        silent=True,
        console="off",
        disable_git=True,
        x_disable_meta=True,
        x_disable_stats=True,
        save_code=False,
    )
    for name, spec in runs.items():
        out["runs"][name] = {}
        jobs = {
            "train": _by_step(read_jsonl(metrics[name])) if Path(metrics[name]).stat().st_size else [],
            "eval": eval_rows(scores, name, base_of[name]),
        }
        for job_type, rows in jobs.items():
            rid = run_id(experiment, name, job_type)
            if mode == "offline":
                _clear_previous(root, rid)
            try:
                out["runs"][name][job_type] = _write_run(
                    wandb,
                    rows,
                    mode=mode,
                    project=project,
                    entity=entity,
                    experiment=experiment,
                    name=name,
                    job_type=job_type,
                    rid=rid,
                    root=root,
                    spec=spec,
                    color=colors[name],
                    settings=settings,
                    images=images if job_type == "eval" else None,
                )
            except Exception as exc:  # W&B down or misconfigured must not cost the report
                message = _redact(f"{type(exc).__name__}: {exc}")[:300]
                log.warning("W&B run %s/%s not written: %s", name, job_type, message)
                out["runs"][name][job_type] = {
                    "id": rid,
                    "name": f"{name}/{job_type}",
                    "steps": 0,
                    "url": None,
                    "dir": None,
                    "error": message,
                }
    out["sync_command"] = (
        f"wandb sync --include-offline {root}/wandb/offline-run-*" if mode == "offline" else None
    )
    write_json(manifest, out)
    log.info("W&B (%s): %d runs x train/eval in project %s, group %s", mode, len(runs), project, experiment)
    return out


def _write_run(
    wandb: Any,
    rows: list[tuple[int, dict[str, float]]],
    *,
    mode: str,
    project: str,
    entity: str | None,
    experiment: str,
    name: str,
    job_type: str,
    rid: str,
    root: Path,
    spec: Mapping[str, Any],
    color: str,
    settings: Any,
    images: Mapping[str, str] | None,
) -> dict:
    """One W&B run: ``rows`` logged at their steps, the last row as summary; its manifest entry."""
    run = wandb.init(
        project=project,
        entity=entity,
        group=experiment,
        job_type=job_type,
        name=f"{name}/{job_type}",
        id=rid,
        dir=str(root),
        mode=mode,
        resume="allow",
        tags=[experiment, spec["method"]],
        config={"run": name, "color": color, **json.loads(json.dumps(dict(spec), default=str))},
        settings=settings,
    )
    try:
        for step, values in rows:
            run.log(values, step=step)
        if images:
            run.log(
                {f"plots/{k}": wandb.Image(v) for k, v in images.items()}, step=rows[-1][0] if rows else 0
            )
        if rows:
            run.summary.update(dict(rows[-1][1]))
        return {
            "id": rid,
            "name": f"{name}/{job_type}",
            "steps": len(rows),
            "url": run.url if mode == "online" else None,
            "dir": os.path.relpath(run.dir, root) if run.dir else None,
        }
    finally:
        run.finish()


def _redact(text: str) -> str:
    """``text`` with the values of secret environment variables replaced (error messages are kept)."""
    for var in ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        value = os.environ.get(var, "")
        if len(value) >= 8:
            text = text.replace(value, "***")
    return text
