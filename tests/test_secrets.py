"""Secrets reach jobs through the environment and never a rule's log (rlpipe.tracking.logs)."""

from __future__ import annotations

import logging
import sys

import pytest

from rlpipe.tracking.logs import redact, script_logging

TOKEN = "hf_sentinelTOKEN0123456789"
WANDB = "wandb-sentinel-0123456789abcdef"


@pytest.fixture
def secrets(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("WANDB_API_KEY", WANDB)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)


def test_everything_a_job_writes_to_its_log_is_redacted(secrets, tmp_path):
    log = tmp_path / "job.log"
    with pytest.raises(RuntimeError), script_logging(log) as logger:
        logger.info("token=%s", TOKEN)  # a log record with the secret as an argument
        logging.getLogger("some.library").warning("calling the hub with %s", TOKEN)
        print(f"wandb key {WANDB}")  # stdout
        sys.stderr.write(f"deprecated: pass token={TOKEN}\n")  # stderr, as a library warning
        raise RuntimeError(f"401 for token {TOKEN}")  # a traceback, formatted after any filter
    text = log.read_text()
    assert TOKEN not in text and WANDB not in text
    # the lines are there, redacted: nothing was dropped
    assert "token=***" in text and "wandb key ***" in text and "401 for token ***" in text
    assert "calling the hub with ***" in text and "pass token=***" in text
    assert "secrets in the environment: HF_TOKEN, WANDB_API_KEY (values redacted)" in text


def test_log_names_no_secrets_when_none_are_set(monkeypatch, tmp_path):
    for var in ("HF_TOKEN", "WANDB_API_KEY", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    with script_logging(tmp_path / "job.log"):
        pass
    assert "secrets in the environment: none" in (tmp_path / "job.log").read_text()


def test_short_values_are_not_treated_as_secrets(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "1")  # would garble every number in the log
    monkeypatch.setenv("WANDB_API_KEY", WANDB)
    assert redact("step 1 of 10, key " + WANDB) == "step 1 of 10, key ***"
