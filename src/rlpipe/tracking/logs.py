"""Logging for rule scripts: everything to the rule's ``log:`` file, progress with ETA, job timing.

Every rule script runs inside :func:`script_logging`, so this is also where a job's cost is
measured: on exit it appends one JSON line (wall time, CPU time, GPUs used, SLURM job id) to the
log's timing sidecar (:func:`timing_path`). The report turns those lines -- refined by ``sacct``
when the jobs ran under SLURM -- into wall time and GPU-hours per run and per evaluation.
"""

from __future__ import annotations

import io
import json
import logging
import os
import resource
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from rlpipe.tracking.io import iter_jsonl

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: environment variables whose values must never reach a log (they reach jobs through the environment)
SECRET_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "WANDB_API_KEY")
#: shorter values are not treated as secrets (replacing "1" or "abc" everywhere would garble logs)
MIN_SECRET_LEN = 8


def secret_values() -> list[str]:
    """The values of the secret variables set in this process's environment, longest first."""
    values = {os.environ[v] for v in SECRET_VARS if len(os.environ.get(v, "")) >= MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with every secret value replaced by ``***``."""
    for secret in secret_values() if secrets is None else secrets:
        text = text.replace(secret, "***")
    return text


class RedactingStream(io.TextIOBase):
    """A text stream that writes to ``raw`` with secret values replaced.

    The rule's log file is reached through it by everything a job writes: log records (with their
    tracebacks, which a logging.Filter never sees), ``print``, library warnings on stderr. Secrets
    are read once, when the stream is made; a write that splits a secret in two is not caught, which
    ``print`` and ``logging`` never do.
    """

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw
        self.secrets = secret_values()

    def write(self, text: str) -> int:
        self.raw.write(redact(text, self.secrets) if self.secrets else text)
        return len(text)

    def flush(self) -> None:
        self.raw.flush()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        # for faulthandler and child processes, which write to the file itself, unredacted
        return self.raw.fileno()


def timing_path(log_path: str | os.PathLike[str]) -> Path:
    """The timing sidecar of a rule log: ``logs/train/grpo.log`` -> ``logs/train/grpo.timing.jsonl``.

    A sidecar rather than lines in the log because Snakemake deletes a job's log when it reruns
    the job, and the attempts that crashed or were preempted before a successful resume cost
    GPU-hours too: the sidecar keeps one line per attempt.
    """
    path = Path(log_path)
    return path.with_name(path.stem + ".timing.jsonl")


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its waited-for children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _gpus_used() -> dict[str, Any]:
    """GPUs this process allocated memory on (0 when it never touched CUDA).

    Counting devices with a non-zero peak allocation, not visible devices, keeps a job that was
    merely *able* to see 8 GPUs from being billed for 8.
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {"gpus": 0}
    used = [i for i in range(torch.cuda.device_count()) if torch.cuda.max_memory_allocated(i) > 0]
    return {
        "gpus": len(used),
        "gpu_names": sorted({torch.cuda.get_device_name(i) for i in used}),
        "gpu_mem_peak_gb": round(
            max((torch.cuda.max_memory_allocated(i) for i in used), default=0) / 2**30, 3
        ),
    }


def _process_started() -> float | None:
    """When this process started (epoch seconds), or None where that cannot be read."""
    try:
        import psutil  # a Snakemake dependency

        return float(psutil.Process().create_time())
    except Exception:  # no psutil, or a platform it cannot read
        return None


def job_record(start: float, cpu_start: float, status: str) -> dict[str, Any]:
    """One attempt of a job, as the timing sidecar stores it (no environment, no secrets).

    ``startup_s`` is the time from the process's start to the script's (interpreter, Snakemake's
    script preamble, imports): the fixed cost of a job that ``wall_s`` does not include.
    """
    end = time.time()
    started = _process_started()
    return {
        "start": datetime.fromtimestamp(start, UTC).isoformat(timespec="seconds"),
        "end": datetime.fromtimestamp(end, UTC).isoformat(timespec="seconds"),
        "startup_s": round(start - started, 3) if started is not None else None,
        "wall_s": round(end - start, 3),
        "cpu_s": round(_cpu_seconds() - cpu_start, 3),
        "status": status,
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        **_gpus_used(),
    }


@contextmanager
def script_logging(log_path: str | os.PathLike[str] | None) -> Iterator[logging.Logger]:
    """Send logging, stdout and stderr of a rule script to its log file, secrets redacted; record
    the job's timing.

    Library warnings and tracebacks land in the rule's log, where Snakemake points the user when
    a job fails. The first line names the secret variables that are set (never their values), so a
    log shows whether the job got its credentials. On exit (success or failure) one line is
    appended to :func:`timing_path`.
    """
    logger = logging.getLogger("rlpipe")
    if log_path is None:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
        yield logger
        return
    start, cpu_start, status = time.time(), _cpu_seconds(), "failed"
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", buffering=1) as fh:
        out = RedactingStream(fh)
        handler = logging.StreamHandler(out)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = out
        set_vars = [v for v in SECRET_VARS if os.environ.get(v)]
        logger.info("secrets in the environment: %s (values redacted)", ", ".join(set_vars) or "none")
        try:
            yield logger
            status = "ok"
        except BaseException:
            logger.exception("failed")
            raise
        finally:
            try:
                record = job_record(start, cpu_start, status)
                with open(timing_path(log_path), "a") as timing:
                    timing.write(json.dumps(record, sort_keys=True) + "\n")
                logger.info(
                    "job %s: wall %.1fs, CPU %.1fs, %d GPU(s)",
                    status,
                    record["wall_s"],
                    record["cpu_s"],
                    record["gpus"],
                )
            finally:
                sys.stdout, sys.stderr = old_out, old_err
                root.removeHandler(handler)


def read_timing(log_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The recorded attempts of the job that writes ``log_path`` (empty when none was recorded); a
    record torn by a kill mid-append is dropped with a warning."""
    path = timing_path(log_path)
    if not path.exists():
        return []
    return [row for _, _, row in iter_jsonl(path, noun="timing record", appended=True)]


def progress_line(what: str, done: int, total: int, elapsed: float, unit: str = "") -> str:
    """``what: [#####.....] done/total (pct) rate elapsed ETA`` -- a bar that reads well in a log file.

    Shared by :class:`Progress` and the trainers' step callbacks so every long job reports alike.
    """
    frac = min(1.0, done / total) if total > 0 else 1.0
    width = 20
    filled = int(round(frac * width))
    rate = done / elapsed if elapsed > 0 and done > 0 else float("nan")
    eta = max(total - done, 0) / rate if rate > 0 else float("nan")
    shown = f"{rate:.2f}" if rate == rate else "?"
    return (
        f"{what}: [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{unit} ({100 * frac:.0f}%) "
        f"{shown}{unit or ' it'}/s elapsed {_duration(elapsed)} ETA {_duration(eta)}"
    )


def _duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """Log a progress bar, ``done/total``, rate and ETA at most every ``every_s`` seconds.

    One line per update rather than a redrawn bar: log files (and SLURM's) keep every line.
    """

    def __init__(self, logger: logging.Logger, what: str, total: int, every_s: float = 5.0) -> None:
        self.logger, self.what, self.total, self.every_s = logger, what, total, every_s
        self.start = self.last = time.monotonic()
        self.done = 0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every_s or self.done >= self.total:
            self.last = now
            self.logger.info("%s", progress_line(self.what, self.done, self.total, now - self.start))
