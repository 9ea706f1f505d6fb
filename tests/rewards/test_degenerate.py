"""Issue 24, item 4: an empty response, a copy of the question and a hedge earn no reward.

Checked on rows the project itself trains on (the embedded default's procedural tasks) and on the
ground truths of every scorer's parity cases (real GURU, IFEval and LiveBench formats), with the same
``reward_for_nothing`` the pre-flight job runs before every training run.
"""

from __future__ import annotations

import pytest
from parity.agreement import load_cases

from rlpipe.data.sources import PROMPT_READING_SCORERS
from rlpipe.data.tasks import TASKS, generate
from rlpipe.rewards import score
from rlpipe.rewards.degenerate import degenerate_responses, reward_for_nothing

#: Scorers that pay partial credit by design and so pay a hedge that contains the answer.
PARTIAL_CREDIT = {"musique_f1"}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_the_procedural_tasks_pay_nothing_for_degenerate_responses(task):
    rows = generate(task, "train", 12, seed=3)
    checked, paid = reward_for_nothing(rows, score, per_scorer=12)
    assert checked >= 24 and not paid, paid


def _parity_rows() -> list[dict]:
    """One row per correct parity case: its scorer, ground truth and extra_info, a made-up question."""
    question = "Solve the problem below and give the answer."
    rows = []
    for _, case in load_cases():
        if float(case["reference_score"]) == 1.0 and case["scorer"] not in PARTIAL_CREDIT:
            info = dict(case.get("extra_info") or {})
            if case["scorer"] in PROMPT_READING_SCORERS:  # as the data layer gives them their prompt
                info["prompt"] = question
            rows.append(
                {
                    "prompt": [{"role": "user", "content": question}],
                    "ground_truth": case["ground_truth"],
                    "extra_info": info,
                    "scorer": case["scorer"],
                    "task": case["id"],
                }
            )
    return rows


def test_no_scorer_pays_for_degenerate_responses_on_real_ground_truths():
    rows = _parity_rows()
    if not rows:
        pytest.skip("no parity case files yet")
    checked, paid = reward_for_nothing(rows, score, per_scorer=40)
    assert checked > 0
    assert not paid, "\n".join(f"{p['scorer']} {p['kind']} {p['task']}: {p['score']}" for p in paid[:20])


def test_a_hedge_holds_the_right_and_a_wrong_answer():
    hedges = degenerate_responses("What is 6 x 7?", "#### 42")
    assert "42" in hedges["hedge"] and "43" in hedges["hedge"] and "all_options" not in hedges
    letters = degenerate_responses("Pick one.", "(C)")
    assert "\\boxed{A B C D E F G H I J}" in letters["all_options"] and "D or C" in letters["hedge"]
    assert set(degenerate_responses("x", {"header": [], "rows": []})) == {"empty", "copied_prompt"}


def test_a_scorer_that_pays_for_a_hedge_is_found():
    """The check is not vacuous: token F1 pays partial credit for 'Paris or London'-style hedges."""
    rows = [
        {"prompt": [{"role": "user", "content": "Capital?"}], "ground_truth": "Paris", "scorer": "musique_f1"}
    ]
    checked, paid = reward_for_nothing(rows, score)
    assert checked == 3 and [p["kind"] for p in paid] == ["hedge"] and 0 < paid[0]["score"] < 1
