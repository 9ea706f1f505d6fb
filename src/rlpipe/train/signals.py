"""Graceful stop on SIGTERM / SIGINT / SIGUSR1 / SIGURG: save at the end of the step, exit non-zero, resume.

SLURM sends SIGTERM when a job is preempted or cancelled and, with ``--signal=<SIG>@<seconds>``,
the chosen signal shortly before the time limit. rlpipe's SLURM jobs ask for SIGURG
(rlpipe.resources): it is ignored by default, so the Snakemake processes that wrap the trainer in
the job survive it, whereas SIGUSR1 would kill them (profiles/slurm/README.md).

Killing a trainer mid-step would lose every step since the last scheduled checkpoint; instead the
handler only records the request, the trainer finishes the step it is in, writes a complete
resumable checkpoint and raises ``TrainingInterrupted``. The non-zero exit tells Snakemake (and
SLURM requeue logic) that the job is unfinished; rerunning it resumes from that checkpoint.
SIGINT (Ctrl-C) stops the same way; a second Ctrl-C before the step ends raises
``KeyboardInterrupt`` at once, for a user who will not wait (nothing is saved then).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGURG)


class TrainingInterrupted(SystemExit):
    """Training stopped early on a signal after saving a checkpoint; the exit status is 128 + signal.

    A ``SystemExit`` so that a script ends with that status and no further cleanup treats the run
    as finished (``metrics.jsonl`` is not touched, outputs stay incomplete for Snakemake).
    """

    def __init__(self, signum: int, step: int) -> None:
        super().__init__(128 + signum)
        self.signum, self.step = signum, step

    @classmethod
    def logged(cls, signum: int, step: int) -> TrainingInterrupted:
        """The exception, after logging why (a ``SystemExit`` with a status prints nothing itself)."""
        exc = cls(signum, step)
        log.warning("%s", exc)
        return exc

    def __str__(self) -> str:
        return (
            f"training interrupted by {signal.Signals(self.signum).name} after step {self.step}; "
            "a checkpoint was saved, rerun to resume"
        )


class StopRequest:
    """Context manager recording SIGTERM/SIGINT/SIGUSR1/SIGURG instead of dying; ``requested`` is the signal.

    Handlers can only be installed from the main thread; elsewhere (e.g. a trainer driven from a
    worker thread) the context is inert and training runs to the end as before.
    """

    def __init__(self, signals: tuple[int, ...] = STOP_SIGNALS) -> None:
        self.signals = signals
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.requested == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now, without the checkpoint
        if self.requested is None:
            log.warning(
                "received %s: finishing the current step, saving a checkpoint, then exiting",
                signal.Signals(signum).name,
            )
        self.requested = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()


class StopOnSignalCallback(TrainerCallback):
    """HF ``Trainer`` callback: on a recorded stop request, save at the end of this step and stop.

    ``on_step_end`` runs after the optimizer step and before the trainer's save/log decision, so
    setting ``should_save`` there writes a complete checkpoint of the step just finished.
    """

    def __init__(self, stop: StopRequest) -> None:
        self.stop = stop
        self.stopped_at: int | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if _any_process(self.stop.requested is not None) and state.global_step < state.max_steps:
            if self.stop.requested is None:  # another process got the signal: stop at the same step
                self.stop.requested = signal.SIGTERM
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step


def _any_process(flag: bool) -> bool:
    """``flag`` of any process of a multi-process run (one tiny all-reduce per step), else ``flag``.

    The processes of an accelerate run receive a signal at slightly different moments; if one stopped
    at step N and another at N+1 the collective save would hang, so they agree on the step first.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return flag
    import torch

    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else "cpu"
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
