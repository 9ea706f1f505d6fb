"""All GURU scorers are registered, bounded and never raise on hostile or malformed model output."""

import pytest

from rlpipe.rewards import SCORERS, score

GURU = [
    "math", "gsm8k", "code", "mc", "arc_grid", "zebra", "ordering", "codeio", "cruxeval_i", "cruxeval_o",
    "tabular", "ifeval_strict", "ifeval_loose", "livebench", "musique_em", "musique_f1",
]  # fmt: skip

JUNK = [
    "",
    "</think>",
    "<think>",
    "\\boxed{" * 200,
    "}" * 100 + "\\boxed{}",
    "<answer>" * 50,
    "```python\n" * 10,
    "\x00\xff\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
    "[" * 5000 + "]" * 5000,
    "<answer>" + "[" * 2000 + "</answer>",
    "A" * 100_000,
]
TRUTHS = ["1", None, {"header": [], "rows": []}, ["a"], '{"inputs": ["1"], "outputs": ["1"]}', 3.5]


def test_all_guru_scorers_registered() -> None:
    assert set(GURU) <= set(SCORERS)


@pytest.mark.parametrize("name", GURU)
def test_never_raises_and_is_bounded(name: str) -> None:
    for response in JUNK:
        for truth in TRUTHS:
            value = score(
                name, response, truth, {"task": "cta", "instruction_id_list": ["x"], "kwargs": [{}]}
            )
            assert 0.0 <= value <= 1.0


@pytest.mark.parametrize(
    "task",
    ["web_of_lies_v2", "zebra_puzzle", "spatial", "connections", "typos", "plot_unscrambling", "cta"]
    + ["tablejoin", "tablereformat"],
)
def test_livebench_rules_never_raise(task: str) -> None:
    for response in [*JUNK, "<solution>" * 20, "**" * 999, "<tr><td>" * 500]:
        for truth in ["", "a, b", "{'a': 'b'}", "x\ty\n1\t2", "[" * 3000]:
            assert 0.0 <= score("livebench", response, truth, {"task": task}) <= 1.0
