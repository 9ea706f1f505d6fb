"""Four prompts of the three procedural domains, scored by a dense toy reward: the PPO tests that
check per-domain (PCGrad) and micro-batched updates need reward variance in every domain, which the
tiny random model's completions earn from ``test_char_sum`` (their characters) and not from the real
scorers."""

from __future__ import annotations

from typing import Any

from rlpipe.data.tasks import generate
from rlpipe.rewards.registry import SCORERS

SCORER = "test_char_sum"
SCORERS.setdefault(SCORER, lambda response, ground_truth, extra=None: sum(map(ord, response)) % 97 / 96)


def three_domain_rows() -> list[dict[str, Any]]:
    """Four prompts of three domains: math (addition), logic (sorting), simulation (program)."""
    add, sort, prog = (generate(task, "train", 2, 0) for task in ("addition", "sorting", "program"))
    rows = [add[0], sort[0], prog[0], add[1]]
    for row in rows:
        row["scorer"] = SCORER
    return rows
