"""LiveBench subtask rules, routed by extra_info["task"] (LiveBench's process_results; parity cases in
tests/rewards/parity/cases/livebench.jsonl)."""

import logging

import pytest

from rlpipe.rewards import score

OLD, NEW = "2024-06-24", "2024-11-25"  # before / from the release that moved puzzles to <solution> tags


def lb(response: str, truth: str, task: str, **extra: object) -> float:
    return score("livebench", response, truth, {"task": task, "category": "x", **extra})


def test_web_of_lies() -> None:
    assert lb("Thinking...\n**yes, no, yes**", "yes, no, yes", "web_of_lies_v2") == 1.0
    assert lb("**Yes**, **no** final: **no, no, yes**", "no, no, yes", "web_of_lies_v2") == 1.0
    assert lb("A: **No**\nB: **Yes**\nC: **No**", "no, yes, no", "web_of_lies_v2") == 1.0
    assert lb("**yes, no, no**", "yes, no, yes", "web_of_lies_v2") == 0.0
    # LiveBench's fallbacks: <solution>, \boxed{}, then the triple written last in plain text
    assert lb("<solution>yes, no, yes</solution>", "yes, no, yes", "web_of_lies_v2") == 1.0
    assert lb("$\\boxed{\\text{yes, no, yes}}$", "yes, no, yes", "web_of_lies_v2") == 1.0
    assert lb("Answer: yes, no, yes", "yes, no, yes", "web_of_lies_v2") == 1.0
    # livebench.refuse-hedge
    assert lb("**yes or no**, **no**, **yes or no**", "no, yes, no", "web_of_lies_v2") == 0.0


def test_web_of_lies_v3_partial_credit() -> None:
    assert lb("<solution>yes, no, yes</solution>", "yes, no, yes", "web_of_lies_v3") == 1.0
    assert lb("<solution>yes, no, no</solution>", "yes, no, yes", "web_of_lies_v3") == pytest.approx(1 / 3)
    assert lb("nothing here", "yes, no, yes", "web_of_lies_v3") == 0.0


def test_zebra_old_single_answer() -> None:
    assert lb("So the fish is at ***3***", "3", "zebra_puzzle", date=OLD) == 1.0
    assert lb("***3***", "three", "zebra_puzzle", date=OLD) == 1.0
    assert lb("***horror***", "horror movies", "zebra_puzzle", date=OLD) == 1.0
    assert lb("So the answer is 3", "3", "zebra_puzzle", date=OLD) == 1.0  # last word
    assert lb("***2*** no wait ***3***", "2", "zebra_puzzle", date=OLD) == 0.0


def test_zebra_new_solution_tags() -> None:
    assert lb("<solution>\nRed, 3,\nfrench\n</solution>", "red, 3, French", "zebra_puzzle", date=NEW) == 1.0
    # partial credit: (all right + share right) / 2
    assert lb("<solution>red, 4, french</solution>", "red, 3, French", "zebra_puzzle") == pytest.approx(1 / 3)
    # livebench.zebra-whole-word and livebench.refuse-hedge
    assert lb("<solution>12, blue</solution>", "2, blue", "zebra_puzzle", date=NEW) == 0.25
    assert lb("<solution>2, red or blue</solution>", "2, blue", "zebra_puzzle", date=NEW) == 0.25
    assert lb("<solution>2, light blue</solution>", "2, blue", "zebra_puzzle", date=NEW) == 1.0


def test_spatial() -> None:
    assert lb("So the count is **three**.", "3", "spatial") == 1.0
    assert lb("**Answer:** **3**\n\n**Explanation**", "3", "spatial") == 1.0
    assert lb("The cut gives **two tetrahedra**", "tetrahedra", "spatial") == 1.0
    assert lb("$\\boxed{3}$", "3", "spatial") == 1.0
    assert lb("**sphere**", "cube", "spatial") == 0.0
    assert lb("**2** or **3**", "3", "spatial") == 0.0  # livebench.refuse-hedge


def test_connections_new_partial_credit() -> None:
    truth = "a, b, c, d, e, f, g, h"
    assert lb("<solution>d, c, b, a, e, f, g, h</solution>", truth, "connections", date=NEW) == 1.0
    assert lb("<solution>a, b, c, e, d, f, g, h</solution>", truth, "connections", date=NEW) == 0.0
    assert lb("<solution>a, b, c, d, e, f, h, x</solution>", truth, "connections", date=NEW) == 0.5
    # livebench.refuse-repeated-group: one right group written twice counts once
    assert lb("<solution>a, b, c, d, a, b, c, d</solution>", truth, "connections", date=NEW) == 0.5


def test_connections_old_bold_lists() -> None:
    truth = "a, b, c, d, e, f, g, h"
    assert lb("**d, c, b, a, h, g, f, e**", truth, "connections", date=OLD) == 1.0
    assert lb("**a, b, c, d**\n**e, f, g, h**", truth, "connections") == 0.5  # undated: as the GURU router
    # livebench.connections-last-answer: of two complete answers the last is graded
    assert lb("**a, b, c, d, e, f, g, h** or **a, e, b, f, c, g, d, h**", truth, "connections") == 0.0


def test_typos_and_plot() -> None:
    assert lb("Corrected:\nThe cat sat on the mat.", "The cat sat on the mat.", "typos") == 1.0
    assert lb("<solution>The cat sat on the mat.</solution>", "The cat sat on the mat.", "typos") == 1.0
    assert lb("The cat sat on teh mat.", "The cat sat on the mat.", "typos") == 0.0
    # LiveBench compares the text exactly: a doubled space inside a line is a change
    assert lb("The  cat sat on the mat.", "The cat sat on the mat.", "typos") == 0.0
    plot = "Anna meets Ben.\nThey travel north.\nThe storm hits."
    assert lb(plot, plot, "plot_unscrambling") == 1.0
    assert lb(f"<PLOT_SUMMARY>{plot}</PLOT_SUMMARY>", plot, "plot_unscrambling") == 1.0
    swapped = "They travel north.\nAnna meets Ben.\nThe storm hits."
    assert lb(swapped, plot, "plot_unscrambling") == pytest.approx(1 - 2 / 3)


