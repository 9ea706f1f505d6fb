"""Sandbox behaviour on ordinary code: cases, stop-at-first-failure, limits, determinism, mechanism."""

import os
import threading

import pytest

from rlpipe.rewards import sandbox as sbx
from rlpipe.rewards.sandbox import Limits, run_python, sandbox_mechanism

FAST = Limits(timeout_s=2.0, cpu_s=2, total_timeout_s=10.0)


def test_mechanism_is_bwrap_when_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RLPIPE_SANDBOX", raising=False)
    assert sandbox_mechanism() == ("bwrap" if sbx._bwrap_usable() else "rlimit")
    monkeypatch.setenv("RLPIPE_SANDBOX", "rlimit")
    assert sandbox_mechanism() == "rlimit"
    assert run_python("print(1)", None, FAST).mechanism == "rlimit"


def test_cases_run_in_order_with_stdin() -> None:
    result = run_python("import sys\nprint(sys.stdin.read().upper())", ["a\n", "b"], FAST)
    assert result.all_ok
    assert [c.stdout for c in result.cases] == ["A\n\n", "B\n"]


def test_stops_at_first_failing_case() -> None:
    result = run_python("x = int(input())\nassert x > 0\nprint(x)", ["1", "-1", "2"], FAST)
    assert not result.all_ok
    assert len(result.cases) == 2
    assert result.cases[0].ok and result.cases[1].returncode == 1
    assert "AssertionError" in result.cases[1].stderr


def test_runs_as_unprivileged_user_in_private_dir() -> None:
    program = "import os\nopen('scratch.txt', 'w').write('ok')\nprint(os.getuid(), os.listdir('.'))"
    result = run_python(program, None, FAST)
    assert result.all_ok, result
    uid, listing = result.cases[0].stdout.split(" ", 1)
    if os.geteuid() == 0:
        assert int(uid) >= sbx._UID_BASE
    assert "scratch.txt" in listing


def test_hash_seed_is_fixed_for_deterministic_output() -> None:
    program = "print(list({'apple', 'banana', 'cherry', 'date', 'elder'}))"
    outputs = {run_python(program, None, FAST).cases[0].stdout for _ in range(3)}
    assert len(outputs) == 1


def test_per_case_cpu_and_wall_limits() -> None:
    result = run_python("import time\ntime.sleep(5)", None, Limits(timeout_s=0.5, total_timeout_s=5))
    assert result.cases[0].timed_out and not result.all_ok


def test_concurrent_runs_are_isolated() -> None:
    results: list[str] = []

    def work(i: int) -> None:
        out = run_python(f"import os\nopen('f', 'w').write('{i}')\nprint(open('f').read())", None, FAST)
        results.append(out.cases[0].stdout.strip())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["0", "1", "2", "3"]


def test_empty_case_list_is_an_error_not_a_pass() -> None:
    result = run_python("print(1)", [], FAST)
    assert result.error and not result.all_ok
