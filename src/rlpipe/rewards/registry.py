"""The scorer registry: one name -> one pure function, used for evaluation AND as training reward.

Every scorer has the signature ``fn(response, ground_truth, extra_info) -> float`` and returns a
value in [0, 1]. Scorers must be deterministic (no random fallbacks) and must never raise on
model output: malformed output scores 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ScorerFn = Callable[[str, Any, dict | None], float]

SCORERS: dict[str, ScorerFn] = {}


def register(name: str) -> Callable[[ScorerFn], ScorerFn]:
    """Register ``fn`` under ``name``; a second registration of one name is a programming error."""

    def decorator(fn: ScorerFn) -> ScorerFn:
        if name in SCORERS:
            raise ValueError(f"scorer {name!r} is registered twice")
        SCORERS[name] = fn
        return fn

    return decorator


def get_scorer(name: str) -> ScorerFn:
    """Return the scorer called ``name``; the error lists the known names."""
    try:
        return SCORERS[name]
    except KeyError:
        known = ", ".join(sorted(SCORERS))
        raise KeyError(f"unknown scorer {name!r}; known scorers: {known}") from None


def score(scorer: str, response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """Score one response with the named scorer, clamped to [0, 1]."""
    value = float(get_scorer(scorer)(response, ground_truth, extra_info))
    return min(1.0, max(0.0, value))
