"""Logging for rule scripts: everything to the rule's ``log:`` file, progress with ETA."""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

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


@contextmanager
def script_logging(log_path: str | os.PathLike[str] | None) -> Iterator[logging.Logger]:
    """Send logging, stdout and stderr of a rule script to its log file, secrets redacted.

    Library warnings and tracebacks land in the rule's log, where Snakemake points the user when
    a job fails. The first line names the secret variables that are set (never their values), so a
    log shows whether the job got its credentials.
    """
    logger = logging.getLogger("rlpipe")
    if log_path is None:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
        yield logger
        return
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
        except BaseException:
            logger.exception("failed")
            raise
        finally:
            sys.stdout, sys.stderr = old_out, old_err
            root.removeHandler(handler)


class Progress:
    """Log ``done/total``, rate and ETA at most every ``every_s`` seconds (log files hate bars)."""

    def __init__(self, logger: logging.Logger, what: str, total: int, every_s: float = 5.0) -> None:
        self.logger, self.what, self.total, self.every_s = logger, what, total, every_s
        self.start = self.last = time.monotonic()
        self.done = 0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every_s or self.done >= self.total:
            self.last = now
            elapsed = now - self.start
            rate = self.done / elapsed if elapsed > 0 else float("inf")
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            self.logger.info(
                "%s: %d/%d (%.0f%%) %.1f/s elapsed %.0fs ETA %.0fs",
                self.what,
                self.done,
                self.total,
                100.0 * self.done / max(self.total, 1),
                rate,
                elapsed,
                eta,
            )
