"""Suite data sources: normalisation of every source type and row layout, pins, offline behaviour."""

from __future__ import annotations

import base64
import json
import shutil
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from rlpipe.config import ConfigError, load_suite
from rlpipe.data.prepare import prepare_suite_task
from rlpipe.data.sources import SourceError, load_rows, sha256_file
from rlpipe.tracking.io import read_jsonl

ROOT = Path(__file__).resolve().parents[2]
HF = ROOT / "tests" / "fixtures" / "hf"
GURU = HF / "LLM360" / "guru-RL-92k"
OFFLINE = GURU / "offline_eval"
GSM8K_FILE = HF / "openai" / "gsm8k" / "main" / "test-00000-of-00001.parquet"
MUSIQUE_FILE = HF / "dgslibisey" / "MuSiQue" / "musique_ans_v1.0_dev.jsonl"
GSM8K_SHA = "e53f048856ff4f594e959d75785d2c2d37b678ee"
ROW_KEYS = {"id", "domain", "task", "prompt", "ground_truth", "scorer", "extra_info"}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test runs offline against an empty private HF cache, unless it fills one itself."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("RLPIPE_DATA_ROOT", raising=False)


def task(source: dict[str, Any], scorer: str = "math", domain: str = "math") -> dict[str, Any]:
    return {"source": source, "scorer": scorer, "domain": domain}


def local(path: Path, **extra: Any) -> dict[str, Any]:
    kind = "parquet" if path.suffix == ".parquet" else "jsonl"
    return {"type": kind, "path": str(path), **extra}


def check_schema(rows: list[dict[str, Any]], name: str) -> None:
    for row in rows:
        assert set(row) >= ROW_KEYS, row
        assert row["task"] == name and row["id"].startswith(f"{name}/")
        assert isinstance(row["prompt"], list) and row["prompt"]
        assert all(set(m) == {"role", "content"} and isinstance(m["content"], str) for m in row["prompt"])
        assert isinstance(row["extra_info"], dict)
        json.dumps(row)  # plain JSON types only (no numpy)
    assert len({r["id"] for r in rows}) == len(rows)


# ---- GURU parquet rows --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "scorer", "truth_type"),
    [
        ("math__math_500.parquet", "math", str),
        ("codegen__humaneval_164.parquet", "code", str),
        ("logic__arcagi1_400.parquet", "arc_grid", list),
        ("logic__zebra_puzzle_dataset_200.parquet", "zebra", dict),
        ("ood__ifeval_541.parquet", "ifeval_strict", list),
        ("ood__livebench_reasoning_150.parquet", "livebench", str),
    ],
)
def test_guru_rows_normalised(file: str, scorer: str, truth_type: type) -> None:
    rows, meta = load_rows("t", task(local(OFFLINE / file), scorer=scorer, domain="d"))
    check_schema(rows, "t")
    assert meta["format"] == "guru"  # detected from the columns
    source_column = pq.read_table(OFFLINE / file).column("data_source").to_pylist()
    for row in rows:
        assert isinstance(row["ground_truth"], truth_type)
        assert row["scorer"] == scorer and row["domain"] == "d"
        info = row["extra_info"]
        assert info["data_source"] == source_column[0] and info["data_source"].startswith(file.split("__")[0])
        assert None not in info.values()  # parquet's null-filled struct keys are dropped
    if scorer == "code":
        assert "functional" in json.loads(rows[0]["ground_truth"])  # JSON string kept as text
        assert rows[0]["extra_info"]["prefix"].startswith("def add")
    if scorer == "ifeval_strict":
        assert rows[1]["extra_info"]["instruction_id_list"] == [
            "length_constraints:number_words",
            "change_case:english_lowercase",
        ]


