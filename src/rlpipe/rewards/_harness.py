"""In-sandbox harness: runs untrusted Python source once per test case. Standard library only.

This file is NOT imported by rlpipe; ``sandbox.py`` copies it into the sandbox and runs it with the
sandbox's interpreter. It reads a JSON spec from stdin (so expected outputs never enter the sandbox:
they are not in the spec at all, comparison happens in the trusted parent), then:

1. (fallback mode, as root) leaves the host network namespace when it can;
2. drops to the per-run unprivileged uid/gid, sets ``no_new_privs`` and makes itself non-dumpable (so
   the untrusted code, running under the same uid, cannot open ``/proc/<harness>/fd`` or ``mem``);
3. applies the resource limits (address space, process count, file size, open files, no core dumps);
4. for every case forks a child in its own process group with stdin = the case input, stdout/stderr =
   size-capped files, and a CPU-time limit; the parent waits with a wall-clock deadline and kills the
   child's group on timeout; it stops at the first failing case (all tests must pass anyway);
5. prints one JSON line with, per case, the exit status, timeout flag and (capped) outputs.
"""

import builtins
import contextlib
import ctypes
import json
import os
import resource
import select
import signal
import sys
import time

_CLONE_NEWNET = 0x40000000
_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWNS = 0x00020000
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_MNT_DETACH = 2
_MS_PRIVATE = 1 << 18


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _isolate_network(libc):
    """Enter a fresh, empty network namespace (only loopback, down). Needs root; False if impossible."""
    if libc is None or os.geteuid() != 0:
        return False
    return libc.unshare(_CLONE_NEWNET) == 0


def _blocking_ancestor(path):
    """The top-most ancestor of ``path`` that other users cannot traverse (e.g. ``/root``), or None."""
    current = "/"
    for part in [p for p in path.split("/") if p]:
        current = os.path.join(current, part)
        if current == path:
            return None
        if not os.stat(current).st_mode & 0o001:
            return current
    return None


def _expose_interpreter(libc):
    """Fallback mode, as root: make the interpreter reachable for the unprivileged uid.

    In a private mount namespace, a fresh tmpfs (mode 0755) covers each non-traversable ancestor such as
    ``/root`` (which also hides everything else in it), and the interpreter's directories are bind-mounted
    back read-only at their original paths. Returns False when impossible.
    """
    dirs = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    dirs.add(os.path.dirname(os.path.realpath(sys.executable)))
    blocked = {}
    for d in sorted(dirs):
        top = _blocking_ancestor(d)
        if top is not None:
            blocked.setdefault(top, []).append(d)
    if not blocked:
        return True
    if libc is None or os.geteuid() != 0:
        return False
    import tempfile

    mount, umount2 = libc.mount, libc.umount2
    if libc.unshare(_CLONE_NEWNS) != 0 or mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        return False
    for top, inner in blocked.items():
        stages = []
        for d in inner:
            stage = tempfile.mkdtemp(prefix="rlpipe-stage-")
            if mount(d.encode(), stage.encode(), None, _MS_BIND | _MS_REC, None) != 0:
                return False
            stages.append((d, stage))
        if mount(b"tmpfs", top.encode(), b"tmpfs", 0, b"mode=0755,size=1m") != 0:
            return False
        for d, stage in stages:
            os.makedirs(d, mode=0o755, exist_ok=True)
            if mount(stage.encode(), d.encode(), None, _MS_BIND | _MS_REC, None) != 0:
                return False
            mount(None, d.encode(), None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY, None)
            umount2(stage.encode(), _MNT_DETACH)
            os.rmdir(stage)
    return True


def _private_tmp(libc, box, size_mb):
    """Fallback mode, as root: fresh, size-limited tmpfs on ``/tmp``, ``/var/tmp``, ``/dev/shm`` and the cwd.

    In a private mount namespace, so files written there never reach the host and vanish with the run;
    the run's own box (under the host's ``/tmp``) is bind-mounted back at its path. False if impossible.
    """
    if libc is None or os.geteuid() != 0 or not hasattr(os, "O_PATH"):
        return False
    if libc.unshare(_CLONE_NEWNS) != 0 or libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        return False
    keep = os.open(box, os.O_PATH | os.O_DIRECTORY)
    options = ("mode=1777,size=%dm" % size_mb).encode()  # noqa: UP031 - harness stays simple
    mounted = []
    for top in ("/dev/shm", "/var/tmp", "/tmp"):
        if os.path.isdir(top) and not os.path.islink(top):
            if libc.mount(b"tmpfs", top.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options) != 0:
                return False
            mounted.append(top)
    if any(box.startswith(top + "/") for top in mounted):
        os.makedirs(box, mode=0o711, exist_ok=True)
        source = ("/proc/self/fd/%d" % keep).encode()  # noqa: UP031
        if libc.mount(source, box.encode(), None, _MS_BIND | _MS_REC, None) != 0:
            return False
    os.close(keep)
    work = os.getcwd()  # the working dir becomes a size-limited tmpfs too (no host disk filling)
    work_options = ("mode=0700,size=%dm" % size_mb).encode()  # noqa: UP031
    if libc.mount(b"tmpfs", work.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, work_options) != 0:
        return False
    os.chdir(work)
    # A fresh /proc with hidepid=2: the code sees only its own processes, not the host's command lines.
    libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV, b"hidepid=2")
    return True


