"""Early stopping on a periodically evaluated metric, as pure, resumable state.

Kept free of any trainer or framework so the rule can be tested exactly and so the same object
drives rlpipe's own trainers and a TRL callback alike. Its state is plain JSON-serialisable Python
so it can be saved next to a checkpoint and restored on resume: a resumed run must keep counting
bad evaluations where the crashed one stopped, not start afresh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["max", "min"]


@dataclass(frozen=True)
class Decision:
    """The outcome of one evaluation.

    ``stop``: training should stop now. ``best_step``/``best_value``: the best evaluation so far
    (None until a finite value has been seen) -- the checkpoint to keep. ``bad_evals``: evaluations
    in a row without improvement. ``improved``: this evaluation became the new best.
    """

    stop: bool
    best_step: int | None
    best_value: float | None
    bad_evals: int
    improved: bool = False


class EarlyStopping:
    """Stop when ``metric`` has not improved for ``patience`` evaluations in a row.

    * An evaluation *improves* when it beats the best so far by **more than** ``min_delta``
      (``value > best + min_delta`` for ``mode="max"``, ``value < best - min_delta`` for
      ``"min"``); the first finite value is always an improvement. A gain of at most ``min_delta``
      is noise, not progress: it counts as a bad evaluation and does not move the best.
    * ``nan``/``inf`` values are never an improvement (a diverged eval must not become "best").
    * Patience is counted in evaluations, not steps, so it does not depend on the eval interval.
    * Never stops at a ``step`` below ``min_steps`` (warm-up, where metrics are noisy). Bad
      evaluations before ``min_steps`` still count, so the first evaluation at or after
      ``min_steps`` stops if patience had already run out.
    * Steps must not decrease. Re-reporting the step of the last evaluation (a resumed run
      re-evaluating its checkpoint) returns the previous decision without counting it twice.
    """

    def __init__(
        self, metric: str, mode: Mode = "max", patience: int = 3, min_delta: float = 0.0, min_steps: int = 0
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', not {mode!r}")
        if patience < 1:
            raise ValueError("patience must be >= 1 (the number of evaluations without improvement)")
        if min_delta < 0 or not math.isfinite(min_delta):
            raise ValueError("min_delta must be a finite number >= 0")
        if min_steps < 0:
            raise ValueError("min_steps must be >= 0")
        self.metric = metric
        self.mode: Mode = mode
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.min_steps = int(min_steps)
        self.best_value: float | None = None
        self.best_step: int | None = None
        self.bad_evals = 0
        self.last_step: int | None = None
        self._last: Decision | None = None

    @property
    def last_decision(self) -> Decision | None:
        """The decision of the latest evaluation (None before the first)."""
        return self._last

    def _improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best_value is None:
            return True
        if self.mode == "max":
            return value > self.best_value + self.min_delta
        return value < self.best_value - self.min_delta

    def update(self, step: int, value: float) -> Decision:
        """Record the evaluation of ``metric`` at ``step`` and decide whether to stop."""
        step = int(step)
        if self.last_step is not None and step < self.last_step:
            raise ValueError(f"evaluation at step {step} comes after one at step {self.last_step}")
        if self.last_step is not None and step == self.last_step and self._last is not None:
            return self._last
        value = float(value)
        improved = self._improves(value)
        if improved:
            self.best_value, self.best_step, self.bad_evals = value, step, 0
        else:
            self.bad_evals += 1
        self.last_step = step
        stop = self.bad_evals >= self.patience and step >= self.min_steps
        self._last = Decision(stop, self.best_step, self.best_value, self.bad_evals, improved)
        return self._last

    def state_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable state (configuration included, to check it on resume)."""
        last = self._last
        return {
            "metric": self.metric,
            "mode": self.mode,
            "patience": self.patience,
            "min_delta": self.min_delta,
            "min_steps": self.min_steps,
            "best_value": self.best_value,
            "best_step": self.best_step,
            "bad_evals": self.bad_evals,
            "last_step": self.last_step,
            "last_decision": None
            if last is None
            else {
                "stop": last.stop,
                "best_step": last.best_step,
                "best_value": last.best_value,
                "bad_evals": last.bad_evals,
                "improved": last.improved,
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the counters saved by ``state_dict``.

        The metric and mode must match: resuming a "max accuracy" run with a "min loss" stopper
        would silently compare different things. Patience, ``min_delta`` and ``min_steps`` stay as
        configured now, so a resumed run may deliberately change them.
        """
        if state["metric"] != self.metric or state["mode"] != self.mode:
            raise ValueError(
                f"early-stopping state is for {state['metric']!r} ({state['mode']}), "
                f"this run monitors {self.metric!r} ({self.mode})"
            )
        self.best_value = None if state["best_value"] is None else float(state["best_value"])
        self.best_step = None if state["best_step"] is None else int(state["best_step"])
        self.bad_evals = int(state["bad_evals"])
        self.last_step = None if state["last_step"] is None else int(state["last_step"])
        last = state.get("last_decision")
        self._last = None if last is None else Decision(**last)