def _stringified(path: Path, out: Path, compress: bool) -> Path:
    """The 'JSON string' GURU variant of a fixture file: reward_model / extra_info stored as text."""

    def encode(value: Any) -> str:
        text = json.dumps(value)
        return base64.b64encode(zlib.compress(text.encode())).decode() if compress else text

    records = pq.read_table(path).to_pylist()
    for record in records:
        record["reward_model"] = encode(record["reward_model"])
        record["extra_info"] = encode({k: v for k, v in record["extra_info"].items() if v is not None})
    pq.write_table(pa.Table.from_pylist(records), out)
    return out


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    "file",
    ["logic__zebra_puzzle_dataset_200.parquet", "logic__arcagi1_400.parquet", "ood__ifeval_541.parquet"],
)
def test_guru_json_string_variant_gives_the_same_rows(tmp_path: Path, file: str, compress: bool) -> None:
    variant = _stringified(OFFLINE / file, tmp_path / file, compress)
    assert pq.read_table(variant).schema.field("reward_model").type == pa.string()
    expected, _ = load_rows("t", task(local(OFFLINE / file)))
    got, _ = load_rows("t", task(local(variant)))
    assert got == expected


def test_bad_guru_row_names_file_and_row(tmp_path: Path) -> None:
    records = pq.read_table(OFFLINE / "math__math_500.parquet").to_pylist()
    records[2]["reward_model"] = {"style": "rule", "ground_truth": ""}
    bad = tmp_path / "math__bad_3.parquet"
    pq.write_table(pa.Table.from_pylist(records), bad)
    with pytest.raises(SourceError, match=rf"^{bad}: row 2: reward_model.ground_truth is empty$"):
        load_rows("t", task(local(bad)))
    records[2]["reward_model"] = None
    records[1]["prompt"] = []
    pq.write_table(pa.Table.from_pylist(records), bad)
    with pytest.raises(SourceError, match=rf"^{bad}: row 1: prompt: expected a non-empty list"):
        load_rows("t", task(local(bad)))


