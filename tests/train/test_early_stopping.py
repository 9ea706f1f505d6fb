"""EarlyStopping: min_delta, patience in evaluations, min_steps, nan, resume round trip."""

from __future__ import annotations

import json

import pytest

from rlpipe.train.early_stopping import Decision, EarlyStopping

# Values are binary fractions (0.125 steps) so "best + min_delta" is exact in floating point.


def test_max_mode_min_delta_and_patience():
    es = EarlyStopping("eval/accuracy", mode="max", patience=2, min_delta=0.125)
    # first value is always the best
    assert es.update(10, 1.0) == Decision(False, 10, 1.0, 0, improved=True)
    # 1.125 is not > 1.0 + 0.125: a gain of exactly min_delta is not an improvement
    assert es.update(20, 1.125) == Decision(False, 10, 1.0, 1)
    # 1.25 > 1.125: improvement, counter reset
    assert es.update(30, 1.25) == Decision(False, 30, 1.25, 0, improved=True)
    assert es.update(40, 1.0) == Decision(False, 30, 1.25, 1)
    # second bad evaluation in a row (equal to the best is not better): patience 2 reached
    assert es.update(50, 1.25) == Decision(True, 30, 1.25, 2)


def test_min_mode():
    es = EarlyStopping("eval/loss", mode="min", patience=1, min_delta=0.0)
    assert es.update(1, 2.0).improved
    d = es.update(2, 1.5)  # 1.5 < 2.0
    assert d == Decision(False, 2, 1.5, 0, improved=True)
    d = es.update(3, 1.75)  # worse for a loss
    assert d == Decision(True, 2, 1.5, 1)


def test_min_delta_in_min_mode_is_a_required_drop():
    es = EarlyStopping("eval/loss", mode="min", patience=5, min_delta=0.25)
    es.update(1, 2.0)
    assert es.update(2, 1.75).bad_evals == 1  # 1.75 is not < 2.0 - 0.25
    d = es.update(3, 1.625)  # 1.625 < 1.75
    assert d.improved and d.best_value == 1.625 and d.best_step == 3


def test_never_stops_before_min_steps_but_counts_bad_evals():
    es = EarlyStopping("m", mode="max", patience=1, min_steps=100)
    es.update(10, 1.0)
    assert es.update(20, 0.5) == Decision(False, 10, 1.0, 1)  # patience exhausted, step < 100
    assert es.update(50, 0.5) == Decision(False, 10, 1.0, 2)
    assert es.update(100, 0.5) == Decision(True, 10, 1.0, 3)  # first eval at step >= 100 stops


def test_improvement_after_min_steps_does_not_stop():
    es = EarlyStopping("m", mode="max", patience=1, min_steps=100)
    es.update(10, 1.0)
    es.update(50, 0.5)
    assert es.update(100, 2.0) == Decision(False, 100, 2.0, 0, improved=True)


def test_nan_is_never_best():
    es = EarlyStopping("m", mode="max", patience=3)
    assert es.update(1, float("nan")) == Decision(False, None, None, 1)
    assert es.update(2, 0.5) == Decision(False, 2, 0.5, 0, improved=True)
    assert es.update(3, float("inf")).bad_evals == 1  # a diverged metric is not progress either


def test_replayed_step_is_not_counted_twice_and_steps_cannot_go_back():
    es = EarlyStopping("m", mode="max", patience=2)
    es.update(10, 1.0)
    first = es.update(20, 0.5)
    assert es.update(20, 0.5) == first  # e.g. a resumed run re-evaluating its checkpoint
    assert es.bad_evals == 1
    with pytest.raises(ValueError):
        es.update(15, 2.0)


def test_state_round_trip_matches_uninterrupted_run():
    stream = [(10, 1.0), (20, 0.875), (30, 1.5), (40, 1.25), (50, 1.375), (60, 1.5), (70, 1.0)]

    def fresh() -> EarlyStopping:
        return EarlyStopping("eval/acc", mode="max", patience=3, min_delta=0.0625, min_steps=20)

    straight = fresh()
    expected = [straight.update(s, v) for s, v in stream]
    # hand check: best 1.5 @ 30; 1.25, 1.375 and 1.5 (not > 1.5625) are bad -> stop at step 60
    assert [d.stop for d in expected] == [False, False, False, False, False, True, True]
    assert expected[-1] == Decision(True, 30, 1.5, 4)

    first = fresh()
    got = [first.update(s, v) for s, v in stream[:4]]
    saved = json.loads(json.dumps(first.state_dict()))  # must survive JSON, as in a checkpoint
    resumed = fresh()
    resumed.load_state_dict(saved)
    assert resumed.update(*stream[3]) == expected[3]  # replay of the last step: unchanged
    got += [resumed.update(s, v) for s, v in stream[4:]]
    assert got == expected


def test_load_state_dict_rejects_another_metric_or_mode():
    state = EarlyStopping("eval/acc", mode="max", patience=2).state_dict()
    with pytest.raises(ValueError):
        EarlyStopping("eval/loss", mode="max", patience=2).load_state_dict(state)
    with pytest.raises(ValueError):
        EarlyStopping("eval/acc", mode="min", patience=2).load_state_dict(state)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "maximum"},
        {"patience": 0},
        {"min_delta": -0.1},
        {"min_delta": float("nan")},
        {"min_steps": -1},
    ],
)
def test_invalid_configuration(kwargs):
    with pytest.raises(ValueError):
        EarlyStopping("m", **kwargs)
