"""When a run saves, validates and may stop: its checkpoint and early-stopping schedules.

Plain functions of the expanded run (``rlpipe.config``) and its method's spec, so the workflow knows
the schedule while it parses (rules/common.smk plans the evaluations from ``checkpoint_steps``) and the
trainers follow the same one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rlpipe.train.methods.base import Spec, SpecError

# Early-stopping settings a run does not set (``early_stopping:`` section); ``eval_every`` defaults
# to the run's checkpoint interval. Filled in only for runs that have the section.
EARLY_STOPPING_DEFAULTS: dict[str, Any] = {
    "metric": "validation_reward",
    "mode": "max",
    "min_delta": 0.0,
    "min_steps": 0,
    "min_epochs": 0,
}


def save_every(steps: int, every: int | None) -> int:
    """The checkpoint interval of a run of ``steps`` steps under ``checkpoints.every`` (unset: the end)."""
    return min(every or steps, steps)


def early_stopping_settings(section: Mapping[str, Any], save_every: int) -> dict[str, Any]:
    """A run's ``early_stopping`` section over the defaults (``eval_every``: the checkpoint interval)."""
    return {**EARLY_STOPPING_DEFAULTS, "eval_every": save_every, **section}


def checkpoint_steps(run: Mapping[str, Any]) -> list[int]:
    """Steps at which a run saves a checkpoint: every ``save_every`` steps and the last step."""
    steps = list(range(run["save_every"], run["steps"] + 1, run["save_every"]))
    if steps[-1] != run["steps"]:
        steps.append(run["steps"])
    return steps


def evaluation_steps(run: Mapping[str, Any]) -> list[int]:
    """Steps at which an early-stopping run scores its validation split: every ``eval_every`` steps."""
    es = run.get("early_stopping")
    if not es:
        return []
    return list(range(es["eval_every"], run["steps"] + 1, es["eval_every"]))


def save_steps(run: Mapping[str, Any]) -> list[int]:
    """Every step a run may publish a checkpoint at: the schedule plus each validation step.

    Without early stopping this is ``checkpoint_steps(run)`` and every one of them is written.
    With it, training may stop at an evaluation step; the checkpoints that then exist are those of
    this list up to the stop, so the best evaluated one is always among them.
    """
    return sorted(set(checkpoint_steps(run)) | set(evaluation_steps(run)))


def early_stopping_min_step(spec: Spec, n_train: int) -> int:
    """The first step early stopping may stop at: ``min_steps`` or ``min_epochs`` passes, whichever is later.

    ``min_epochs`` converts to steps with the training-set size and the prompts one step consumes:
    ``ceil(min_epochs * n_train / prompts_per_step)``.
    """
    es = spec.run["early_stopping"]
    epoch_steps = math.ceil(es["min_epochs"] * n_train / spec.prompts_per_step() - 1e-9)
    return max(int(es["min_steps"]), epoch_steps, 0)


def check_early_stopping(spec: Spec, n_train: int) -> None:
    """Refuse early-stopping settings that cannot work: no evaluation, or no stop, within ``steps``.

    ``n_train``: the training rows as far as the config knows them (a lower bound).
    """
    es = spec.run["early_stopping"]
    steps, every = spec.steps, es["eval_every"]
    if es["metric"] == "validation_reward" and es["mode"] != "max":
        raise SpecError(
            f"early_stopping.mode {es['mode']!r} with metric validation_reward would stop while "
            "the reward rises; use mode: max"
        )
    if every > steps:
        raise SpecError(
            f"early_stopping.eval_every ({every}) is more than steps ({steps}): the validation "
            "split would never be scored; lower eval_every or raise steps"
        )
    min_step = early_stopping_min_step(spec, n_train)
    if min_step > steps:
        raise SpecError(
            f"early_stopping needs at least {min_step} steps before it may stop (min_steps "
            f"{es['min_steps']}, min_epochs {es['min_epochs']} x {n_train} training rows / "
            f"{spec.prompts_per_step():g} prompts per step) but steps is {steps}; raise steps or lower "
            "min_steps / min_epochs"
        )
    # The first evaluation is always the best so far; a stop needs `patience` worse ones after it.
    first_stop = max((es["patience"] + 1) * every, math.ceil(min_step / every) * every)
    if first_stop > steps:
        raise SpecError(
            f"early_stopping can never stop this run: the earliest stop is at step {first_stop} "
            f"(patience {es['patience']} evaluations after the first, every {every} steps, not before "
            f"step {min_step}) but steps is {steps}; lower patience or eval_every, or raise steps"
        )
