"""Sandboxed execution of untrusted, model-written Python for the code and simulation scorers.

Why: the GURU reference runs model code "unsafe_local" (a timeout and ``ulimit -v`` only). A policy under RL
pressure will eventually emit fork bombs, memory bombs, ``os.kill(os.getppid(), 9)``, reads of
``HF_TOKEN`` or sockets, by accident or as reward hacking. Every run here is contained by layers:

* **bubblewrap** (``bwrap``, preferred, used automatically when a probe run works): new network, pid,
  ipc, uts (and cgroup) namespaces, so no network at all, the host's processes are invisible and cannot
  be signalled; a read-only view of only ``/usr`` and the interpreter's prefix (no ``/root``, ``/home``,
  ``/work``, no secrets on disk); size-limited private tmpfs for ``/tmp`` and the working dir ``/work``;
  ``--die-with-parent`` and ``--new-session`` (no terminal injection).
* **rlimit fallback** (no usable bwrap, or ``RLPIPE_SANDBOX=rlimit``): a private temp working dir, a new
  session/process group, and -- when we are root -- a fresh empty network namespace and a private mount
  namespace (``unshare``) with fresh size-limited tmpfs on ``/tmp``, ``/var/tmp``, ``/dev/shm`` and the
  working dir, ``/proc`` remounted with ``hidepid=2`` (other users' processes invisible), and a
  non-traversable dir holding the interpreter (like ``/root``) covered by a tmpfs that shows only the
  interpreter (see ``_harness.py``); otherwise a Python audit hook that refuses every ``socket.*``
  operation (weaker: ctypes can bypass it). The rest of the host file system stays readable as far as
  it is world-readable.
* The interpreter runs with ``-S``: no ``.pth`` file of site-packages executes code inside the sandbox.
* **in both modes** the harness (``_harness.py``) drops to a **fresh unprivileged uid per run** when we
  are root (so RLIMIT_NPROC really limits the fork count, the code cannot touch root-owned files or other
  runs, cannot read ``/proc/<parent>/environ``, and every stray process can be found and killed by uid),
  sets ``no_new_privs``, makes itself non-dumpable and applies RLIMIT_AS (memory), RLIMIT_NPROC (fork
  bombs), RLIMIT_FSIZE (disk and output), RLIMIT_NOFILE, RLIMIT_CORE=0 and per-case RLIMIT_CPU; the
  parent enforces wall-clock limits and caps captured output.
* The environment is **built from scratch** (never inherited): ``HF_TOKEN``, ``WANDB_API_KEY`` and every
  other parent variable are absent; ``PYTHONHASHSEED=0`` keeps set/dict-order output deterministic.
* At the end the whole process group is killed, then every process still owned by the run's uid, and the
  run's files (also stray ones in ``/tmp``, ``/var/tmp``, ``/dev/shm`` in fallback mode) are deleted.

Memory across processes: each process is capped by RLIMIT_AS, and (when root) a watchdog in the parent
sums the resident memory of the run's uid every 50 ms and kills the run above ``total_memory_mb``.

Known gaps: no cgroup (the watchdog can overshoot for up to one interval; without root the total is only
bounded by ``nproc * memory_mb``); time limits make a program that runs close to its limit flip between
pass and fail from run to run; the non-root rlimit fallback cannot isolate the network (audit hook only)
or the user's own files, cannot stop the code from signalling the user's other processes, and counts
RLIMIT_NPROC against all of the user's processes. Use bwrap (``apt-get install bubblewrap``) or run as
root for real workloads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

_HARNESS = Path(__file__).with_name("_harness.py")
_UID_BASE = 1_000_000  # far above any real account; one fresh uid per run
_uid_lock = threading.Lock()
_uid_counter = 0


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run (defaults sized for competitive-programming tests)."""

    timeout_s: float = 6.0  # wall clock per test case
    cpu_s: int = 5  # CPU seconds per test case
    total_timeout_s: float = 60.0  # wall clock for the whole run, all cases
    memory_mb: int = 1024  # RLIMIT_AS per process
    total_memory_mb: int = 2048  # resident memory of all the run's processes (watchdog, root only)
    nproc: int = 16  # processes+threads of the run's uid (fork bombs)
    fsize_mb: int = 16  # largest file (and stdout) a process may write
    output_bytes: int = 4 * 1024 * 1024  # captured stdout per case
    tmpfs_mb: int = 64  # size of /work and /tmp (bwrap)


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one test case (one execution of the program with one stdin)."""

    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    truncated: bool = False

    @property
    def ok(self) -> bool:
        """Exited with status 0 in time and its output was not truncated."""
        return self.returncode == 0 and not self.timed_out and not self.truncated


@dataclass(frozen=True)
class RunResult:
    """All case outcomes of one run; ``cases`` stops at the first failing case."""

    cases: list[CaseResult] = field(default_factory=list)
    mechanism: str = ""
    error: str | None = None

    @property
    def all_ok(self) -> bool:
        return self.error is None and bool(self.cases) and all(c.ok for c in self.cases)


def _python_dirs() -> list[str]:
    """Directories the interpreter needs (prefix, base prefix, the real executable's dir)."""
    dirs = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    dirs.add(os.path.dirname(os.path.realpath(sys.executable)))
    out: list[str] = []
    for d in sorted(dirs, key=len):
        if d.startswith("/usr/") or d == "/usr" or any(d.startswith(o + "/") for o in out):
            continue
        out.append(d)
    return out


def _env(home: str, tmp: str) -> dict[str, str]:
    """The sandbox environment, built from nothing (no parent variable can leak)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _bwrap_args(box: Path, limits: Limits) -> list[str]:
    bwrap = shutil.which("bwrap")
    assert bwrap is not None
    args = [
        bwrap,
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--hostname",
        "sandbox",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for name in ("bin", "lib", "lib32", "lib64", "sbin"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for extra in ("/etc/ld.so.cache", "/etc/localtime"):
        args += ["--ro-bind-try", extra, extra]
    made: set[str] = set()
    for d in _python_dirs():
        parents = list(Path(d).parents)[::-1][1:]  # skip "/"
        for parent in parents:
            if str(parent) not in made and not str(parent).startswith("/usr"):
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(str(parent))
        args += ["--ro-bind", d, d]
    size = str(limits.tmpfs_mb * 1024 * 1024)
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--perms", "01777", "--size", size, "--tmpfs", "/tmp"]
    args += ["--perms", "0700", "--size", size, "--tmpfs", "/work"]
    args += ["--ro-bind", str(box / "in"), "/sandbox", "--chdir", "/work"]
    for key, value in _env("/work", "/tmp").items():
        args += ["--setenv", key, value]
    return args


def _interpreter() -> list[str]:
    """``-S``: no ``site`` processing, so no ``.pth`` file runs code in the sandbox (and startup is ~30 ms
    faster); the harness puts the site-packages directories on ``sys.path`` itself."""
    return [os.path.realpath(sys.executable), "-S", "-B"]


@cache
def _site_packages() -> list[str]:
    try:
        return [p for p in site.getsitepackages() if os.path.isdir(p)]
    except AttributeError:  # virtualenv's old site.py
        return []


@cache
def _bwrap_usable() -> bool:
    """Probe bwrap once with the exact argument set used for real runs."""
    if shutil.which("bwrap") is None:
        return False
    box = Path(tempfile.mkdtemp(prefix="rlpipe-probe-"))
    try:
        (box / "in").mkdir()
        cmd = [*_bwrap_args(box, Limits()), *_interpreter(), "-c", "import json"]
        proc = subprocess.run(cmd, capture_output=True, timeout=30, env={}, check=False)
        if proc.returncode != 0:
            log.warning("bwrap present but unusable, using the rlimit sandbox: %s", proc.stderr[-300:])
        return proc.returncode == 0
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("bwrap probe failed (%s); using the rlimit sandbox", exc)
        return False
    finally:
        shutil.rmtree(box, ignore_errors=True)


def sandbox_mechanism() -> str:
    """``"bwrap"`` or ``"rlimit"``: the mechanism runs use now (``RLPIPE_SANDBOX`` forces one)."""
    forced = os.environ.get("RLPIPE_SANDBOX", "auto").strip().lower()
    if forced == "rlimit":
        return "rlimit"
    if forced == "bwrap":
        if not _bwrap_usable():
            raise RuntimeError("RLPIPE_SANDBOX=bwrap but bwrap is missing or unusable here")
        return "bwrap"
    return "bwrap" if _bwrap_usable() else "rlimit"


def _fresh_uid() -> int | None:
    """A uid no other run (of this process) uses now; None when we cannot switch uid (not root)."""
    global _uid_counter
    if os.geteuid() != 0:
        return None
    with _uid_lock:
        _uid_counter = (_uid_counter + 1) % 4096
        return _UID_BASE + ((os.getpid() & 0xFFFF) << 12) + _uid_counter


def _proc_uid(pid: str) -> int | None:
    """Real uid of a live process (zombies, which cannot be killed and hold nothing, give None)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("State:") and line.split()[1] in ("Z", "X"):
                    return None
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _pids_of_uid(uid: int) -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _proc_uid(p) == uid]


