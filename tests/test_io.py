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
    with pytest.raises(ValueError, match="rows.jsonl:2: not a JSON line"):
        read_jsonl(path)


def test_a_torn_last_line_of_an_appended_file_is_dropped_and_one_elsewhere_is_an_error(tmp_path, caplog):
    """Issue 23: every JSONL rlpipe appends to (live metrics, job timing records) survives a kill
    mid-append; damage anywhere but the last line is still an error naming file and line."""
    from rlpipe.tracking.io import iter_jsonl
    from rlpipe.tracking.logs import read_timing, timing_path

    log = tmp_path / "job.log"
    timing_path(log).write_text('{"wall_s": 1.0}\n{"wall_s": 2.0}\n{"wall_s": 3.')
    with caplog.at_level("WARNING"):
        assert read_timing(log) == [{"wall_s": 1.0}, {"wall_s": 2.0}]
    assert "dropping a torn last line" in caplog.text
    with pytest.raises(ValueError, match=r"rows.jsonl:3: not a JSON line"):
        (tmp_path / "rows.jsonl").write_text('{"a": 1}\n\n{"a": \n{"a": 3}\n')
        list(iter_jsonl(tmp_path / "rows.jsonl", appended=True))
    with pytest.raises(ValueError, match=r"rows.jsonl:1: a line must be a JSON object, got list"):
        (tmp_path / "rows.jsonl").write_text("[1]\n")
        list(iter_jsonl(tmp_path / "rows.jsonl"))
