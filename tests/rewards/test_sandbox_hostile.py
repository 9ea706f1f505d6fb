"""Hostile-code containment suite: every attack must be contained, score 0, and leave the host intact.

Runs each attack under both mechanisms (bwrap when usable here, and the rlimit fallback) with a real
sandbox -- no mocks. Postconditions are checked from the host side, not trusted from the sandbox.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from rlpipe.rewards import sandbox as sbx
from rlpipe.rewards import score
from rlpipe.rewards.sandbox import Limits, run_python

FAST = Limits(timeout_s=1.0, cpu_s=1, total_timeout_s=6.0, memory_mb=512, nproc=16)
MODES = ["rlimit", *(["bwrap"] if sbx._bwrap_usable() else [])]
CANARY = "hf_canary_" + secrets.token_hex(6)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("RLPIPE_SANDBOX", request.param)
    monkeypatch.setenv("HF_TOKEN", CANARY)
    monkeypatch.setenv("WANDB_API_KEY", CANARY)
    monkeypatch.setattr("rlpipe.rewards.code.DEFAULT_LIMITS", FAST)
    return request.param


def _live_sandbox_pids() -> list[int]:
    """Processes still running under a sandbox uid of THIS process (zombies excluded).

    Only this process's uid block counts: other sessions may run sandboxes on the same machine.
    """
    low = sbx._UID_BASE + ((os.getpid() & 0xFFFF) << 12)
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        uid = int(fields["Uid"].split()[0])
        if low <= uid < low + 4096 and not fields["State"].strip().startswith(("Z", "X")):
            out.append(int(pid))
    return out


def _run_solution(program: str) -> float:
    """Score ``program`` as a solution with a trivially passing functional test."""
    response = f"```python\n{program}\n```"
    return score("code", response, json.dumps({"functional": "assert True"}))


def _assert_host_clean() -> None:
    assert _live_sandbox_pids() == [], "sandbox processes survived the run"
    child = subprocess.run(["true"], check=False)  # the host can still fork and exec
    assert child.returncode == 0


def test_benign_program_passes(mode: str) -> None:
    """Control: the suite's scoring path does give 1 to harmless code (so 0s below mean containment)."""
    assert _run_solution("x = sum(range(10))\nassert x == 45") == 1.0
    _assert_host_clean()


def test_fork_bomb(mode: str) -> None:
    program = "import os\nwhile True:\n    os.fork()"
    start = time.monotonic()
    assert _run_solution(program) == 0.0
    assert time.monotonic() - start < 15
    _assert_host_clean()


def test_fork_bomb_that_ignores_errors(mode: str) -> None:
    program = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    assert _run_solution(program) == 0.0
    _assert_host_clean()


def test_memory_bomb(mode: str) -> None:
    program = "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 * 1024))"
    assert _run_solution(program) == 0.0
    result = run_python("x = bytearray(4 * 1024 ** 3)", None, FAST)
    assert not result.all_ok and "MemoryError" in result.cases[0].stderr
    _assert_host_clean()


def test_memory_bomb_spread_over_processes(mode: str) -> None:
    """Each process stays under RLIMIT_AS; together they exceed the run's total budget."""
    if os.geteuid() != 0:
        pytest.skip("the total-memory watchdog needs a per-run uid, i.e. root")
    program = (
        "import os, time\n"
        "for _ in range(6):\n"
        "    if os.fork() == 0:\n"
        "        break\n"
        "block = bytearray(300 * 1024 * 1024)\n"
        "for i in range(0, len(block), 4096):\n"
        "    block[i] = 1\n"
        "time.sleep(5)\n"
    )
    start = time.monotonic()
    result = run_python(program, None, Limits(timeout_s=6, cpu_s=6, memory_mb=512, total_memory_mb=1024))
    assert result.error is not None and "memory budget" in result.error
    assert time.monotonic() - start < 5
    _assert_host_clean()


def test_infinite_loop_and_sleep(mode: str) -> None:
    start = time.monotonic()
    assert _run_solution("while True:\n    pass") == 0.0
    result = run_python("import time\ntime.sleep(1000)", None, FAST)
    assert result.cases[0].timed_out
    assert time.monotonic() - start < 15
    _assert_host_clean()


def test_writes_outside_its_dir(mode: str, tmp_path: Path) -> None:
    targets = [
        tmp_path / "escape.txt",
        Path("/tmp") / f"rlpipe-escape-{secrets.token_hex(4)}",
        Path("/var/tmp") / f"rlpipe-escape-{secrets.token_hex(4)}",
        Path.home() / f"rlpipe-escape-{secrets.token_hex(4)}",
    ]
    for target in targets:
        assert _run_solution(f"open({str(target)!r}, 'w').write('pwned')") == 0.0 or target.parent in (
            Path("/tmp"),
            Path("/var/tmp"),
        )
    probe = "import os\n" + "".join(
        f"try:\n    open({str(t)!r}, 'w').write('pwned')\nexcept OSError:\n    pass\n" for t in targets
    )
    run_python(probe, None, FAST)
    for target in targets:
        assert not target.exists(), f"{target} escaped the sandbox"
    _assert_host_clean()


