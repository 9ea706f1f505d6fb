"""Trainer callbacks shared by every training method: progress/ETA logs, metrics file, exports."""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from rlpipe.tracking.metrics import append_metrics, metrics_row
from rlpipe.train.checkpoints import trim_metrics

log = logging.getLogger(__name__)


class ProgressCallback(TrainerCallback):
    """Log step, rate and ETA every few seconds: training logs must say how long is left."""

    def __init__(self, what: str, every_s: float = 10.0) -> None:
        self.what, self.every_s = what, every_s
        self.start = self.last = 0.0
        self.first_step = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start = self.last = time.monotonic()
        self.first_step = state.global_step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s and state.global_step < state.max_steps:
            return
        self.last = now
        done = state.global_step - self.first_step
        rate = done / (now - self.start) if now > self.start else 0.0
        left = state.max_steps - state.global_step
        eta = left / rate if rate > 0 else math.inf
        log.info(
            "%s: step %d/%d, %.2f steps/s, elapsed %.0fs, ETA %.0fs",
            self.what,
            state.global_step,
            state.max_steps,
            rate,
            now - self.start,
            eta,
        )


class MetricsFileCallback(TrainerCallback):
    """Append every logged metrics dict (plus step and wall time) to a JSON-lines file
    (``rlpipe.tracking.metrics``: finite numbers only).

    The file is append-only and flushed per line, so a crash loses at most the line in flight;
    on resume, lines past the resumed step are dropped first so no step is counted twice.
    """

    def __init__(self, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.extra = extra or {}
        self.t0 = time.time()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:  # several processes (accelerate): one writes the file
            return
        trim_metrics(self.path, state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not logs or not state.is_world_process_zero:
            return
        fields = {"step": state.global_step, "time_s": round(time.time() - self.t0, 3), **self.extra}
        append_metrics(self.path, metrics_row(logs, **fields))
