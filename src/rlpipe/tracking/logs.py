"""Logging for rule scripts: everything to the rule's ``log:`` file, progress with ETA."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_SECRET_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "WANDB_API_KEY")


class _RedactSecrets(logging.Filter):
    """Replace the values of secret environment variables in every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [os.environ[v] for v in _SECRET_VARS if len(os.environ.get(v, "")) >= 8]
        if secrets:
            message = record.getMessage()
            for secret in secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


@contextmanager
def script_logging(log_path: str | os.PathLike[str] | None) -> Iterator[logging.Logger]:
    """Send logging, stdout and stderr of a rule script to its log file.

    Library warnings and tracebacks land in the rule's log, where Snakemake points the user when
    a job fails.
    """
    logger = logging.getLogger("rlpipe")
    if log_path is None:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
        yield logger
        return
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", buffering=1) as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(_RedactSecrets())
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = fh
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
