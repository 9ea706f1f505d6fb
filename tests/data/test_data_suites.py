"""Every task of every shipped data suite prepares offline from the fixtures, and its rows feed its scorer.

The fixtures (``tests/fixtures/hf``, written by ``tests/fixtures/build_fixtures.py``) mirror the hub
layout; ``RLPIPE_DATA_ROOT`` points every hub source of a suite at them. For each task, the first row's
ground truth is scored against a correct and a wrong response with the task's registered scorer, so a
normalisation that loses or mangles what a scorer needs fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlpipe.config import load_suite
from rlpipe.data.prepare import prepare_suite_task
from rlpipe.rewards import SCORERS, score
from rlpipe.tracking.io import read_jsonl

ROOT = Path(__file__).resolve().parents[2]
HF = ROOT / "tests" / "fixtures" / "hf"
SUITES = {"guru19": 19, "guru-online13": 13, "gsm8k": 1, "musique": 1}

# A correct response for the first row of each fixture, by scorer (the fixtures share problems).
ZEBRA = {"header": ["House", "Name", "Pet"], "rows": [["1", "Alice", "cat"], ["2", "Bob", "dog"]]}
CORRECT = {
    "math": "The remainder is \\boxed{1}.",
    "gsm8k": "12 - 2 = 10, so \\boxed{10}.",
    "code": "```python\ndef add(a, b):\n    return a + b\n```",
    "mc": "The answer is \\boxed{B}.",
    "arc_grid": "<answer>[[0, 1], [1, 0]]</answer>",
    "zebra": f"<answer>{json.dumps(ZEBRA)}</answer>",
    "ordering": '<answer>["Ann", "Ben", "Cid"]</answer>',
    "codeio": '\\boxed{{"output": 6}}',
    "cruxeval_i": "[ANSWER]3[/ANSWER]",
    "cruxeval_o": "[ANSWER]6[/ANSWER]",
    "tabular": "Growth was \\boxed{12.5}.",
    "ifeval_strict": "Rivers carry water from hills to the sea.",
    "musique_f1": "<answer>Freedonia</answer>",
}
LIVEBENCH = {"web_of_lies_v2": "**yes, no, yes**", "typos": "The quick brown fox.", "cta": "Price"}
CODE_BY_TASK = {  # the first row of each code fixture asks for a different function
    "mbpp": "```python\ndef square(x):\n    return x * x\n```",
    "livecodebench": "```python\na, b = map(int, input().split())\nprint(a + b)\n```",
}


def suite_tasks() -> list[tuple[str, str]]:
    return [(s, t) for s in SUITES for t in load_suite(s)["tasks"]]


@pytest.fixture(autouse=True)
def fixtures_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RLPIPE_DATA_ROOT", str(HF))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))  # nothing may come from a cache


@pytest.mark.parametrize(("name", "count"), SUITES.items())
def test_suite_loads_with_registered_scorers(name: str, count: int) -> None:
    suite = load_suite(name)
    assert len(suite["tasks"]) == count
    for task in suite["tasks"].values():
        assert task["scorer"] in SCORERS
        source = task["source"]
        assert source["type"] == "hf" and source["revision"] and source["data_root"] == str(HF)
        if name.startswith("guru"):
            assert task["generation"]["temperature"] == 1.0 and task["generation"]["top_p"] == 0.7


def test_guru19_matches_the_paper_table() -> None:
    tasks = load_suite("guru19")["tasks"]
    k = {name: t["samples"] for name, t in tasks.items()}
    assert k["aime24"] == 32 and tasks["aime24"]["source"]["dedupe"] is True
    assert {n for n, v in k.items() if v == 4} == {
        "humaneval", "livecodebench", "gpqa_diamond", "arcagi1", "zebra_puzzle", "codeio", "multihiertt",
    }  # fmt: skip
    assert tasks["arcagi1"]["generation"]["max_new_tokens"] == 16384
    assert tasks["math500"]["generation"]["max_new_tokens"] == 28672
    domains = {t["domain"] for t in tasks.values()}
    assert domains == {"math", "code", "science", "logic", "simulation", "tabular", "ood"}
    online = load_suite("guru-online13")["tasks"]
    assert all(t["samples"] == 1 for t in online.values())
    assert online["math500"]["source"]["subsample"] == 200


@pytest.mark.parametrize(("suite_name", "name"), suite_tasks())
def test_task_prepares_offline_and_scores(suite_name: str, name: str, tmp_path: Path) -> None:
    task = load_suite(suite_name)["tasks"][name]
    out = tmp_path / f"{name}.jsonl"
    prepare_suite_task(name, task, 0, str(out))
    rows = read_jsonl(out)
    assert rows and all(r["task"] == name and r["scorer"] == task["scorer"] for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    meta = json.loads(Path(f"{out}.meta.json").read_text())
    assert meta["repo_id"] == task["source"]["repo_id"] and len(meta["files"][0]["sha256"]) == 64

    first = rows[0]
    scorer = task["scorer"]
    if scorer == "livebench":
        correct = LIVEBENCH[first["extra_info"]["task"]]
    else:
        correct = CODE_BY_TASK.get(name, CORRECT[scorer])
    assert score(scorer, correct, first["ground_truth"], first["extra_info"]) == 1.0
    assert score(scorer, "I do not know, sorry.", first["ground_truth"], first["extra_info"]) < 1.0
