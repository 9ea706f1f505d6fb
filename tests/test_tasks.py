"""Procedural tasks: deterministic, correct, and splits that never overlap."""

import pytest

from rlpipe.data.tasks import SPLITS, TASKS, generate, split_of
from rlpipe.rewards import score


@pytest.mark.parametrize("task", sorted(TASKS))
def test_splits_are_disjoint_and_cover_the_pool(task):
    keys = {split: set() for split in SPLITS}
    for problem in TASKS[task].pool():
        keys[split_of(task, problem.key)].add(problem.key)
    assert not keys["train"] & keys["test"]
    assert not keys["train"] & keys["validation"]
    assert not keys["validation"] & keys["test"]
    total = sum(len(v) for v in keys.values())
    # roughly 80/10/10
    assert 0.75 < len(keys["train"]) / total < 0.85
    assert 0.07 < len(keys["test"]) / total < 0.13


@pytest.mark.parametrize("task", sorted(TASKS))
def test_generation_is_deterministic_and_seed_dependent(task):
    a = generate(task, "test", 50, seed=1)
    assert a == generate(task, "test", 50, seed=1)
    assert [r["ground_truth"] for r in a] != [r["ground_truth"] for r in generate(task, "test", 50, seed=2)]


@pytest.mark.parametrize("task", sorted(TASKS))
def test_rows_follow_the_schema_and_reference_answers_score_one(task):
    rows = generate(task, "train", 30, seed=0)
    for row in rows:
        assert set(row) >= {"id", "domain", "task", "prompt", "ground_truth", "scorer", "extra_info"}
        assert row["prompt"][0]["role"] == "user"
        assert split_of(task, row["extra_info"]["key"]) == "train"
        assert score(row["scorer"], row["solution"], row["ground_truth"]) == 1.0
        assert score(row["scorer"], row["solution"] + "0", row["ground_truth"]) == 0.0


def test_answers_are_computed_correctly():
    by_key = {p.key: p for p in TASKS["addition"].pool()}
    assert by_key["47+5"].answer == "52"
    sort = {p.key: p for p in TASKS["sorting"].pool()}
    assert sort["5281"].answer == "1258"
    prog = {p.key: p for p in TASKS["program"].pool()}
    assert prog["x=1;x-=9;x+=3"].answer == "-5"
    assert prog["x=2;x*=3;x+=4"].answer == "10"
    add_digit = {p.key: p for p in TASKS["add_digit"].pool()}
    assert add_digit["999+7"].answer == "1006" and add_digit["47+5"].prompt == "47+5="
    counter = {p.key: p for p in TASKS["counter"].pool()}
    assert counter["x=1;x-=9;x+=3"].answer == "-5"
    assert not any("*=" in key for key in counter)  # additions and subtractions only


def test_bad_requests_name_the_problem():
    with pytest.raises(KeyError, match="unknown procedural task 'nope'"):
        generate("nope", "test", 1, 0)
    with pytest.raises(ValueError, match="unknown split"):
        generate("addition", "dev", 1, 0)
    with pytest.raises(ValueError, match="has .* problems; 100000 were asked for"):
        generate("addition", "test", 100_000, 0)
