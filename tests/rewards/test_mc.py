"""Multiple-choice scorer: deterministic letter extraction, no random fallback."""

import pytest

from rlpipe.rewards import score
from rlpipe.rewards.mc import extract_letter


@pytest.mark.parametrize(
    "response",
    [
        r"\boxed{C}",
        r"\boxed{(C)}",
        r"\boxed{\text{C}}",
        r"\boxed{C. 42 joules}",
        "Therefore, Answer: C",
        "The answer is (C).",
        "**Answer:** C",
        r"<think>\boxed{A}</think> final \boxed{C}",
    ],
)
def test_mc_positive(response: str) -> None:
    assert score("mc", response, "C") == 1.0


@pytest.mark.parametrize(
    "response",
    [
        r"\boxed{A}",
        r"<think>\boxed{C}</think> I cannot decide",
        "I think C is plausible but so is D",  # no committed answer
        r"\boxed{Carbon}",
        "",
        r"\boxed{C} no wait \boxed{D}",
    ],
)
def test_mc_negative(response: str) -> None:
    assert score("mc", response, "C") == 0.0


def test_mc_deterministic_and_j() -> None:
    assert extract_letter("nothing here") is None
    assert {score("mc", "no answer", "A") for _ in range(20)} == {0.0}
    assert score("mc", r"\boxed{J}", "(J)") == 1.0
    assert score("mc", r"\boxed{K}", "K") == 0.0  # out of range ground truth


@pytest.mark.parametrize(
    "response",
    [
        "My choice is C.",
        "I think C is correct.",
        "Option C is the best choice.",
        "I'll go with C.",
        "The correct option is (C).",
        "(C) is the right answer.",
        "Answer: C\n\nB is incorrect because it ignores friction.",
        "A reasonable approach is to compute the energy. The answer is C.",
        r"\boxed{c}",
        r"\boxed{Option C}",
        r"\boxed{C}</s> trailing \boxed{D}",
    ],
)
def test_mc_ordinary_phrasing(response: str) -> None:
    assert score("mc", response, "C") == 1.0


@pytest.mark.parametrize(
    "response",
    [
        r"\boxed{A B C D}",
        r"\boxed{A B C D E F G H I J}",
        r"\boxed{C or D}",
        r"\boxed{C, D}",
        r"\boxed{C/D}",
        "Answer: C or D",
        "Answer: A B C D",
        "The answer is C, D",
        "The answer is C-glucose",  # a name, not option C
        "So my answer: I believe it is the second one.",  # the pronoun I, not option I
        # a copied prompt: its example box is not an answer
        "Q?\nA) x\nC) y\nPut your final answer option within \\boxed{}. Only put the letter in the box, "
        "e.g. \\boxed{C}. There is only one correct answer.",
    ],
)
def test_mc_hedges_and_copied_prompt_score_zero(response: str) -> None:
    assert score("mc", response, "C") == 0.0
    assert score("mc", response, "I") == 0.0