def _drop_privileges(uid, gid, dirs):
    if os.geteuid() == 0 and uid is not None:
        for d in dirs:
            with contextlib.suppress(OSError):
                os.chown(d, uid, gid)
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        if os.getuid() == 0 or os.geteuid() == 0:
            raise SystemExit("privilege drop failed")


def _harden(libc):
    if libc is not None:
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def _set_limits(spec):
    mb = 1024 * 1024
    pairs = [
        (resource.RLIMIT_AS, spec["memory_mb"] * mb),
        (resource.RLIMIT_NPROC, spec["nproc"]),
        (resource.RLIMIT_FSIZE, spec["fsize_mb"] * mb),
        (resource.RLIMIT_NOFILE, 64),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_STACK, min(64 * mb, spec["memory_mb"] * mb)),
    ]
    for which, value in pairs:
        resource.setrlimit(which, (value, value))


def _block_sockets():
    """Last line of defence when no network namespace could be created: refuse socket use."""

    def hook(event, args):
        if event.startswith("socket."):
            raise PermissionError("network access is disabled in the sandbox")

    sys.addaudithook(hook)


def _child(source, in_path, out_path, err_path, cpu_s, exit_fails):
    os.setpgid(0, 0)
    fd_in = os.open(in_path, os.O_RDONLY)
    fd_out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    fd_err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd_in, 0)
    os.dup2(fd_out, 1)
    os.dup2(fd_err, 2)
    os.closerange(3, 1 << 16)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    code = 0
    try:
        sys.argv = ["solution.py"]
        compiled = compile(source, "solution.py", "exec")
        exec(compiled, {"__name__": "__main__", "__builtins__": builtins})  # noqa: S102 - sandboxed
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exit_fails:
            code = 1
    except BaseException:  # noqa: BLE001 - any failure of untrusted code is a failed test
        with contextlib.suppress(BaseException):
            import traceback

            traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        code = code or 1
    os._exit(code & 0xFF)


def _wait(pid, timeout_s):
    """Wait for ``pid`` at most ``timeout_s`` seconds; returns (status or None on timeout)."""
    deadline = time.monotonic() + timeout_s
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if pidfd is not None:
            select.select([pidfd], [], [], left)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if pidfd is not None:
                os.close(pidfd)
            return status
        if pidfd is None:
            time.sleep(min(0.005, left))


def _read_capped(path, cap):
    try:
        with open(path, "rb") as fh:
            data = fh.read(cap + 1)
    except OSError:
        return "", False
    return data[:cap].decode("utf-8", "replace"), len(data) > cap


def main():
    spec = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    os.close(0)
    sys.path.extend(p for p in spec.get("site_packages", []) if p not in sys.path)
    libc = _libc()
    net_isolated = bool(spec.get("net_isolated")) or _isolate_network(libc)
    if spec.get("box") and not _private_tmp(libc, spec["box"], spec.get("tmpfs_mb", 64)):
        # best effort (e.g. no CAP_SYS_ADMIN): the parent still deletes the run's stray temp files
        sys.stderr.write("rlpipe sandbox: no private /tmp (mount namespace unavailable)\n")
    if spec.get("uid") is not None and not _expose_interpreter(libc):
        raise SystemExit("the interpreter is not reachable for an unprivileged uid; refusing to run as root")
    work = os.getcwd()
    scratch = spec["scratch"]
    os.makedirs(scratch, exist_ok=True)
    _drop_privileges(spec.get("uid"), spec.get("gid"), [work, scratch, *spec.get("chown", [])])
    _harden(libc)
    _set_limits(spec)
    if not net_isolated:
        _block_sockets()
    results = []
    for index, stdin_text in enumerate(spec["cases"]):
        in_path = os.path.join(scratch, f"in{index}")
        out_path = os.path.join(scratch, f"out{index}")
        err_path = os.path.join(scratch, f"err{index}")
        with open(in_path, "w", encoding="utf-8") as fh:
            fh.write(stdin_text)
        sys.stdout.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            results.append({"rc": None, "timeout": False, "stdout": "", "stderr": f"fork: {exc}"})
            break
        if pid == 0:
            try:
                _child(
                    spec["source"], in_path, out_path, err_path, spec["cpu_s"], spec.get("exit_fails", False)
                )
            finally:
                os._exit(1)
        status = _wait(pid, spec["timeout_s"])
        timed_out = status is None
        if timed_out:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        stdout, out_trunc = _read_capped(out_path, spec["output_bytes"])
        stderr, _ = _read_capped(err_path, 4096)
        results.append(
            {"rc": rc, "timeout": timed_out, "stdout": stdout, "stderr": stderr, "truncated": out_trunc}
        )
        if timed_out or rc != 0:
            break
    sys.stdout.write(json.dumps({"harness": "ok", "results": results}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
