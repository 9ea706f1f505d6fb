"""Issue 24: rlpipe's scorers agree with their reference implementations on every committed case, or
the difference is a written decision (named in the scorer's docstring and the README's scorer table)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from parity.agreement import CASES, TOLERANCE, load_cases, rlpipe_score

from rlpipe.rewards import SCORERS, get_scorer

ROOT = Path(__file__).resolve().parents[2]
ALL = list(load_cases())
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_DECISION = re.compile(r"^[a-z0-9_]+\.[a-z0-9-]+$")


def test_every_family_has_its_case_file():
    """The families the issue names, each with enough cases to say something (>= 200)."""
    counts: dict[str, int] = {}
    for family, _ in ALL:
        counts[family] = counts.get(family, 0) + 1
    small = {f: n for f, n in counts.items() if n < 200}
    assert counts and not small, f"case files under {CASES} with fewer than 200 cases: {small}"


def test_cases_carry_their_provenance():
    ids: set[str] = set()
    for family, case in ALL:
        where = f"{family}.jsonl id {case.get('id')!r}"
        assert case["id"] not in ids, f"{where}: duplicate id"
        ids.add(case["id"])
        ref = case["reference"]
        assert "/" in ref["repo"] and _HEX40.match(ref["commit"]) and ":" in ref["function"], where
        assert case["kind"] in {"realistic", "adversarial", "collected"}, where
        assert 0.0 <= float(case["reference_score"]) <= 1.0, where
        assert case["scorer"] in SCORERS, where


def _decision_ids() -> set[str]:
    return {case["decision"] for _, case in ALL if case.get("decision")}


@pytest.mark.parametrize("decision", sorted(_decision_ids()))
def test_every_decision_is_written_down(decision):
    """A deliberate difference is named where a user reads it: the scorer's docstring and the README."""
    assert _DECISION.match(decision), f"decision id {decision!r} is not <scorer>.<short-name>"
    scorers = {case["scorer"] for _, case in ALL if case.get("decision") == decision}
    for name in scorers:
        fn = get_scorer(name)
        module_doc = __import__(fn.__module__, fromlist=["_"]).__doc__ or ""
        where = f"{decision} is not in scorer {name!r}'s docstrings"
        assert decision in (fn.__doc__ or "") + module_doc, where
    assert decision in (ROOT / "README.md").read_text(encoding="utf-8"), f"{decision} is not in README.md"


@pytest.mark.parametrize("family", sorted({family for family, _ in ALL}))
def test_rlpipe_agrees_with_the_reference(family):
    """Every case: the reference's score, or (with a decision) the score the decision promises."""
    wrong = []
    for fam, case in ALL:
        if fam != family:
            continue
        got = rlpipe_score(case)
        want = float(case["rlpipe_score"] if case.get("decision") else case["reference_score"])
        if abs(got - want) > TOLERANCE:
            wrong.append(f"{case['id']} ({case['scorer']}): rlpipe {got:.4g}, expected {want:.4g}")
    assert not wrong, f"{len(wrong)} {family} case(s) differ:\n" + "\n".join(wrong[:30])
