"""script_logging records every attempt's timing next to the log; progress lines carry a bar and ETA."""

from __future__ import annotations

import json
import logging

import pytest

from rlpipe.tracking.logs import Progress, progress_line, read_timing, script_logging, timing_path


def test_timing_sidecar_records_success_and_failure(tmp_path, monkeypatch) -> None:
    log = tmp_path / "logs" / "train" / "grpo.log"
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    with script_logging(log):
        sum(i * i for i in range(200_000))  # some CPU time
    with pytest.raises(RuntimeError), script_logging(log):
        raise RuntimeError("boom")
    assert timing_path(log) == tmp_path / "logs" / "train" / "grpo.timing.jsonl"
    first, second = read_timing(log)
    assert first["status"] == "ok" and second["status"] == "failed"
    assert first["slurm_job_id"] == "4242" and first["gpus"] == 0
    assert first["wall_s"] >= 0 and first["cpu_s"] > 0
    assert set(first) >= {"start", "end", "host"}
    assert "job ok: wall" in log.read_text() and "job failed" in log.read_text()
    json.dumps(first)  # plain JSON


def test_progress_line_has_bar_rate_and_eta() -> None:
    line = progress_line("generate", 25, 100, 10.0)
    assert line.startswith("generate: [#####...............] 25/100 (25%) 2.50 it/s")
    assert line.endswith("elapsed 10s ETA 30s")
    assert progress_line("x", 0, 10, 0.0).endswith("ETA ?")
    assert "ETA 1h02m30s" in progress_line("train", 1, 2, 3750.0)


def test_progress_logs_through_the_logger(caplog) -> None:
    logger = logging.getLogger("rlpipe.test")
    with caplog.at_level(logging.INFO):
        p = Progress(logger, "score", 4, every_s=0.0)
        for _ in range(4):
            p.update()
    assert "score: [####################] 4/4 (100%)" in caplog.text
