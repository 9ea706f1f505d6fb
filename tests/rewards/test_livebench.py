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
        assert lb("anything", "anything", "house_traversal") == 0.0
    assert "house_traversal" in caplog.text
    assert score("livebench", "**yes**", "yes", None) == 0.0


TSV = "name\tage\nAnn\t30\nBob\t4.50\n"


@pytest.mark.parametrize(
    "answer",
    [
        '```json\n[{"name": "Ann", "age": 30}, {"name": "Bob", "age": 4.5}]\n```',
        '{"name": {"0": "Ann", "1": "Bob"}, "age": {"0": 30, "1": 4.5}}',  # orient="columns"
        '{"0": {"name": "Ann", "age": 30}, "1": {"name": "Bob", "age": 4.5}}',  # orient="index"
        '{"name": "Bob", "age": 4.5}\n{"name": "Ann", "age": 30}',  # JSONL, other row order
        "<table><tr><th>name</th><th>age</th></tr><tr><td>Ann</td><td>30</td></tr>"
        "<tr><td>Bob</td><td>4.5</td></tr></table>",
        "| name | age |\n|---|---|\n| Ann | 30 |\n| Bob | 4.5 |",
        "name,age\nann,30.0\nBob,4.5",
    ],
)
def test_tablereformat_positive(answer: str) -> None:
    assert lb(answer, TSV, "tablereformat") == 1.0


@pytest.mark.parametrize(
    "answer",
    [
        '[{"name": "Ann", "age": 31}, {"name": "Bob", "age": 4.5}]',
        '[{"name": "Ann", "age": 30}]',  # a row missing
        '[{"name": "Ann", "years": 30}, {"name": "Bob", "years": 4.5}]',  # renamed column
        "I cannot convert this table.",
    ],
)
def test_tablereformat_negative(answer: str) -> None:
    assert lb(answer, TSV, "tablereformat") == 0.0