def test_secrets_are_not_readable(mode: str, tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text(CANARY)
    secret_file.chmod(0o600)
    holder = subprocess.Popen(["sleep", "30"], env={"HF_TOKEN": CANARY, "PATH": "/usr/bin:/bin"})
    try:
        program = f"""
import os
found = []
found.append(repr(dict(os.environ)))
for pid in os.listdir('/proc'):
    if pid.isdigit():
        try:
            found.append(open(f'/proc/{{pid}}/environ', 'rb').read().decode('latin-1'))
        except OSError:
            pass
for path in [{str(secret_file)!r}, '/root/.cache/huggingface/token', '/proc/{os.getpid()}/environ']:
    try:
        found.append(open(path).read())
    except OSError:
        pass
print('\\n'.join(found))
"""
        result = run_python(program, None, FAST)
        assert result.all_ok, result
        assert CANARY not in result.cases[0].stdout
        probe = (
            f"import os\nprint(os.path.exists('/proc/{holder.pid}'), os.path.exists('/proc/{os.getpid()}'))"
        )
        assert run_python(probe, None, FAST).cases[0].stdout.split() == ["False", "False"]  # host pids hidden
        assert "HF_TOKEN" not in result.cases[0].stdout
        assert _run_solution("import os\nassert os.environ['HF_TOKEN']") == 0.0
    finally:
        holder.kill()
        holder.wait()
    _assert_host_clean()


def test_network_is_unreachable(mode: str) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).send(b'x')"
        assert _run_solution(program) == 0.0
        assert _run_solution("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)") == 0.0
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()
    _assert_host_clean()


def test_signalling_parent_and_host(mode: str) -> None:
    victim = subprocess.Popen(["sleep", "30"])
    try:
        attacks = [
            "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
            f"import os\nos.kill({os.getpid()}, 9)",
            f"import os\nos.kill({victim.pid}, 9)",
            "import os\nos.kill(-1, 9)",
            "import os\nos.killpg(os.getpgid(os.getppid()), 9)",
        ]
        for program in attacks:
            assert _run_solution(program) == 0.0
        assert victim.poll() is None, "a host process was killed from the sandbox"
    finally:
        victim.kill()
        victim.wait()
    _assert_host_clean()


def test_daemon_escaping_the_process_group(mode: str, tmp_path: Path) -> None:
    marker = tmp_path / "late.txt"
    program = f"""
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(1.0)
        open({str(marker)!r}, 'w').write('still alive')
        while True:
            pass
    os._exit(0)
"""
    run_python(program, None, FAST)
    _assert_host_clean()
    time.sleep(1.5)
    assert not marker.exists()


def test_output_flood_is_capped(mode: str) -> None:
    program = "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)"
    start = time.monotonic()
    assert _run_solution(program) == 0.0
    result = run_python(program, None, FAST)
    assert not result.all_ok
    assert len(result.cases[0].stdout) <= FAST.output_bytes
    assert time.monotonic() - start < 15
    _assert_host_clean()


def test_disk_fill_is_capped(mode: str) -> None:
    program = "f = open('big', 'wb')\nwhile True:\n    f.write(b'0' * (1 << 20))"
    assert _run_solution(program) == 0.0
    many = "i = 0\nwhile True:\n    open(f'f{i}', 'wb').write(b'0' * (8 << 20))\n    i += 1"
    result = run_python(many, None, FAST)
    assert not result.all_ok and "No space left" in result.cases[0].stderr  # the tmpfs is full
    for where in ("/tmp", "/dev/shm"):
        spill = f"import os\nopen('{where}/f', 'wb').write(b'0' * (8 << 20))\nprint(os.listdir('{where}'))"
        run_python(spill, None, FAST)  # refused (bwrap /dev/shm) or written to a private tmpfs
        assert not Path(where, "f").exists()
    _assert_host_clean()


def test_forging_the_harness_report(mode: str) -> None:
    """Reward hacking: write a fake 'all passed' report into the harness's stdout, then kill it."""
    fake = '{"harness": "ok", "results": [{"rc": 0, "timeout": false, "stdout": "4\\n", "stderr": ""}]}'
    program = f"""
import os, signal
for fd in range(0, 10):
    try:
        with open(f'/proc/{{os.getppid()}}/fd/{{fd}}', 'w') as fh:
            fh.write({fake!r})
    except OSError:
        pass
os.kill(os.getppid(), signal.SIGKILL)
"""
    assert _run_solution(program) == 0.0
    tests = {"inputs": ["2 2\n"], "outputs": ["4\n"]}
    assert score("code", f"```python\n{program}\n```", tests) == 0.0
    _assert_host_clean()


def test_privilege_escalation_attempts(mode: str) -> None:
    attacks = [
        "import os\nos.setuid(0)",
        "import os\nos.setgid(0)",
        "open('/etc/shadow').read()",
        "import subprocess\nsubprocess.run(['su', '-c', 'id'], check=True, timeout=2)",
        "import ctypes, os\nassert ctypes.CDLL(None).ptrace(16, os.getppid(), 0, 0) == 0",  # PTRACE_ATTACH
        "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(10,)).start()",
    ]
    for program in attacks:
        assert _run_solution(program) == 0.0, program
    _assert_host_clean()


def test_parent_survives_everything(mode: str) -> None:
    """After the whole catalogue ran, this very process is alive and can still score normally."""
    assert os.getpid() > 0
    assert _run_solution("print('ok')") == 1.0
    signal.getsignal(signal.SIGTERM)  # the interpreter is still responsive
