"""Scorers shared by evaluation and training rewards: ``score(scorer, response, ground_truth, extra_info)``.

Importing this package registers every scorer module listed below.
"""

from rlpipe.rewards import (  # noqa: F401  (registers scorers)
    basic,
    code,
    ifeval,
    livebench,
    logic,
    math_answers,
    mc,
    musique,
    simulation,
    tabular,
)
from rlpipe.rewards.registry import SCORERS, get_scorer, register, score

__all__ = ["SCORERS", "get_scorer", "register", "score"]
