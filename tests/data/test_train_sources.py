"""Training data from real datasets (``data.sources``): loading, the hash-carved validation split, the
reward of source rows, offline behaviour and the config checks.

The rows come from the offline fixtures (``tests/fixtures/hf``, the hub layout in each source's real
schema) through the same loader the evaluation suites use.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from rlpipe.config import ConfigError, load_experiment
from rlpipe.data.prepare import prepare_train_data
from rlpipe.data.sources import SourceError, content_key, load_training_rows, split_validation
from rlpipe.rewards import score
from rlpipe.tracking.io import read_jsonl
from rlpipe.train.grpo import make_reward_fn, reward_dataset

ROOT = Path(__file__).resolve().parents[2]
HF = ROOT / "tests" / "fixtures" / "hf"
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
GSM8K_SHA = "e53f048856ff4f594e959d75785d2c2d37b678ee"
GSM8K_TRAIN = "main/train-00000-of-00001.parquet"
ZEBRA = {"header": ["House", "Name", "Pet"], "rows": [["1", "Alice", "cat"], ["2", "Bob", "dog"]]}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Offline against an empty private HF cache; tests that need the fixtures set RLPIPE_DATA_ROOT."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("RLPIPE_DATA_ROOT", raising=False)


def guru(file: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "hf", "repo_id": "LLM360/guru-RL-92k", "revision": "main", "allow_unpinned": True,
        "format": "guru", "data_files": f"train/{file}", **extra,
    }  # fmt: skip


def gsm8k(**extra: Any) -> dict[str, Any]:
    return {
        "type": "hf", "repo_id": "openai/gsm8k", "revision": GSM8K_SHA, "data_files": GSM8K_TRAIN,
        "format": "gsm8k", **extra,
    }  # fmt: skip


SOURCES = {
    "math": {"domain": "math", "scorer": "math", "source": guru("math__combined_54.4k.parquet")},
    "zebra_train": {"domain": "logic", "scorer": "zebra", "source": guru("logic__zebra_puzzle_1.3k.parquet")},
    "leetcode": {"domain": "code", "scorer": "code", "source": guru("codegen__leetcode2k_1.3k.parquet")},
    "gsm8k_train": {"domain": "math", "scorer": "gsm8k", "source": gsm8k(), "validation": 2},
}


def experiment(
    sources: dict[str, Any], tasks: dict[str, int] | None = None, **changes: Any
) -> dict[str, Any]:
    config = copy.deepcopy(DEFAULT)
    config["data"] = {"validation_per_task": 1, "sources": copy.deepcopy(sources)}
    # PCGrad needs several domains; these tests are about the data, often of one domain.
    config["runs"] = [run for run in config["runs"] if not run.get("pcgrad")]
    if tasks:
        config["data"]["tasks"] = tasks
    config.update(changes)
    return config


def test_mixed_training_data_keeps_labels_and_never_overlaps(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RLPIPE_DATA_ROOT", str(HF))
    exp = load_experiment(experiment(SOURCES, tasks={"addition": 20}), ["x.yaml"])
    assert exp.train_sources["math"]["validation"] == 1  # validation_per_task
    assert exp.train_sources["gsm8k_train"]["validation"] == 2
    assert exp.train_sources["math"]["source"]["data_root"] == str(HF)
    train_out, val_out = tmp_path / "train.jsonl", tmp_path / "validation.jsonl"
    prepare_train_data({"addition": 20}, 1, 0, str(train_out), str(val_out), train_sources=exp.train_sources)
    train, validation = read_jsonl(train_out), read_jsonl(val_out)

    by_task = {t: [r for r in train if r["task"] == t] for t in ("addition", *SOURCES)}
    # fixture sizes: math 3, zebra 2, leetcode 2, gsm8k 4 rows; 1 (gsm8k: 2) held out each
    assert {t: len(rows) for t, rows in by_task.items()} == {
        "addition": 20, "math": 2, "zebra_train": 1, "leetcode": 1, "gsm8k_train": 2,
    }  # fmt: skip
    assert sorted(r["task"] for r in validation if r["task"] != "addition") == [
        "gsm8k_train", "gsm8k_train", "leetcode", "math", "zebra_train",
    ]  # fmt: skip
    for row in train + validation:
        spec = SOURCES.get(row["task"])
        if spec:
            assert (row["domain"], row["scorer"]) == (spec["domain"], spec["scorer"])
            assert row["id"].startswith(f"{row['task']}/")
    assert {r["extra_info"]["split"] for r in train} == {"train"}
    assert {r["extra_info"]["split"] for r in validation} == {"validation"}
    assert not {content_key(r) for r in train} & {content_key(r) for r in validation}
    assert len({r["id"] for r in train + validation}) == len(train + validation)
    # GURU code rows keep what the scorer needs beside the ground truth
    assert by_task["leetcode"][0]["extra_info"]["prefix"].startswith("def ")

    meta = json.loads(Path(f"{train_out}.meta.json").read_text())
    assert set(meta) == set(SOURCES)
    assert meta["gsm8k_train"]["repo_id"] == "openai/gsm8k" and meta["gsm8k_train"]["validation_rows"] == 2
    assert len(meta["math"]["files"][0]["sha256"]) == 64

    # Deterministic: the same files give the same splits.
    prepare_train_data({"addition": 20}, 1, 0, str(train_out), str(tmp_path / "v2.jsonl"), exp.train_sources)
    assert read_jsonl(train_out) == train and read_jsonl(tmp_path / "v2.jsonl") == validation


def test_validation_split_ignores_row_order_and_subsample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLPIPE_DATA_ROOT", str(HF))
    spec = load_experiment(experiment({"g": SOURCES["gsm8k_train"]}), ["x.yaml"]).train_sources["g"]
    train, validation, meta = load_training_rows("g", spec)
    assert (len(train), len(validation)) == (2, 2)
    small = {**spec, "source": {**spec["source"], "subsample": 1}}
    train_1, validation_1, meta_1 = load_training_rows("g", small)
    assert validation_1 == validation and len(train_1) == 1 and train_1[0] in train
    assert (meta_1["rows"], meta_1["train_rows_before_subsample"], meta_1["subsample"]) == (1, 2, 1)

    # The split is a function of content, not position: reversed rows split the same way.
    rows = train + validation
    t_a, v_a = split_validation("g", rows, 2)
    t_b, v_b = split_validation("g", rows[::-1], 2)
    assert sorted(map(content_key, v_a)) == sorted(map(content_key, v_b))
    # Repeats of one problem never straddle the split.
    t_c, v_c = split_validation("g", rows + rows, 2)
    assert len(v_c) == 4 and not {content_key(r) for r in t_c} & {content_key(r) for r in v_c}
    with pytest.raises(SourceError, match=r"^training data g: 4 distinct problems, so validation: 4"):
        split_validation("g", rows, 4)


def test_source_rows_are_rewarded_by_their_own_scorer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """GRPO's reward function scores mixed source rows (string, dict, JSON-test ground truths; code
    prefixes in extra_info) exactly as evaluation does: a correct answer earns 1, a wrong one less."""
    monkeypatch.setenv("RLPIPE_DATA_ROOT", str(HF))
    exp = load_experiment(experiment(SOURCES), ["x.yaml"])
    rows = []
    for name, spec in exp.train_sources.items():
        train, validation, _ = load_training_rows(name, {**spec, "validation": 0})
        rows.append(
            next(r for r in train if r["extra_info"]["index"] == 0) if name != "gsm8k_train" else train[0]
        )
    correct = {
        "math": "The remainder is \\boxed{1}.",
        "zebra_train": f"<answer>{json.dumps(ZEBRA)}</answer>",
        # only the body: the scorer prepends the signature from extra_info["prefix"], so this scores 1
        # only if extra_info reaches the scorer through the dataset
        "leetcode": "```python\n    return a + b\n```",
        "gsm8k_train": "12 * 7 = 84, so \\boxed{84}.",
    }
    dataset = reward_dataset(rows)
    assert set(dataset.column_names) == {"prompt", "scorer", "domain", "task", "reward_input"}
    logged: dict[str, float] = {}
    reward = make_reward_fn()
    columns = {k: dataset[k] for k in ("scorer", "domain", "reward_input", "task")}
    good = reward(
        prompts=dataset["prompt"],
        completions=[[{"role": "assistant", "content": correct[r["task"]]}] for r in rows],
        log_metric=logged.__setitem__,
        **columns,
    )
    assert good == [1.0] * len(rows)
    assert logged == {"reward/code": 1.0, "reward/logic": 1.0, "reward/math": 1.0}
    bad = reward(
        prompts=dataset["prompt"],
        completions=[[{"role": "assistant", "content": "I am not sure."}] for _ in rows],
        **columns,
    )
    assert all(b < 1.0 for b in bad)
    # the same numbers as the scorer called directly with ground truth and extra_info
    assert good == [score(r["scorer"], correct[r["task"]], r["ground_truth"], r["extra_info"]) for r in rows]
    leetcode = next(r for r in rows if r["task"] == "leetcode")
    assert score("code", correct["leetcode"], leetcode["ground_truth"], None) == 0.0


def test_missing_hub_data_fails_at_parse_naming_the_dataset_and_the_fetch_command(tmp_path: Path) -> None:
    config = experiment({"gsm8k_train": SOURCES["gsm8k_train"]})
    with pytest.raises(ConfigError) as info:
        load_experiment(config, ["exp.yaml"])
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"exp.yaml: data.sources.gsm8k_train.source: dataset openai/gsm8k@{GSM8K_SHA}")
    assert f"hf download openai/gsm8k {GSM8K_TRAIN} --repo-type dataset --revision {GSM8K_SHA}" in message
    assert "HF_HUB_OFFLINE=1" in message


def test_cached_hub_data_is_used_offline(tmp_path: Path) -> None:
    """A file in the HF cache (huggingface_hub's layout) passes the parse-time check and is read."""
    repo = tmp_path / "hf_home" / "hub" / "datasets--openai--gsm8k"
    snapshot = repo / "snapshots" / GSM8K_SHA / GSM8K_TRAIN
    snapshot.parent.mkdir(parents=True)
    shutil.copy(HF / "openai" / "gsm8k" / GSM8K_TRAIN, snapshot)
    exp = load_experiment(experiment({"gsm8k_train": SOURCES["gsm8k_train"]}), ["x.yaml"])
    assert "data_root" not in exp.train_sources["gsm8k_train"]["source"]
    train_out = tmp_path / "train.jsonl"
    prepare_train_data({}, 1, 0, str(train_out), str(tmp_path / "val.jsonl"), exp.train_sources)
    assert sorted(r["ground_truth"] for r in read_jsonl(train_out) + read_jsonl(tmp_path / "val.jsonl")) == [
        "3000", "32", "60", "84",
    ]  # fmt: skip
    meta = json.loads(Path(f"{train_out}.meta.json").read_text())["gsm8k_train"]
    assert meta["commit"] == GSM8K_SHA and meta["files"][0]["path"] == str(snapshot)


def test_training_source_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLPIPE_DATA_ROOT", str(HF))
    bad = {"m": {**SOURCES["math"], "scorer": "nope"}}
    with pytest.raises(ConfigError, match=r"^x.yaml: data.sources.m.scorer: unknown scorer 'nope'"):
        load_experiment(experiment(bad), ["x.yaml"])
    with pytest.raises(ConfigError, match=r"data.sources.addition: 'addition' is also a procedural task"):
        load_experiment(experiment({"addition": SOURCES["math"]}, tasks={"addition": 5}), ["x.yaml"])
    unpinned = {
        "m": {**SOURCES["math"], "source": {**guru("math__combined_54.4k.parquet"), "allow_unpinned": False}}
    }
    with pytest.raises(
        ConfigError, match=r"data.sources.m.source: hub dataset 'LLM360/guru-RL-92k': revision"
    ):
        load_experiment(experiment(unpinned), ["x.yaml"])
    missing = {"m": {**SOURCES["math"], "source": guru("math__nothing_1k.parquet")}}
    with pytest.raises(
        ConfigError, match=r"data.sources.m.source: data root .*math__nothing_1k.parquet does not"
    ):
        load_experiment(experiment(missing), ["x.yaml"])
    with pytest.raises(ConfigError, match=r"data.sources.m: unknown key\(s\): 'n'"):
        load_experiment(experiment({"m": {**SOURCES["math"], "n": 5}}), ["x.yaml"])
    config = experiment({})
    config["data"] = {"validation_per_task": 5}
    with pytest.raises(
        ConfigError, match=r"^x.yaml: data: no training data; give data.tasks .* and/or data.sources"
    ):
        load_experiment(config, ["x.yaml"])


def test_pcgrad_counts_the_domains_of_training_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLPIPE_DATA_ROOT", str(HF))
    runs = [{"name": "pc", "pcgrad": True}]
    one_domain = {"math": SOURCES["math"], "gsm8k_train": SOURCES["gsm8k_train"]}
    with pytest.raises(ConfigError, match=r"run pc: pcgrad: true needs .* two domains .*\['math'\]"):
        load_experiment(experiment(one_domain, runs=runs, baseline="pc"), ["x.yaml"])
    exp = load_experiment(experiment(SOURCES, runs=runs, baseline="pc"), ["x.yaml"])
    assert exp.runs["pc"]["pcgrad"] is True