def _kill_uid(uid: int) -> None:
    """SIGKILL every process whose real uid is ``uid``, until none is left (bounded by RLIMIT_NPROC)."""
    for _ in range(200):
        pids = _pids_of_uid(uid)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.002)
    log.error("sandbox uid %d still has processes after cleanup", uid)


def _pids_with_marker(marker: str) -> list[int]:
    found = []
    needle = marker.encode()
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != os.getpid():
            try:
                with open(f"/proc/{p}/environ", "rb") as fh:
                    if needle in fh.read():
                        found.append(int(p))
            except OSError:
                continue
    return found


def _remove_stray_files(uid: int) -> None:
    """Fallback mode: delete what the run's uid left in the world-writable temp dirs."""
    for top in ("/tmp", "/var/tmp", "/dev/shm"):
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue


_WATCH_INTERVAL_S = 0.05
_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def _resident_mb(uid: int) -> float:
    """Resident memory (MiB) of all live processes of ``uid``: a user-space stand-in for a cgroup cap."""
    total = 0
    for pid in _pids_of_uid(uid):
        try:
            with open(f"/proc/{pid}/statm", encoding="ascii") as fh:
                total += int(fh.read().split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total * _PAGE_MB


def _count_processes_of(uid: int) -> int:
    return len(_pids_of_uid(uid))


def run_python(
    source: str, stdins: list[str] | None = None, limits: Limits | None = None, *, exit_fails: bool = False
) -> RunResult:
    """Run ``source`` once per stdin in ``stdins`` (default: once, empty stdin) inside the sandbox.

    ``exit_fails``: a ``SystemExit`` raised by ``source`` (even ``sys.exit(0)``) fails the case; used when
    test code is appended to the program, so that exiting early cannot skip the tests.

    Never raises because of what ``source`` does; infrastructure failures (no interpreter, harness
    crash) come back as ``RunResult.error``.
    """
    limits = limits or Limits()
    cases = [""] if stdins is None else [str(s) for s in stdins]
    if not cases:
        return RunResult(error="no test cases")
    mechanism = sandbox_mechanism()
    uid = _fresh_uid()
    marker = secrets.token_hex(8)
    box = Path(tempfile.mkdtemp(prefix="rlpipe-sbx-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        os.chmod(box, 0o711)
        (box / "in").mkdir(mode=0o755)
        shutil.copyfile(_HARNESS, box / "in" / "harness.py")
        nproc = limits.nproc
        if uid is None:  # not root: RLIMIT_NPROC counts all our processes, so leave headroom
            nproc += _count_processes_of(os.getuid())
        spec = {
            "source": source,
            "cases": cases,
            "uid": uid,
            "gid": uid,
            "cpu_s": int(limits.cpu_s),
            "timeout_s": float(limits.timeout_s),
            "memory_mb": int(limits.memory_mb),
            "nproc": int(nproc),
            "fsize_mb": int(limits.fsize_mb),
            "output_bytes": int(limits.output_bytes),
            "exit_fails": bool(exit_fails),
            "site_packages": _site_packages(),
        }
        if mechanism == "bwrap":
            spec.update(scratch="/tmp/.harness", net_isolated=True, chown=["/tmp"])
            cmd = [*_bwrap_args(box, limits), *_interpreter(), "/sandbox/harness.py"]
            env: dict[str, str] = {"RLPIPE_SANDBOX_MARKER": marker}
            cwd = str(box)
        else:
            work = box / "work"
            work.mkdir(mode=0o700)
            spec.update(scratch=str(box / "scratch"), net_isolated=False)
            if uid is not None:  # root: private, size-limited /tmp, /var/tmp, /dev/shm (mount namespace)
                spec.update(box=str(box), tmpfs_mb=int(limits.tmpfs_mb))
            cmd = [*_interpreter(), str(box / "in" / "harness.py")]
            env = {**_env(str(work), str(work)), "RLPIPE_SANDBOX_MARKER": marker}
            cwd = str(work)
        spec_path = box / "spec.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        os.chmod(spec_path, 0o600)
        with open(spec_path, "rb") as stdin:
            proc = subprocess.Popen(
                cmd,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        deadline = time.monotonic() + min(limits.total_timeout_s, limits.timeout_s * len(cases) + 10.0)
        while True:
            try:
                out, err = proc.communicate(timeout=_WATCH_INTERVAL_S)
                break
            except subprocess.TimeoutExpired:
                problem = None
                if time.monotonic() > deadline:
                    problem = "sandbox run exceeded its total time limit"
                elif uid is not None and _resident_mb(uid) > limits.total_memory_mb:
                    problem = f"sandbox run exceeded its total memory budget ({limits.total_memory_mb} MiB)"
                if problem:
                    _kill_group(proc)
                    if uid is not None:
                        _kill_uid(uid)
                    proc.communicate()
                    return RunResult(mechanism=mechanism, error=problem)
        return _parse(out, err, proc.returncode, mechanism)
    except OSError as exc:
        return RunResult(mechanism=mechanism, error=f"sandbox failed to start: {exc}")
    finally:
        if proc is not None:
            _kill_group(proc)
        if uid is not None:
            _kill_uid(uid)
            if mechanism != "bwrap":
                _remove_stray_files(uid)
        else:
            for pid in _pids_with_marker(marker):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(box, ignore_errors=True)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.kill()


def _parse(out: bytes, err: bytes, returncode: int, mechanism: str) -> RunResult:
    try:
        payload = json.loads(out.decode("utf-8", "replace"))
        cases = [
            CaseResult(
                returncode=r.get("rc"),
                stdout=r.get("stdout", ""),
                stderr=r.get("stderr", ""),
                timed_out=bool(r.get("timeout")),
                truncated=bool(r.get("truncated")),
            )
            for r in payload["results"]
        ]
    except (ValueError, KeyError, TypeError, AttributeError):
        tail = err.decode("utf-8", "replace")[-500:]
        return RunResult(mechanism=mechanism, error=f"harness failed (exit {returncode}): {tail}")
    return RunResult(cases=cases, mechanism=mechanism)
