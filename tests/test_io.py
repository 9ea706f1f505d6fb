"""Atomic outputs: a failure leaves neither a partial file nor a temporary one."""

import pytest

from rlpipe.tracking.io import atomic_path, read_jsonl, write_jsonl


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_failed_directory_leaves_old_one_intact(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_path(target, directory=True) as tmp:
        (tmp / "weights").write_text("v1")
    with pytest.raises(RuntimeError), atomic_path(target, directory=True) as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError("killed")
    assert (target / "weights").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_jsonl_round_trip_and_error_names_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, [{"a": 1}, {"b": [1, 2]}])
    assert read_jsonl(path) == [{"a": 1}, {"b": [1, 2]}]
    path.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(ValueError, match="rows.jsonl:2: malformed JSON"):
        read_jsonl(path)
