"""ARC grids, zebra cell accuracy and ordering puzzles, all with multi-line <answer> blocks."""

import numpy as np
import pytest

from rlpipe.rewards import score

GRID = [[1, 0, 2], [0, 3, 0]]


@pytest.mark.parametrize(
    "answer",
    [
        "[[1, 0, 2], [0, 3, 0]]",
        "[[1, 0, 2],\n [0, 3, 0]]",  # multi-line: the reference's regex lacked DOTALL
        "1 0 2\n0 3 0",
        "102\n030",
        "1,0,2\n0,3,0",
        "The output grid is [[1, 0, 2], [0, 3, 0]].",
    ],
)
def test_arc_positive(answer: str) -> None:
    assert score("arc_grid", f"Reasoning...\n<answer>\n{answer}\n</answer>\n", GRID) == 1.0


def test_arc_negative_and_numpy_truth() -> None:
    assert score("arc_grid", "<answer>[[1, 0, 2]]</answer>", GRID) == 0.0  # shape
    assert score("arc_grid", "<answer>[[1, 0, 2], [0, 3, 1]]</answer>", GRID) == 0.0
    assert score("arc_grid", "[[1, 0, 2], [0, 3, 0]]", GRID) == 0.0  # no tag
    assert score("arc_grid", "<think><answer>[[1,0,2],[0,3,0]]</answer>", GRID) == 0.0
    truth = np.array([np.array([1, 0, 2]), np.array([0, 3, 0])], dtype=object)
    assert score("arc_grid", "<answer>[[1,0,2],[0,3,0]]</answer>", truth) == 1.0
    assert score("arc_grid", "<answer>[[1,0,2],[0,3,0]]</answer> <answer>[[0]]</answer>", GRID) == 0.0
    assert score("arc_grid", "<answer>[[1,0,2],[0,3,0]]</answer>", "[[1 0 2]\n [0 3 0]]") == 1.0
    assert score("arc_grid", "<answer>grid: [[1, 0, 2], [0, 3]]</answer>", GRID) == 0.0


ZEBRA = {"header": ["House", "Name", "Pet"], "rows": [["1", "Alice", "cat"], ["2", "Bob", "dog"]]}


def test_zebra_fraction_of_cells() -> None:
    full = (
        '<answer>\n{"header": ["House", "Name", "Pet"],\n'
        ' "rows": [["1", "alice", "cat"], ["2", "Bob", "dog"]]}\n</answer>'
    )
    assert score("zebra", full, ZEBRA) == 1.0
    half = '<answer>{"rows": [["1", "Bob", "cat"], ["2", "Alice", "dog"]]}</answer>'
    assert score("zebra", half, ZEBRA) == pytest.approx(4 / 6)
    # A table shorter than the truth, or bare rows without the dict, scores 0 as in GURU's reference
    # (this test used to expect partial credit 3/6 for the short bare-rows answer).
    short = '<answer>{"rows": [["1", "Alice", "cat"]]}</answer>'
    assert score("zebra", short, ZEBRA) == 0.0
    assert score("zebra", '<answer>[["1", "Alice", "cat"], ["2", "Bob", "dog"]]</answer>', ZEBRA) == 0.0
    narrow = '<answer>{"rows": [["1", "Alice"], ["2", "Bob", "dog"]]}</answer>'
    assert score("zebra", narrow, ZEBRA) == 0.0
    longer = (
        '<answer>{"rows": [["1", "Alice", "cat", "x"], ["2", "Bob", "dog"], ["3", "Eve", "rat"]]}</answer>'
    )
    assert score("zebra", longer, ZEBRA) == 1.0
    numbered = '<answer>{"rows": [[1, " ALICE ", "cat"], [2, "Bob", "dog"]]}</answer>'
    assert score("zebra", numbered, ZEBRA) == 1.0  # zebra.cell-normalisation
    assert score("zebra", f"<think>{full}</think>", ZEBRA) == 0.0  # answer only in the reasoning
    assert score("zebra", "<answer>not a table</answer>", ZEBRA) == 0.0
    assert score("zebra", "no answer", ZEBRA) == 0.0


def test_ordering() -> None:
    truth = ["Tom", "Ann", "Lee"]
    assert score("ordering", '<answer>\n["Tom", "Ann", "Lee"]\n</answer>', truth) == 1.0
    assert score("ordering", "<answer>\n1. tom\n2. Ann\n3. Lee\n</answer>", truth) == 1.0
    assert score("ordering", "<answer>Tom, Ann, Lee</answer>", np.array(truth)) == 1.0
    assert score("ordering", "<answer>Ann, Tom, Lee</answer>", truth) == 0.0
    assert score("ordering", "<answer>Tom, Ann</answer>", truth) == 0.0
    assert score("ordering", "<answer>Tom, Ann, Lee, Max</answer>", truth) == 0.0


def test_ordering_list_in_prose_and_hedges() -> None:
    truth = ["Tom", "Ann", "Lee"]
    assert score("ordering", "<answer>The order is ['tom', 'ann', 'lee'].</answer>", truth) == 1.0
    assert score("ordering", "<answer>[Tom, Ann, Lee]</answer>", truth) == 1.0
    assert score("ordering", "<answer>[Tom, Ann, Lee] or [Ann, Tom, Lee]</answer>", truth) == 0.0
    assert score("ordering", "<answer>['Tom', 'Ann'], ['Lee']</answer>", truth) == 0.0
    assert score("ordering", "<answer>['Tom', 'Ann', 'Lee', ...]</answer>", truth) == 0.0


def test_arc_hedge_and_pretty_printed() -> None:
    assert score("arc_grid", "<answer>[[1, 0, 2], [0, 3, 0]] or [[0]]</answer>", GRID) == 0.0
    pretty = "<answer>\n[\n  [1, 0, 2],\n  [0, 3, 0]\n]\n</answer>"
    assert score("arc_grid", pretty, GRID) == 1.0
    assert score("arc_grid", "I don't know.", [[0]]) == 0.0
