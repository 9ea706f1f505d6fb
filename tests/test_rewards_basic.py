"""The short-answer scorers and the registry contract."""

import pytest

from rlpipe.rewards import SCORERS, get_scorer, score


def test_integer_scorer():
    assert score("integer", "52", "52") == 1.0
    assert score("integer", " 52\n", "52") == 1.0
    assert score("integer", "-5", "-5") == 1.0
    assert score("integer", "1,000", "1000") == 1.0
    assert score("integer", "<think>maybe 51</think>52", "52") == 1.0
    assert score("integer", "52 or 53", "52") == 0.0
    assert score("integer", "", "52") == 0.0
    assert score("integer", "5 2", "52") == 0.0
    assert score("integer", "53", "52") == 0.0


def test_exact_match_scorer():
    assert score("exact_match", "1258", "1258") == 1.0
    assert score("exact_match", "  1258 ", "1258") == 1.0
    assert score("exact_match", "12 58", "1258") == 0.0
    assert score("exact_match", "1285", "1258") == 0.0


def test_unknown_scorer_lists_known_ones():
    with pytest.raises(KeyError, match="unknown scorer 'nope'; known scorers: .*integer"):
        get_scorer("nope")
    assert "exact_match" in SCORERS
