"""Evaluation data from real sources: Hugging Face datasets, local parquet and JSON-lines files.

Every source is fetched, normalised into rlpipe's row schema (``id``, ``domain``, ``task``, ``prompt``
as chat messages, ``ground_truth``, ``scorer``, ``extra_info``) and described by a provenance record
(repository, revision, resolved commit, file, sha256) that ``prepare_suite_task`` writes next to the
rows as ``<out>.meta.json``. Why: a score is only comparable with another when both were computed on
the same bytes, and a hub branch moves under you; the sidecar says which bytes were used.

Source types (see ``workflow/schemas/suite.schema.yaml``):

* ``hf``: ``repo_id`` + ``revision`` (required: a commit sha or a tag; a branch such as ``main`` is
  refused unless ``allow_unpinned: true``) + either ``data_files`` (one or more files in the repo,
  fetched with ``huggingface_hub.hf_hub_download`` into the cache under ``HF_HOME``) or ``config`` /
  ``split`` (read with ``datasets.load_dataset``). With ``HF_HUB_OFFLINE=1`` only the cache is used;
  a dataset missing from it fails at once with one line naming it and the command that fetches it.
* ``parquet`` / ``jsonl``: a local file ``path``; a relative path is looked up in the current
  directory, then in the project root (``rlpipe.config.load_suite`` resolves it when the suite loads).
* ``sha256`` (hf only): the hash each downloaded file must have (one string for one file, or a map
  file -> hash); a commit pin trusts the host, the hash proves the bytes. A ``data_root`` mirror is
  not checked (the test fixtures stand in for the real files).
* ``data_root`` (hf only): read ``<data_root>/<repo_id>/<file>`` instead of the hub -- a local mirror
  on a cluster without internet, or the offline test fixtures. ``rlpipe.config.load_suite`` fills it
  in for every hub source when the environment variable ``RLPIPE_DATA_ROOT`` is set.

Common options: ``format`` (``guru``, ``gsm8k``, ``musique``, ``rlpipe``; detected from the columns when
absent), ``dedupe`` (drop rows whose prompt and ground truth repeat an earlier row -- GURU's AIME file
repeats every problem 8 times; deduplicated, k samples per problem give avg@k with an honest standard
error), ``subsample: N`` (N rows drawn with ``subsample_seed``, default 0, independent of the
experiment seed so every experiment scores the same subset; source order is kept).

Row ids are ``<task>/<row number in the source>``: stable across subsampling and unique in a suite.
A malformed row fails the job with a message naming the file and the row number.

Training data (``data.sources`` of an experiment) is read by the same code: ``load_training_rows``
normalises a dataset exactly like a suite task, then carves a validation split by a hash of each row's
content (``split_validation``) and only then subsamples the training rows, so the validation rows stay
the same whatever ``subsample`` says and no problem is in both splits.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import logging
import os
import random
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Branch names move; a revision that names one is not a pin.
_MOVING_REFS = {"main", "master", "head"}
_SHA = re.compile(r"^[0-9a-f]{40}$")
# Scorers that read the problem statement from ``extra_info["prompt"]``: CRUXEval (the function under
# test) and IFEval (a response that only copies the request is refused).
PROMPT_READING_SCORERS = {"cruxeval_i", "cruxeval_o", "ifeval_strict", "ifeval_loose"}

GSM8K_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
MUSIQUE_INSTRUCTION = (
    "Answer the question using the paragraphs above; the answer needs facts from several of them. "
    "Reason step by step if you need to, then give only the short answer span inside "
    "<answer></answer>."
)


class SourceError(ValueError):
    """A data source that cannot be used, with the dataset / file (and row) in its message."""


class RowError(ValueError):
    """A malformed source row; the caller adds the file and row number."""


@dataclass
class Fetched:
    """Raw records of a source and where they came from."""

    records: list[dict[str, Any]]
    label: str  # names the data in error messages: a file path or repo@revision
    meta: dict[str, Any] = field(default_factory=dict)
    # (label, number of records) per file, in order: errors name the file and the row within it
    parts: list[tuple[str, int]] = field(default_factory=list)

    def where(self, index: int) -> str:
        """``<file>: row <n>`` of the record at ``index`` of the concatenation."""
        for label, count in self.parts:
            if index < count:
                return f"{label}: row {index}"
            index -= count
        return f"{self.label}: row {index}"


# --------------------------------------------------------------------------------------------------
# Static checks (run while the suite loads, before any job)


def is_pinned(revision: str) -> bool:
    """Whether ``revision`` names fixed content: a commit sha or a tag (anything that is not a branch).

    A tag cannot be told from a branch without asking the hub, so only the well-known moving names
    (``main``, ``master``, ``HEAD``, ``refs/heads/*``, ``refs/pr/*``) are treated as unpinned.
    """
    rev = revision.strip()
    if _SHA.match(rev):
        return True
    return rev.lower() not in _MOVING_REFS and not rev.startswith(("refs/heads/", "refs/pr/"))


def check_source(source: dict[str, Any]) -> None:
    """Checks the schema cannot express; raise ``SourceError`` with a fix in the message."""
    if source["type"] != "hf":
        return
    revision = str(source.get("revision") or "")
    if not revision:
        raise SourceError(
            f"hub dataset {source.get('repo_id')!r} needs 'revision' (a commit sha or tag), "
            "so that every run reads the same bytes"
        )
    if not is_pinned(revision) and not source.get("allow_unpinned", False):
        raise SourceError(
            f"hub dataset {source['repo_id']!r}: revision {revision!r} is a branch and moves; pin a commit "
            "sha or tag (or set allow_unpinned: true; the commit actually used is recorded in "
            "<out>.meta.json either way)"
        )


def with_data_root(source: dict[str, Any], data_root: str | os.PathLike[str]) -> dict[str, Any]:
    """A copy of a hub ``source`` that reads a local mirror under ``data_root``; checks the files exist.

    Local sources (``parquet``/``jsonl``) and sources with their own ``data_root`` are returned as they are.
    """
    if source["type"] != "hf" or source.get("data_root"):
        return source
    out = {**source, "data_root": str(Path(data_root).resolve())}
    for rel in _mirror_files(out):
        path = Path(out["data_root"]) / source["repo_id"] / rel
        if not path.is_file():
            raise SourceError(f"data root {out['data_root']}: {path} does not exist")
    return out


def with_local_path(source: dict[str, Any], workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """A copy of a ``parquet``/``jsonl`` source whose relative ``path`` is resolved like a suite reference.

    A relative path is tried as given (the current directory), then under ``workdir`` (the project
    root, where ``config/`` lives); the first existing file wins, so a job run with Snakemake's
    ``--directory`` elsewhere still finds it. A file found nowhere is an error now, not at job time.
    """
    if source["type"] not in ("parquet", "jsonl"):
        return source
    path = Path(source["path"])
    candidates = [path] if path.is_absolute() else [path, Path(workdir) / path]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise SourceError(f"{source['path']}: file not found (looked in {', '.join(map(str, candidates))})")
    return {**source, "path": str(found.resolve())}


def check_cached(source: dict[str, Any]) -> None:
    """Offline without a mirror, every file of a hub source must be in the Hugging Face cache.

    Called while the config loads, so a missing dataset fails before any job starts, naming the dataset
    and the command that fetches it. Online, or for local / mirrored (``data_root``) sources, or a
    ``config``/``split`` source (read by ``datasets``, whose cache is not inspected), nothing is checked.
    """
    if source["type"] != "hf" or source.get("data_root") or not _offline():
        return
    from huggingface_hub import try_to_load_from_cache

    for rel in _data_files(source):
        found = try_to_load_from_cache(
            source["repo_id"],
            rel,
            cache_dir=_hub_cache_dir(),
            revision=str(source["revision"]),
            repo_type="dataset",
        )
        if not isinstance(found, str):
            raise _missing(source["repo_id"], str(source["revision"]), rel)


def _data_files(source: dict[str, Any]) -> list[str]:
    files = source.get("data_files") or []
    return [files] if isinstance(files, str) else list(files)


def _mirror_files(source: dict[str, Any]) -> list[str]:
    """Paths relative to ``<data_root>/<repo_id>`` that stand for a hub source."""
    files = _data_files(source)
    if files:
        return files
    base = f"{source.get('config') or 'default'}/{source['split']}"
    root = Path(source["data_root"]) / source["repo_id"]
    for suffix in (".parquet", ".jsonl"):
        if (root / (base + suffix)).is_file():
            return [base + suffix]
    return [base + ".parquet"]


# --------------------------------------------------------------------------------------------------
# Fetching


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _offline() -> bool:
    """Offline when the environment says so now (huggingface_hub reads it only once, at import)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return value in ("1", "true", "yes", "on") or constants.is_offline_mode()


def _hub_cache_dir() -> str | None:
    """The hub cache under the current ``HF_HOME`` (read now, so a job's environment decides)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def fetch_command(repo_id: str, revision: str, filename: str | None = None) -> str:
    """The shell command that puts a hub dataset (file) into the cache."""
    target = f"{repo_id} {filename}" if filename else repo_id
    return f"hf download {target} --repo-type dataset --revision {revision}"


def _missing(repo_id: str, revision: str, filename: str | None) -> SourceError:
    what = f"{repo_id}@{revision}" + (f" file {filename}" if filename else "")
    where = _hub_cache_dir() or "the default Hugging Face cache"
    mode = "HF_HUB_OFFLINE=1" if _offline() else "the hub could not be reached"
    return SourceError(
        f"dataset {what} is not in the cache ({where}) and {mode}; fetch it with: "
        f"{fetch_command(repo_id, revision, filename)} "
        "(huggingface_hub<1.0: huggingface-cli download, same arguments)"
    )


def _commit_of(path: str) -> str | None:
    """The commit sha of a file in the hub cache (``.../snapshots/<sha>/<file>``)."""
    parts = Path(path).parts
    if "snapshots" in parts:
        index = parts.index("snapshots")
        if index + 1 < len(parts) and _SHA.match(parts[index + 1]):
            return parts[index + 1]
    return None


def download_hub_file(repo_id: str, filename: str, revision: str) -> tuple[Path, str | None]:
    """One file of a hub dataset, from the cache or the hub: ``(local path, commit sha)``."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        path = hf_hub_download(
            repo_id=repo_id,
            filename=filename,
            repo_type="dataset",
            revision=revision,
            cache_dir=_hub_cache_dir(),
            local_files_only=_offline(),
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise _missing(repo_id, revision, filename) from None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(f"dataset {repo_id}@{revision} file {filename}: {first}") from None
    return Path(path), _commit_of(path)


def read_records(path: str | os.PathLike[str], kind: str | None = None) -> list[dict[str, Any]]:
    """Rows of a parquet or JSON-lines file as plain Python objects; errors name the file (and line)."""
    path = Path(path)
    kind = kind or ("parquet" if path.suffix == ".parquet" else "jsonl")
    if not path.is_file():
        raise SourceError(f"{path}: file not found")
    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise SourceError(f"{path}: not a readable parquet file: {exc}") from None
    records = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SourceError(f"{path}: line {lineno}: malformed JSON: {exc}") from None
            if not isinstance(record, dict):
                raise SourceError(f"{path}: line {lineno}: expected a JSON object")
            records.append(record)
    return records


def _file_entry(repo_path: str | None, path: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": str(path), "sha256": sha256_file(path)}
    if repo_path is not None:
        entry = {"file": repo_path, **entry}
    return entry


def fetch(source: dict[str, Any]) -> Fetched:
    """The raw records of a source and its provenance (``meta``)."""
    kind = source["type"]
    if kind in ("parquet", "jsonl"):
        path = Path(source["path"])
        records = read_records(path, kind)
        meta = {"type": kind, "files": [_file_entry(None, path)]}
        return Fetched(records, str(path), meta, [(str(path), len(records))])
    if kind != "hf":
        raise SourceError(f"unknown source type {kind!r}")
    check_source(source)
    repo_id, revision = source["repo_id"], str(source["revision"])
    meta: dict[str, Any] = {"type": "hf", "repo_id": repo_id, "revision": revision, "files": []}
    for key in ("config", "split"):
        if source.get(key):
            meta[key] = source[key]
    out = Fetched([], f"{repo_id}@{revision}", meta)
    if source.get("data_root"):
        meta["data_root"] = source["data_root"]
        for rel in _mirror_files(source):
            path = Path(source["data_root"]) / repo_id / rel
            _add(out, read_records(path), str(path), _file_entry(rel, path))
        return out
    files = _data_files(source)
    if not files:
        return _fetch_with_datasets(source, meta)
    expected = _expected_sha256(source, files)
    for rel in files:
        path, commit = download_hub_file(repo_id, rel, revision)
        if rel in expected and sha256_file(path) != expected[rel]:
            raise SourceError(
                f"dataset {repo_id}@{revision} file {rel} ({path}): sha256 {sha256_file(path)} is not the "
                f"expected {expected[rel]}; the bytes changed under the pin (or the cache is damaged)"
            )
        records = read_records(path, "parquet" if rel.endswith(".parquet") else "jsonl")
        _add(out, records, f"{repo_id}@{revision}:{rel} ({path})", _file_entry(rel, path))
        meta["commit"] = commit or meta.get("commit")
    if not is_pinned(revision):
        log.warning(
            "%s: revision %r is not pinned; it read commit %s (set revision: %s to pin it)",
            repo_id, revision, meta.get("commit"), meta.get("commit"),
        )  # fmt: skip
    return out


def _expected_sha256(source: dict[str, Any], files: list[str]) -> dict[str, str]:
    """``file -> sha256`` the downloaded bytes must have (``sha256``: one hash for one file, or a map)."""
    expected = source.get("sha256")
    if not expected:
        return {}
    if isinstance(expected, str):
        if len(files) != 1:
            raise SourceError("sha256 as one string needs exactly one data file; give a file -> hash map")
        return {files[0]: expected.lower()}
    return {k: v.lower() for k, v in expected.items()}


def _add(fetched: Fetched, records: list[dict[str, Any]], label: str, entry: dict[str, Any]) -> None:
    fetched.records += records
    fetched.parts.append((label, len(records)))
    fetched.meta["files"].append(entry)


def _fetch_with_datasets(source: dict[str, Any], meta: dict[str, Any]) -> Fetched:
    """A ``config``/``split`` of a hub dataset through ``datasets.load_dataset`` (its own cache)."""
    import datasets

    repo_id, revision = source["repo_id"], str(source["revision"])
    try:
        dataset = datasets.load_dataset(
            repo_id, name=source.get("config"), split=source["split"], revision=revision
        )
    except (ConnectionError, FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as exc:
        if _offline() or isinstance(exc, ConnectionError):
            raise _missing(repo_id, revision, None) from None
        raise SourceError(f"dataset {repo_id}@{revision}: {str(exc).splitlines()[0]}") from None
    meta["files"] = [_file_entry(None, Path(f["filename"])) for f in dataset.cache_files]
    meta["fingerprint"] = getattr(dataset, "_fingerprint", None)
    return Fetched(dataset.to_list(), f"{repo_id}@{revision}", meta)


# --------------------------------------------------------------------------------------------------
# Normalisation


def plain(value: Any) -> Any:
    """Plain Python containers and scalars (numpy arrays / scalars from pandas become lists / numbers)."""
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _decompress(data: bytes) -> str | None:
    for decoder in (zlib.decompress, gzip.decompress):
        try:
            return decoder(data).decode("utf-8")
        except (zlib.error, OSError, EOFError, UnicodeDecodeError):
            continue
    return None


def decode_structured(value: Any, what: str) -> Any:
    """A dict column that may be stored as a dict, a JSON string, or compressed (zlib/gzip, base64) JSON.

    GURU's main repository stores ``reward_model`` / ``extra_info`` as structs; a variant stores them as
    (compressed) JSON text.
    """
    value = plain(value)
    if isinstance(value, bytes):
        text = _decompress(value)
        if text is None:
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                raise RowError(f"{what}: undecodable bytes") from None
        value = text
    if isinstance(value, str):
        text = value.strip()
        try:
            return json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            pass
        try:
            packed = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            packed = b""
        unpacked = _decompress(packed) if packed else None
        if unpacked is not None:
            try:
                return json.loads(unpacked)
            except (json.JSONDecodeError, RecursionError):
                pass
        raise RowError(f"{what}: a string that is neither JSON nor compressed JSON")
    return value


def _messages(value: Any) -> list[dict[str, str]]:
    value = plain(value)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise RowError("prompt: expected a non-empty list of chat messages")
    messages = []
    for i, message in enumerate(value):
        if (
            not isinstance(message, dict)
            or not isinstance(message.get("role"), str)
            or not isinstance(message.get("content"), str)
        ):
            raise RowError(f"prompt[{i}]: expected {{role: str, content: str}}")
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)


def from_guru(record: dict[str, Any]) -> dict[str, Any] | None:
    """A GURU row: ``data_source``, ``prompt`` (messages), ``reward_model.ground_truth``, ``extra_info``."""
    prompt = _messages(record.get("prompt"))
    reward_model = decode_structured(record.get("reward_model"), "reward_model")
    if not isinstance(reward_model, dict) or "ground_truth" not in reward_model:
        raise RowError("reward_model: no ground_truth")
    truth = plain(reward_model["ground_truth"])
    if _empty(truth):
        raise RowError("reward_model.ground_truth is empty")
    info = decode_structured(record.get("extra_info"), "extra_info")
    if info is None:
        info = {}
    if not isinstance(info, dict):
        raise RowError("extra_info: expected a dict")
    # Parquet structs give every row every key; a null one was absent in the original row.
    info = {k: v for k, v in info.items() if v is not None}
    for key in ("data_source", "ability"):
        if record.get(key) is not None:
            info.setdefault(key, record[key])
    return {"prompt": prompt, "ground_truth": truth, "extra_info": info}


_GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)


def from_gsm8k(record: dict[str, Any]) -> dict[str, Any] | None:
    """A GSM8K row: ``question``, ``answer`` (worked solution ending in ``#### N``)."""
    question, answer = record.get("question"), record.get("answer")
    if not isinstance(question, str) or not question.strip():
        raise RowError("question: missing or empty")
    if not isinstance(answer, str):
        raise RowError("answer: missing")
    match = _GSM8K_FINAL.search(answer)
    if not match:
        raise RowError("answer: no final '#### N' line")
    final = match.group(1).replace(",", "").replace("$", "").strip()
    return {
        "prompt": [{"role": "user", "content": f"{question.strip()}\n{GSM8K_INSTRUCTION}"}],
        "ground_truth": final,
        "extra_info": {},
        "solution": answer,
    }


def _truthy(value: Any) -> bool:
    return value.strip().lower() == "true" if isinstance(value, str) else bool(value)


def from_musique(record: dict[str, Any]) -> dict[str, Any] | None:
    """A MuSiQue row (``question``, ``answer``, ``answer_aliases``, ``paragraphs``, ``answerable``).

    Unanswerable rows are dropped (None): their ground truth is not an answer. The paragraphs go into
    the prompt (the task is reading comprehension over them); the ground truth is the answer followed
    by its aliases, the musique scorers take the best match.
    """
    if not _truthy(record.get("answerable", True)):
        return None
    question, answer = record.get("question"), record.get("answer")
    if not isinstance(question, str) or not question.strip():
        raise RowError("question: missing or empty")
    if not isinstance(answer, str) or not answer.strip():
        raise RowError("answer: missing or empty in an answerable row")
    paragraphs = plain(record.get("paragraphs"))
    if not isinstance(paragraphs, list) or not paragraphs:
        raise RowError("paragraphs: expected a non-empty list")
    blocks, supporting = [], []
    for i, paragraph in enumerate(paragraphs):
        if not isinstance(paragraph, dict):
            raise RowError(f"paragraphs[{i}]: expected a dict")
        text = paragraph.get("paragraph_text", paragraph.get("text"))
        if not isinstance(text, str):
            raise RowError(f"paragraphs[{i}]: no paragraph_text")
        blocks.append(f"Paragraph {i + 1}: {paragraph.get('title', '')}\n{text.strip()}")
        if _truthy(paragraph.get("is_supporting", False)):
            supporting.append(i + 1)
    aliases = [a for a in plain(record.get("answer_aliases") or []) if isinstance(a, str) and a.strip()]
    truths = list(dict.fromkeys([answer, *aliases]))
    content = "\n\n".join(blocks) + f"\n\nQuestion: {question.strip()}\n{MUSIQUE_INSTRUCTION}"
    info = {"supporting_paragraphs": supporting, "n_paragraphs": len(paragraphs)}
    if record.get("id") is not None:
        info["source_id"] = record["id"]
    return {"prompt": [{"role": "user", "content": content}], "ground_truth": truths, "extra_info": info}


def from_rlpipe(record: dict[str, Any]) -> dict[str, Any] | None:
    """A row already in rlpipe's schema (``prompt`` as messages or text, ``ground_truth``, ``extra_info``)."""
    if "ground_truth" not in record or _empty(plain(record["ground_truth"])):
        raise RowError("ground_truth: missing or empty")
    info = plain(record.get("extra_info") or {})
    if not isinstance(info, dict):
        raise RowError("extra_info: expected a dict")
    row = {"prompt": _messages(record.get("prompt")), "ground_truth": plain(record["ground_truth"])}
    row["extra_info"] = info
    if record.get("solution") is not None:
        row["solution"] = record["solution"]
    return row


NORMALISERS: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {
    "guru": from_guru,
    "gsm8k": from_gsm8k,
    "musique": from_musique,
    "rlpipe": from_rlpipe,
}


def detect_format(record: dict[str, Any]) -> str:
    """The row format from the columns of the first record."""
    if "reward_model" in record and "prompt" in record:
        return "guru"
    if "paragraphs" in record and "question" in record:
        return "musique"
    if "question" in record and "answer" in record:
        return "gsm8k"
    if "prompt" in record and "ground_truth" in record:
        return "rlpipe"
    raise SourceError(f"cannot tell the row format from the columns {sorted(record)}; set source.format")


def _dedupe(rows: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    seen: set[str] = set()
    kept = []
    for index, row in rows:
        key = json.dumps([row["prompt"], row["ground_truth"]], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            kept.append((index, row))
    return kept


def subsample(items: list[Any], n: int, seed: int) -> list[Any]:
    """``n`` items drawn with ``seed``, in their original order (all of them when ``n >= len``)."""
    if n >= len(items):
        return list(items)
    chosen = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in chosen]


def load_rows(name: str, task: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of suite task ``name`` in rlpipe's schema, and the provenance record for the sidecar."""
    source = task["source"]
    fetched = fetch(source)
    if not fetched.records:
        raise SourceError(f"{fetched.label}: no rows")
    fmt = source.get("format") or detect_format(fetched.records[0])
    normalise = NORMALISERS[fmt]
    rows: list[tuple[int, dict[str, Any]]] = []
    skipped = 0
    for index, record in enumerate(fetched.records):
        try:
            row = normalise(record)
        except RowError as exc:
            raise SourceError(f"{fetched.where(index)}: {exc}") from None
        if row is None:
            skipped += 1
            continue
        rows.append((index, row))
    if source.get("dedupe"):
        rows = _dedupe(rows)
    distinct = len(rows)
    if source.get("subsample"):
        rows = subsample(rows, int(source["subsample"]), int(source.get("subsample_seed", 0)))
    if not rows:
        raise SourceError(f"{fetched.label}: no usable rows ({skipped} skipped)")
    out = []
    for index, row in rows:
        info = dict(row["extra_info"])
        if task["scorer"] in PROMPT_READING_SCORERS:
            info.setdefault("prompt", row["prompt"][-1]["content"])
        full = {
            "id": f"{name}/{index}",
            "domain": task["domain"],
            "task": name,
            "prompt": row["prompt"],
            "ground_truth": row["ground_truth"],
            "scorer": task["scorer"],
            "extra_info": info,
        }
        if "solution" in row:
            full["solution"] = row["solution"]
        out.append(full)
    meta = {
        **fetched.meta,
        "task": name,
        "format": fmt,
        "rows_in_source": len(fetched.records),
        "rows_skipped": skipped,
        "rows_before_subsample": distinct,
        "rows": len(out),
        "dedupe": bool(source.get("dedupe")),
        "subsample": source.get("subsample"),
        "subsample_seed": int(source.get("subsample_seed", 0)) if source.get("subsample") else None,
    }
    return out, meta


# --------------------------------------------------------------------------------------------------
# Training data


def content_key(row: dict[str, Any]) -> str:
    """What makes two rows the same problem: the prompt and the ground truth (not the row number)."""
    return json.dumps([row["prompt"], row["ground_truth"]], sort_keys=True, default=str)


def split_validation(
    name: str, rows: list[dict[str, Any]], n_validation: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(train, validation)``: the ``n_validation`` problems with the smallest content hashes validate.

    Decided by ``sha256(<name>:<prompt + ground truth>)`` like the procedural tasks' splits, so it does not
    depend on the row order, the seed or the subsample; rows that repeat one problem (GURU repeats some)
    all land on the same side, so the splits never share a problem. Source order is kept in both.
    """
    keys = [hashlib.sha256(f"{name}:{content_key(row)}".encode()).hexdigest() for row in rows]
    distinct = sorted(set(keys))
    if n_validation and n_validation >= len(distinct):
        raise SourceError(
            f"training data {name}: {len(distinct)} distinct problems, so validation: {n_validation} would "
            "leave none to train on; lower data.sources.<name>.validation (or validation_per_task)"
        )
    chosen = set(distinct[:n_validation])
    train = [row for row, key in zip(rows, keys, strict=True) if key not in chosen]
    validation = [row for row, key in zip(rows, keys, strict=True) if key in chosen]
    return train, validation


def load_training_rows(
    name: str, spec: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Training and validation rows of dataset ``name`` (``data.sources.<name>``) and its provenance.

    ``spec`` is a suite-task-like entry (``domain``, ``scorer``, ``source``) plus ``validation`` (rows to
    carve out). ``source.subsample`` applies to the training rows only, after the split.
    """
    source = dict(spec["source"])
    n_train = source.pop("subsample", None)
    seed = int(source.pop("subsample_seed", 0))
    rows, meta = load_rows(name, {**spec, "source": source})
    train, validation = split_validation(name, rows, int(spec.get("validation", 0)))
    available = len(train)
    if n_train:
        train = subsample(train, int(n_train), seed)
    for split, part in (("train", train), ("validation", validation)):
        for row in part:
            row["extra_info"] = {**row["extra_info"], "split": split}
    meta = {
        **meta,
        "rows": len(train),
        "validation_rows": len(validation),
        "train_rows_before_subsample": available,
        "subsample": n_train,
        "subsample_seed": seed if n_train else None,
    }
    return train, validation, meta