def test_malformed_jsonl_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"question": "q", "answer": "#### 1"}\n{"question": \n')
    with pytest.raises(SourceError, match=rf"^{path}: line 2: malformed JSON"):
        load_rows("t", task(local(path)))


# ---- GSM8K and MuSiQue ----------------------------------------------------------------------------


def test_gsm8k_rows() -> None:
    rows, meta = load_rows("gsm8k", task(local(GSM8K_FILE), scorer="gsm8k"))
    check_schema(rows, "gsm8k")
    assert meta["format"] == "gsm8k"
    assert [r["ground_truth"] for r in rows] == ["10", "2400", "4.5"]  # '#### 2,400' loses its comma
    assert rows[0]["prompt"][0]["content"].startswith("Tom has 3 boxes")
    assert "\\boxed{}" in rows[0]["prompt"][0]["content"]
    assert rows[0]["solution"].endswith("#### 10")


def test_gsm8k_answer_without_final_line_fails(tmp_path: Path) -> None:
    path = tmp_path / "g.parquet"
    pq.write_table(pa.Table.from_pylist([{"question": "q", "answer": "no final line"}]), path)
    with pytest.raises(SourceError, match=rf"^{path}: row 0: answer: no final '#### N' line"):
        load_rows("g", task(local(path, format="gsm8k"), scorer="gsm8k"))


def test_musique_keeps_answerable_rows_with_paragraphs_in_the_prompt() -> None:
    rows, meta = load_rows("musique", task(local(MUSIQUE_FILE), scorer="musique_f1", domain="qa"))
    check_schema(rows, "musique")
    assert meta["format"] == "musique" and meta["rows_in_source"] == 3 and meta["rows_skipped"] == 1
    assert [r["id"] for r in rows] == ["musique/0", "musique/1"]
    first = rows[0]
    assert first["ground_truth"] == ["Freedonia", "Republic of Freedonia"]
    content = first["prompt"][0]["content"]
    for title in ("Arlen", "Bexley", "Corwin"):
        assert "Paragraph" in content and title in content
    assert "Question: In which country" in content and "<answer>" in content
    assert first["extra_info"]["supporting_paragraphs"] == [1, 3]
    assert first["extra_info"]["source_id"] == "2hop__1_2"


def test_musique_answerable_row_without_answer_fails(tmp_path: Path) -> None:
    record = json.loads(MUSIQUE_FILE.read_text().splitlines()[0])
    record["answer"] = ""
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(SourceError, match=rf"^{path}: row 0: answer: missing or empty"):
        load_rows("m", task(local(path, format="musique"), scorer="musique_em"))


def test_rlpipe_format_jsonl_passthrough(tmp_path: Path) -> None:
    path = tmp_path / "own.jsonl"
    path.write_text(
        json.dumps({"prompt": "2+2=", "ground_truth": "4"})
        + "\n"
        + json.dumps(
            {"prompt": [{"role": "user", "content": "3+3="}], "ground_truth": "6", "extra_info": {"k": 1}}
        )
        + "\n"
    )
    rows, meta = load_rows("own", task(local(path), scorer="integer"))
    check_schema(rows, "own")
    assert meta["format"] == "rlpipe" and meta["type"] == "jsonl"
    assert rows[0]["prompt"] == [{"role": "user", "content": "2+2="}]
    assert rows[1]["extra_info"] == {"k": 1}
    assert meta["files"][0]["sha256"] == sha256_file(path)


# ---- dedupe, subsample, sidecar -------------------------------------------------------------------


def test_dedupe_and_subsample_are_deterministic_and_seed_independent(tmp_path: Path) -> None:
    aime = OFFLINE / "math__aime_repeated_8x_240.parquet"
    rows, meta = load_rows("aime", task(local(aime, dedupe=True)))
    assert meta["rows_in_source"] == 16 and len(rows) == 2
    assert [r["id"] for r in rows] == ["aime/0", "aime/1"]  # the first copy of each problem

    src = local(aime, subsample=5, subsample_seed=3)
    outs = []
    for seed in (0, 7):  # the experiment seed must not change a benchmark subset
        out = tmp_path / f"s{seed}.jsonl"
        prepare_suite_task("aime", task(src), seed, str(out))
        outs.append(read_jsonl(out))
    assert outs[0] == outs[1] and len(outs[0]) == 5
    ids = [int(r["id"].split("/")[1]) for r in outs[0]]
    assert ids == sorted(ids)  # source order kept
    other, _ = load_rows("aime", task(local(aime, subsample=5, subsample_seed=4)))
    assert [r["id"] for r in other] != [r["id"] for r in outs[0]]


def test_prepare_writes_rows_and_sidecar_atomically(tmp_path: Path) -> None:
    out = tmp_path / "suite" / "math500.jsonl"
    prepare_suite_task("math500", task(local(OFFLINE / "math__math_500.parquet")), 0, str(out))
    meta = json.loads(Path(f"{out}.meta.json").read_text())
    assert meta["type"] == "parquet" and meta["rows"] == 3 == len(read_jsonl(out))
    assert meta["files"][0]["sha256"] == sha256_file(OFFLINE / "math__math_500.parquet")
    assert sorted(p.name for p in out.parent.iterdir()) == ["math500.jsonl", "math500.jsonl.meta.json"]


def test_procedural_source_still_works_without_sidecar(tmp_path: Path) -> None:
    out = tmp_path / "addition.jsonl"
    spec = {"type": "procedural", "task": "addition", "split": "test", "n": 5}
    prepare_suite_task("addition", task(spec, scorer="integer"), 0, str(out))
    rows = read_jsonl(out)
    assert len(rows) == 5 and rows[0]["id"].startswith("addition/")
    assert not Path(f"{out}.meta.json").exists()


# ---- hub sources: pins, cache, offline -------------------------------------------------------------


def hub_source(**extra: Any) -> dict[str, Any]:
    return {
        "type": "hf",
        "repo_id": "openai/gsm8k",
        "revision": GSM8K_SHA,
        "data_files": "main/test-00000-of-00001.parquet",
        "format": "gsm8k",
        **extra,
    }


def write_suite(tmp_path: Path, source: dict[str, Any]) -> Path:
    path = tmp_path / "suite.yaml"
    suite = {"name": "s", "tasks": {"gsm8k": {"domain": "math", "scorer": "gsm8k", "source": source}}}
    path.write_text(yaml.safe_dump(suite))
    return path


def test_hub_source_needs_a_pinned_revision(tmp_path: Path) -> None:
    source = hub_source()
    del source["revision"]
    with pytest.raises(
        ConfigError, match=r"suite.yaml: tasks.gsm8k.source: 'revision' is a required property"
    ):
        load_suite(str(write_suite(tmp_path, source)))
    with pytest.raises(ConfigError, match=r"tasks.gsm8k.source: .*revision 'main' is a branch and moves"):
        load_suite(str(write_suite(tmp_path, hub_source(revision="main"))))
    assert load_suite(str(write_suite(tmp_path, hub_source(revision="main", allow_unpinned=True))))
    assert load_suite(str(write_suite(tmp_path, hub_source(revision="v1.0"))))  # a tag
    suite = load_suite(str(write_suite(tmp_path, hub_source())))
    assert suite["tasks"]["gsm8k"]["source"]["revision"] == GSM8K_SHA
    # load_rows checks again: a job given an unpinned spec directly fails too
    with pytest.raises(SourceError, match="is a branch"):
        load_rows("g", task(hub_source(revision="master"), scorer="gsm8k"))


def test_unknown_source_key_fails_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tasks.gsm8k.source: unknown key\(s\): 'revison'"):
        load_suite(str(write_suite(tmp_path, {**hub_source(), "revison": "x"})))


def test_offline_missing_dataset_fails_at_once_with_the_fetch_command(tmp_path: Path) -> None:
    out = tmp_path / "gsm8k.jsonl"
    with pytest.raises(SourceError) as info:
        prepare_suite_task("gsm8k", task(hub_source(), scorer="gsm8k"), 0, str(out))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"dataset openai/gsm8k@{GSM8K_SHA} file main/test-00000-of-00001.parquet")
    assert "HF_HUB_OFFLINE=1" in message and str(tmp_path / "hf_home" / "hub") in message
    assert (
        "hf download openai/gsm8k main/test-00000-of-00001.parquet --repo-type dataset "
        f"--revision {GSM8K_SHA}" in message
    )
    assert "huggingface-cli download" in message
    assert not out.exists() and not Path(f"{out}.meta.json").exists()


