"""MuSiQue exact match and token F1 with SQuAD normalisation."""

import pytest

from rlpipe.rewards import score
from rlpipe.rewards.musique import squad_normalize


def test_normalisation() -> None:
    assert squad_normalize("The  Eiffel-Tower!") == "eiffeltower"
    assert squad_normalize("An apple, a day") == "apple day"


def test_em() -> None:
    assert score("musique_em", "<answer>The Beatles.</answer>", "Beatles") == 1.0
    aliases = ["Fab Four", "The Beatles"]
    assert score("musique_em", "<answer>\nthe beatles\n</answer> trailing", aliases) == 1.0
    assert score("musique_em", r"\boxed{Paris}", "paris") == 1.0
    assert score("musique_em", "<answer>Beatles band</answer>", "Beatles") == 0.0
    assert score("musique_em", "<think><answer>Beatles</answer>", "Beatles") == 0.0
    assert score("musique_em", "<answer>x</answer>", {"answer": "y", "answer_aliases": ["X"]}) == 1.0


def test_f1() -> None:
    assert score("musique_f1", "<answer>Beatles band</answer>", "The Beatles") == pytest.approx(2 / 3)
    assert score("musique_f1", "<answer>Rolling Stones</answer>", "The Beatles") == 0.0
    assert score("musique_f1", "<answer>John Lennon</answer>", ["Lennon", "John Lennon"]) == 1.0
