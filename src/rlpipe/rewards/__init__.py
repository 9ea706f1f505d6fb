"""Scorers shared by evaluation and training rewards: ``score(scorer, response, ground_truth, extra_info)``.

Importing this package registers every scorer module listed below. The GURU suite's scorers:

===========================  =====================================================================
``math``, ``gsm8k``          ``math_answers``: last box group after ``</think>``, equivalence
``code``                     ``code``: fenced program run against tests in ``sandbox``
``mc``                       ``mc``: option letter A-J, deterministic
``arc_grid``, ``zebra``,     ``logic``: ``<answer>`` blocks (multi-line), exact grid / cell
``ordering``                 accuracy / exact list
``codeio``, ``cruxeval_i``,  ``simulation``: JSON compare; CruxEval checked by sandboxed execution
``cruxeval_o``
``tabular``                  ``tabular``: numbers within 1e-3 relative, ``|`` multi-answers
``ifeval_strict``,           ``ifeval``: prompt-level instruction following, 36 instruction ids
``ifeval_loose``
``livebench``                ``livebench``: per-subtask rules (``extra_info["task"]``)
``musique_em``,              ``musique``: SQuAD-normalised exact match and token F1
``musique_f1``
===========================  =====================================================================

Each module's docstring states the exact semantics and the written decisions where a scorer differs
from its reference (README, "Scorers and their references"). Scorers never raise on model output.
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