def test_copied_prompt_earns_nothing() -> None:
    """livebench.refuse-copied-prompt: the question and its "(for example, ...)" formats are not graded."""
    prompt = "Does A tell the truth? Answer in **bold** (for example, **yes, no, yes**)."
    assert lb(prompt, "yes, no, yes", "web_of_lies_v2") == 0.0
    assert lb(prompt, "yes, no, yes", "web_of_lies_v2", prompt=[prompt]) == 0.0
    assert lb(prompt + "\n\n**yes, no, yes**", "yes, no, yes", "web_of_lies_v2", prompt=[prompt]) == 1.0


def test_unclosed_think_has_no_answer() -> None:
    assert (
        lb("<think>so **yes, no, yes**", "yes, no, yes", "web_of_lies_v2") == 0.0
    )  # livebench.unclosed-think
    assert lb("<think>hmm</think>**yes, no, yes**", "yes, no, yes", "web_of_lies_v2") == 1.0


def test_data_analysis() -> None:
    assert lb("The column is\n`Price`.", "price", "cta") == 1.0
    assert lb("\\boxed{\\text{price}}", "price", "cta") == 1.0
    assert lb("Price or cost", "price", "cta") == 0.0
    assert lb("cost or price", "price", "cta") == 0.0  # livebench.refuse-hedge
    assert lb("unit_price", "price", "cta") == 0.0  # livebench.cta-whole-name
    truth = "{'a': 'x', 'b': 'y'}"
    assert lb('```python\n{"a": "x", "b": "y"}\n```', truth, "tablejoin") == 1.0
    assert lb('{"a": "x"}', truth, "tablejoin") == 0.67  # F1 2/3, rounded to 2 decimals as LiveBench
    assert lb("Mapping: {'a': 'x', 'b': 'y'}", truth, "tablejoin") == 0.0  # not a Python literal
    assert lb("{}", truth, "tablejoin") == 0.0


def test_uncovered_task_scores_zero_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert lb("anything", "anything", "house_traversal") == 0.0
    assert "house_traversal" in caplog.text
    assert score("livebench", "**yes**", "yes", None) == 0.0


TSV = "name\tage\nAnn\t30\nBob\t4.50\n"


def convert(target: str) -> list[str]:
    return [f"Please convert the Input Table from TSV format to {target} format. \n Input Table: {TSV}"]


@pytest.mark.parametrize(
    ("target", "answer"),
    [
        ("JSONL", '```jsonl\n{"name": "Ann", "age": 30}\n{"name": "Bob", "age": 4.5}\n```'),
        (
            "JSONL",
            'Here is the table in JSONL format:\n{"name": "Ann", "age": 30}\n{"name": "Bob", "age": 4.5}',
        ),
        ("JSON", '{"0": {"name": "Ann", "age": 30}, "1": {"name": "Bob", "age": 4.5}}'),
        ("JSON", '```json\n[{"name": "Ann", "age": 30}, {"name": "Bob", "age": 4.5}]\n```'),
        (
            "HTML",
            "<table><tr><th>name</th><th>age</th></tr><tr><td>Ann</td><td>30</td></tr>"
            "<tr><td>Bob</td><td>4.5</td></tr></table>",
        ),
        ("CSV", "name,age\nAnn,30.0\nBob,4.5"),
        ("CSV", "age,name\n30,Ann\n4.5,Bob"),
    ],
)
def test_tablereformat_positive(target: str, answer: str) -> None:
    truth = {
        "JSONL": '{"name": "Ann", "age": 30}\n{"name": "Bob", "age": 4.5}',
        "JSON": '{"0": {"name": "Ann", "age": 30}, "1": {"name": "Bob", "age": 4.5}}',
        "HTML": "<table><thead><tr><th>name</th><th>age</th></tr></thead><tbody><tr><td>Ann</td><td>30</td>"
        "</tr><tr><td>Bob</td><td>4.5</td></tr></tbody></table>",
        "CSV": "name,age\nAnn,30\nBob,4.5",
    }[target]
    assert lb(answer, truth, "tablereformat", prompt=convert(target)) == 1.0


@pytest.mark.parametrize(
    "answer",
    [
        '{"name": "Ann", "age": 31}\n{"name": "Bob", "age": 4.5}',
        '{"name": "Ann", "age": 30}',  # a row missing
        '{"name": "Bob", "age": 4.5}\n{"name": "Ann", "age": 30}',  # rows reordered
        '{"name": "Ann", "years": 30}\n{"name": "Bob", "years": 4.5}',  # renamed column
        "name,age\nAnn,30\nBob,4.5",  # another format than asked
        "I cannot convert this table.",
    ],
)
def test_tablereformat_negative(answer: str) -> None:
    truth = '{"name": "Ann", "age": 30}\n{"name": "Bob", "age": 4.5}'
    assert lb(answer, truth, "tablereformat", prompt=convert("JSONL")) == 0.0


def test_tablereformat_without_prompt_reads_the_truths_format() -> None:
    assert lb("name\tage\nAnn\t30\nBob\t4.5", TSV, "tablereformat") == 1.0
    assert lb("name\tage\nAnn\t31\nBob\t4.5", TSV, "tablereformat") == 0.0
