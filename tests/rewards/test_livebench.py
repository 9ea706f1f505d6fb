"""LiveBench subtask rules, routed by extra_info["task"]."""

import logging

import pytest

from rlpipe.rewards import score


def lb(response: str, truth: str, task: str) -> float:
    return score("livebench", response, truth, {"task": task, "category": "x"})


def test_web_of_lies() -> None:
    assert lb("Thinking...\n**yes, no, yes**", "yes, no, yes", "web_of_lies_v2") == 1.0
    assert lb("**Yes**, **no** final: **no, no, yes**", "no, no, yes", "web_of_lies_v2") == 1.0
    assert lb("**yes, no, no**", "yes, no, yes", "web_of_lies_v2") == 0.0
    assert lb("yes, no, yes", "yes, no, yes", "web_of_lies_v2") == 0.0  # not bold


def test_zebra_and_spatial() -> None:
    assert lb("<solution>\nRed, 3,\nfrench\n</solution>", "red, 3, French", "zebra_puzzle") == 1.0
    assert lb("<solution>red, 4, french</solution>", "red, 3, French", "zebra_puzzle") == 0.0
    assert lb("So the count is **three**.", "3", "spatial") == 1.0
    assert lb("**sphere**", "cube", "spatial") == 0.0


def test_connections_partial_credit() -> None:
    truth = "a, b, c, d, e, f, g, h"
    assert lb("<solution>d, c, b, a, e, f, g, h</solution>", truth, "connections") == 1.0
    assert lb("<solution>a, b, c, e, d, f, g, h</solution>", truth, "connections") == 0.0
    assert lb("<solution>a, b, c, d, e, f, h, x</solution>", truth, "connections") == 0.5


def test_typos_and_plot() -> None:
    assert lb("Corrected:\nThe  cat sat on the mat.", "The cat sat on the mat.", "typos") == 1.0
    assert lb("The cat sat on teh mat.", "The cat sat on the mat.", "typos") == 0.0
    plot = "Anna meets Ben.\nThey travel north.\nThe storm hits."
    assert lb(plot, plot, "plot_unscrambling") == 1.0
    swapped = "They travel north.\nAnna meets Ben.\nThe storm hits."
    assert lb(swapped, plot, "plot_unscrambling") == pytest.approx(1 - 2 / 3)


def test_data_analysis() -> None:
    assert lb("The column is\n`Price`.", "price", "cta") == 1.0
    assert lb("Price or cost", "price", "cta") == 0.0
    truth = "{'a': 'x', 'b': 'y'}"
    assert lb('```python\n{"a": "x", "b": "y"}\n```', truth, "tablejoin") == 1.0
    assert lb('{"a": "x"}', truth, "tablejoin") == pytest.approx(2 / 3)
    assert lb("{}", truth, "tablejoin") == 0.0


def test_uncovered_task_scores_zero_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert lb("anything", "anything", "tablereformat") == 0.0
    assert "tablereformat" in caplog.text
    assert score("livebench", "**yes**", "yes", None) == 0.0