def test_cached_hub_file_is_used_offline_and_recorded(tmp_path: Path) -> None:
    """A file in the HF cache (laid out as huggingface_hub writes it) is read through hf_hub_download."""
    repo = tmp_path / "hf_home" / "hub" / "datasets--openai--gsm8k"
    snapshot = repo / "snapshots" / GSM8K_SHA / "main" / "test-00000-of-00001.parquet"
    snapshot.parent.mkdir(parents=True)
    shutil.copy(GSM8K_FILE, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(GSM8K_SHA)

    out = tmp_path / "gsm8k.jsonl"
    prepare_suite_task("gsm8k", task(hub_source(), scorer="gsm8k"), 0, str(out))
    assert [r["ground_truth"] for r in read_jsonl(out)] == ["10", "2400", "4.5"]
    meta = json.loads(Path(f"{out}.meta.json").read_text())
    assert meta["repo_id"] == "openai/gsm8k" and meta["revision"] == meta["commit"] == GSM8K_SHA
    assert meta["files"] == [
        {
            "file": "main/test-00000-of-00001.parquet",
            "path": str(snapshot),
            "sha256": sha256_file(GSM8K_FILE),
        }
    ]
    # A branch revision resolves through refs/main in the cache; the commit is recorded.
    prepare_suite_task(
        "gsm8k", task(hub_source(revision="main", allow_unpinned=True), scorer="gsm8k"), 0, str(out)
    )
    assert json.loads(Path(f"{out}.meta.json").read_text())["commit"] == GSM8K_SHA


def test_data_root_redirects_hub_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLPIPE_DATA_ROOT", str(HF))
    suite = load_suite(str(write_suite(tmp_path, hub_source())))
    source = suite["tasks"]["gsm8k"]["source"]
    assert source["data_root"] == str(HF)
    rows, meta = load_rows("gsm8k", suite["tasks"]["gsm8k"])
    assert len(rows) == 3 and meta["data_root"] == str(HF) and meta["revision"] == GSM8K_SHA
    monkeypatch.setenv("RLPIPE_DATA_ROOT", str(tmp_path / "empty"))
    with pytest.raises(
        ConfigError, match=r"tasks.gsm8k.source: data root .*empty: .*test-00000-of-00001.parquet"
    ):
        load_suite(str(write_suite(tmp_path, hub_source())))


def test_relative_local_path_resolves_against_the_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rel = GSM8K_FILE.relative_to(ROOT)
    monkeypatch.chdir(tmp_path)  # as a job run with --directory elsewhere
    suite = load_suite(str(write_suite(tmp_path, {"type": "parquet", "path": str(rel)})), workdir=ROOT)
    assert suite["tasks"]["gsm8k"]["source"]["path"] == str(GSM8K_FILE)
    with pytest.raises(ConfigError, match=r"tasks.gsm8k.source: nowhere.jsonl: file not found"):
        load_suite(str(write_suite(tmp_path, {"type": "jsonl", "path": "nowhere.jsonl"})), workdir=ROOT)


def test_config_split_source_reads_a_mirror(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror" / "openai" / "gsm8k" / "main" / "test.parquet"
    mirror.parent.mkdir(parents=True)
    shutil.copy(GSM8K_FILE, mirror)
    source = {**hub_source(config="main", split="test", data_root=str(tmp_path / "mirror"))}
    del source["data_files"]
    rows, meta = load_rows("gsm8k", task(source, scorer="gsm8k"))
    assert len(rows) == 3 and meta["config"] == "main" and meta["split"] == "test"
    assert meta["files"][0]["file"] == "main/test.parquet"


def test_config_split_source_offline_missing_names_the_dataset() -> None:
    source = hub_source(config="main", split="test")
    del source["data_files"]
    with pytest.raises(
        SourceError, match=r"^dataset openai/gsm8k@\w+ is not in the cache .*hf download openai/gsm8k"
    ):
        load_rows("gsm8k", task(source, scorer="gsm8k"))


def test_bad_row_in_the_second_of_several_files_names_that_file(tmp_path: Path) -> None:
    repo = tmp_path / "mirror" / "LLM360" / "guru-RL-92k"
    repo.mkdir(parents=True)
    shutil.copy(OFFLINE / "math__math_500.parquet", repo / "a.parquet")
    records = pq.read_table(OFFLINE / "math__math_500.parquet").to_pylist()
    records[1]["extra_info"] = None
    records[1]["reward_model"] = None
    pq.write_table(pa.Table.from_pylist(records), repo / "b.parquet")
    source = {
        "type": "hf",
        "repo_id": "LLM360/guru-RL-92k",
        "revision": "v1",
        "data_files": ["a.parquet", "b.parquet"],
        "data_root": str(tmp_path / "mirror"),
    }
    with pytest.raises(SourceError, match=rf"^{repo / 'b.parquet'}: row 1: reward_model: no ground_truth$"):
        load_rows("t", task(source))
    records[1] = pq.read_table(OFFLINE / "math__math_500.parquet").to_pylist()[1]
    pq.write_table(pa.Table.from_pylist(records), repo / "b.parquet")
    rows, meta = load_rows("t", task(source))
    assert [r["id"] for r in rows] == [f"t/{i}" for i in range(6)] and len(meta["files"]) == 2


def test_sha256_pin_is_checked_on_hub_files(tmp_path: Path) -> None:
    repo = tmp_path / "hf_home" / "hub" / "datasets--openai--gsm8k"
    snapshot = repo / "snapshots" / GSM8K_SHA / "main" / "test-00000-of-00001.parquet"
    snapshot.parent.mkdir(parents=True)
    shutil.copy(GSM8K_FILE, snapshot)
    good = sha256_file(GSM8K_FILE)
    rows, _ = load_rows("g", task(hub_source(sha256=good), scorer="gsm8k"))
    assert len(rows) == 3
    with pytest.raises(SourceError, match=rf"sha256 {good} is not the expected {'0' * 64}"):
        load_rows("g", task(hub_source(sha256="0" * 64), scorer="gsm8k"))
