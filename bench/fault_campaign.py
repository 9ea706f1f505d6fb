#!/usr/bin/env python3
"""Fault-injection campaign of issue 23 ("Crash-safe by construction"): inject one fault into a small
two-run experiment (bench/fault_campaign.yaml: SFT warm-up, a GRPO-LoRA run and a PPO run of 20
steps, checkpoints every 10, every checkpoint evaluated, the report), rerun THE SAME COMMAND

    snakemake --cores 1 --configfile bench/fault_campaign.yaml

up to N times without any human action, and classify what happened:

* ``recovered``: a rerun finished and the final outputs equal a clean reference run's (every file of
  every published ``runs/<run>/checkpoints/step_N`` byte-identical, ``scores.csv``, every
  ``eval/<run>/step_N/{completions,scores}.jsonl`` and ``summary.csv``, the tables and the training
  metrics with their timing keys left out);
* ``needs_person``: every rerun failed;
* ``silently_wrong``: a rerun finished but an output differs from the clean run's (a corrupted
  artifact was evaluated or published without an error);
* ``error_says_what_to_run``: the stale-lock case (the Snakemake controller killed): the rerun fails
  with an error naming the command that fixes it (``--unlock``); the harness then runs it, as the
  error says, and records whether that recovered;
* ``needless_rerun``: the moved project: a rerun finished with the clean outputs but ran jobs again
  (a finished project must rerun nothing);
* ``not_injected``: the harness could not inject the fault (a trigger never fired), not a result.

Each fault runs on a fresh copy of the project (``git archive`` of ``--rev``, default: the working
tree) at one fixed path per worker, started from the matching stage of that revision's clean
reference run (nothing / data + warm-up + pre-flight + base evaluation / the finished run: copies of
``results/`` and ``.snakemake/metadata`` with their mtimes), so a fault costs one faulted run plus the
reruns. Faults are injected from outside the project's code, so the same harness measures any
revision: signals to processes found through /proc (psutil) after polling the filesystem (the live
``state/metrics.jsonl``, the job logs), edits of files between runs, and, for exact file-system
moments (a kill while ``trainer_state.json`` is being written, between a rename and the next one, a
full disk), a ``sitecustomize.py`` put on the faulted attempt's PYTHONPATH that watches ``open`` /
``os.replace`` for a path pattern and then kills its own process with SIGKILL or raises
``OSError(ENOSPC)`` once (never in the reruns). The save-window patterns name the state layout: they
match 172c17d's (checkpoints written in place, PPO's in a ``.checkpoint-N.*.tmp`` dir) and the staging
area of issue 23's checkpoint transaction (``state/incoming/``); a fault whose trigger never fires is
reported ``not_injected``, never counted as a result.

Outputs are compared with the revision's own clean run, so files that differ between two clean runs
must be compared canonically (see ``sha``: PEFT's ``target_modules`` order follows PYTHONHASHSEED).

Usage:

    nice -n 10 python bench/fault_campaign.py --rev 172c17d \
        --out bench/results/fault_campaign_before_172c17d      # writes .json and .md
    python bench/fault_campaign.py --faults kill-grpo-step7,delete-scores --reruns 3
    python bench/fault_campaign.py --list
    python bench/fault_campaign.py --render bench/results/fault_campaign_before_172c17d.json

``--workdir DIR`` keeps every fault's project copy and logs under ``DIR/slot<k>/<fault>.work/``;
``--jobs N`` runs N faults at once (each slot at its own path; give it N cores). A ``notes`` list
added to the JSON is rendered as the table's "Observations".

Importable: ``FAULTS`` (name -> Fault), ``prepare_reference(rev, workdir)``,
``run_fault(name, project_dir, reference=...)`` (a dict per fault), ``run_campaign(...)``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "bench" / "fault_campaign.yaml"
CONFIG_REL = "bench/fault_campaign.yaml"
EXP = yaml.safe_load(CONFIG.read_text())["name"]
OUT = f"results/{EXP}"
RUNS = [r["name"] for r in yaml.safe_load(CONFIG.read_text())["runs"]]  # grpo-lora, ppo
GRPO, PPO = "grpo-lora", "ppo"

ATTEMPT_TIMEOUT_S = 900
POLL_S = 0.01

OUTCOMES = (
    "recovered",
    "needs_person",
    "silently_wrong",
    "error_says_what_to_run",
    "needless_rerun",
    "not_injected",
)


# ----------------------------------------------------------------------------------------------
# Project trees


def git(*args: str, cwd: Path = REPO, **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, **kw)


def resolve_rev(rev: str | None) -> dict[str, str]:
    """``{"rev": as given, "sha": commit, "label": ...}``; ``None`` is the working tree."""
    head = git("rev-parse", "HEAD", text=True).stdout.strip()
    if rev is None:
        dirty = bool(git("status", "--porcelain", text=True).stdout.strip())
        return {
            "rev": "worktree",
            "sha": head,
            "label": f"working tree (HEAD {head[:7]}{', modified' if dirty else ''})",
        }
    sha = git("rev-parse", f"{rev}^{{commit}}", text=True).stdout.strip()
    label = sha[:7] if sha.startswith(rev) else f"{rev} ({sha[:7]})"
    return {"rev": rev, "sha": sha, "label": label}


def export_tree(rev: str | None, dest: Path) -> None:
    """A clean copy of the project: ``git archive`` of ``rev``, or the working tree's tracked and
    untracked-but-not-ignored files (``rev`` None). The campaign's config goes in as well."""
    dest.mkdir(parents=True)
    if rev is None:
        names = git("ls-files", "-co", "--exclude-standard", "-z").stdout.split(b"\0")
        for name in filter(None, names):
            src = REPO / os.fsdecode(name)
            if src.is_file():
                target = dest / os.fsdecode(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
    else:
        archive = subprocess.Popen(["git", "archive", rev], cwd=REPO, stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
        if archive.wait():
            raise RuntimeError(f"git archive {rev} failed")
    (dest / CONFIG_REL).parent.mkdir(parents=True, exist_ok=True)
    (dest / CONFIG_REL).write_text(config_text(dest))


def config_text(project: Path) -> str:
    """The campaign's config for the revision in ``project``: one file today (it validates at
    172c17d and HEAD); a key that only a later schema knows would be added here, per revision."""
    return CONFIG.read_text()


def validate_config(project: Path) -> str:
    """Load the config with the project's own rlpipe (schema, run expansion): '' if valid, else the error."""
    code = (
        "import yaml, sys; from rlpipe.config import load_experiment; "
        f"e = load_experiment(yaml.safe_load(open({CONFIG_REL!r})), [{CONFIG_REL!r}], workdir='.'); "
        "print(sorted(e.runs))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=project, env=job_env(project), capture_output=True, text=True
    )
    return "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["failed"])[-1]


def job_env(
    project: Path, agent: dict[str, Any] | None = None, agent_dir: Path | None = None
) -> dict[str, str]:
    """Environment of every snakemake call: offline, one thread, the project's own rlpipe first on
    the path (the installed one is an editable install of the main checkout)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FC_", "SNAKEMAKE")) and k not in ("PYTHONPATH", "WANDB_API_KEY")
    }
    paths = [str(project / "src")]
    if agent is not None and agent_dir is not None:
        paths.insert(0, str(agent_dir))
        env["FC_AGENT"] = json.dumps(agent)
    env.update(
        PYTHONPATH=os.pathsep.join(paths),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        WANDB_MODE="disabled",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    return env


def snakemake_command(*extra: str) -> list[str]:
    """THE command (plus ``extra``: ``-n``, ``--unlock`` or targets, put first since ``--configfile``
    takes every value after it), as a user types it."""
    return [sys.executable, "-m", "snakemake", *extra, "--cores", "1", "--configfile", CONFIG_REL]


# ----------------------------------------------------------------------------------------------
# Snapshots of the clean reference run (results/ + Snakemake's metadata, mtimes and hard links kept)


def copy_tree(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


def take_snapshot(project: Path, snap: Path) -> None:
    if snap.exists():
        shutil.rmtree(snap)
    snap.mkdir(parents=True)
    copy_tree(project / "results", snap / "results")
    copy_tree(project / ".snakemake" / "metadata", snap / "metadata")
    (snap / "path.txt").write_text(str(project))


def restore_snapshot(snap: Path, project: Path) -> None:
    """Put a snapshot into ``project`` (a fresh tree). Snakemake's metadata records absolute paths
    where the revision's rule params hold them (172c17d: the suite file), so the snapshot's own path
    is rewritten to ``project``'s: as if the reference had run there."""
    copy_tree(snap / "results", project / "results")
    meta = project / ".snakemake" / "metadata"
    copy_tree(snap / "metadata", meta)
    old = (snap / "path.txt").read_text()
    if old != str(project):
        for f in meta.iterdir():
            text = f.read_text()
            if old in text:
                st = f.stat()
                f.write_text(text.replace(old, str(project)))
                os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))


# ----------------------------------------------------------------------------------------------
# Running snakemake with an injector alongside


class NotInjected(Exception):
    """The injector's trigger never came (the run ended first, or a timeout)."""


def session_processes(sid: int) -> list[psutil.Process]:
    """Every live process of session ``sid`` (the controller started it: orphans keep it)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


@dataclass
class Ctx:
    """What an injector sees: the controller process, the project, helpers to wait and signal."""

    proc: subprocess.Popen
    project: Path
    deadline: float
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.project / OUT

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, what: str, predicate: Callable[[], Any]) -> Any:
        while True:
            value = predicate()
            if value:
                return value
            if not self.alive():
                raise NotInjected(f"the run ended before {what}")
            if time.monotonic() > self.deadline:
                raise NotInjected(f"timed out waiting for {what}")
            time.sleep(POLL_S)

    def live_lines(self, run: str) -> int:
        path = self.out / "runs" / run / "state" / "metrics.jsonl"
        try:
            return path.read_bytes().count(b"\n")
        except OSError:
            return 0

    def job(self, script: str) -> psutil.Process | None:
        """The (innermost) process running rule script ``script`` (e.g. ``train.py``)."""
        found = []
        for p in session_processes(self.proc.pid):
            try:
                cmd = " ".join(p.cmdline())
            except psutil.Error:
                continue
            if re.search(rf"[./]{re.escape(script)}\b", cmd) and "snakemake" not in cmd.split()[1:3]:
                found.append(p)
        return max(found, key=lambda p: p.create_time()) if found else None

    def signal_job(self, script: str, sig: int) -> int:
        job = self.wait_for(f"a process running {script}", lambda: self.job(script))
        job.send_signal(sig)
        return job.pid


def wait_session_empty(sid: int, timeout: float) -> dict[str, Any]:
    """Wait until no process of the session is left (orphans of a killed controller finish)."""
    t0 = time.monotonic()
    first = [p.pid for p in session_processes(sid)]
    while session_processes(sid) and time.monotonic() - t0 < timeout:
        time.sleep(0.2)
    left = session_processes(sid)
    for p in left:  # still running after the timeout: stop them, the next attempt must start clean
        with contextlib.suppress(psutil.Error):
            p.kill()
    return {
        "orphans": first,
        "orphans_wait_s": round(time.monotonic() - t0, 1),
        "orphans_killed": [p.pid for p in left],
    }


def finished_rules(output: str) -> list[str]:
    return re.findall(r"Finished jobid: \d+ \(Rule: ([\w-]+)\)", output)


#: Snakemake's and the job wrapper's own lines around every failure: they say nothing about the cause
GENERIC = re.compile(
    r"^(Exiting because|WorkflowError:|RuleException:|Removing output files|Error in rule"
    r"|CalledProcessError in file|Shutting down|Complete log|Will exit after|Select jobs|Trying to restart"
    r"|\S+ \S+ (INFO|ERROR) rlpipe: (job failed|failed)"
    r"|raise )"
)


def short(line: str) -> str:
    """A job's failure without its (long) command line: ``job died with <Signals.SIGKILL: 9>.``"""
    m = re.match(r"Command '.*' (died with .*|returned non-zero exit status .*)", line)
    return f"job {m.group(1)}" if m else line


def cause(error: list[str], n: int = 2) -> list[str]:
    """The last ``n`` lines of ``error`` that say something specific."""
    lines = [short(line) for line in error]
    specific = [line for line in lines if not GENERIC.search(line)]
    return (specific or lines)[-n:]


def error_lines(output: str, n: int = 12) -> list[str]:
    """The lines of the output that say what failed (errors, exceptions, their messages), last ``n``."""
    keep = []
    for line in output.splitlines():
        s = line.strip()
        if not s or s.startswith(
            ('File "', "^", "~", "resources:", "log:", "input:", "output:", "wildcards:")
        ):
            continue
        s = short(s)
        if re.search(
            r"(Error|Exception|error:|Errno|cannot|failed|Interrupted|Killed|lock|died with|exit status)", s
        ):
            keep.append(s[:400])
    return keep[-n:]


def run_snakemake(
    project: Path,
    log_path: Path,
    *,
    extra: Iterable[str] = (),
    injector: Callable[[Ctx], dict[str, Any]] | None = None,
    agent: dict[str, Any] | None = None,
    agent_dir: Path | None = None,
    timeout: float = ATTEMPT_TIMEOUT_S,
) -> dict[str, Any]:
    """One attempt: the command in ``project``; returns exit code, time, rules run, error lines."""
    cmd = snakemake_command(*extra)
    t0 = time.monotonic()
    injected: dict[str, Any] | None = None
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=project,
            env=job_env(project, agent, agent_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        ctx = Ctx(proc, project, deadline=t0 + timeout)
        try:
            if injector is not None:
                try:
                    injected = {"ok": True, **(injector(ctx) or {})}
                except NotInjected as exc:
                    injected = {"ok": False, "why": str(exc)}
            proc.wait(timeout=max(1.0, ctx.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        rc = proc.returncode
        orphans = wait_session_empty(proc.pid, timeout=600)
    output = log_path.read_text(errors="replace")
    attempt = {
        "cmd": " ".join(["snakemake", *cmd[3:]]),
        "rc": rc,
        "seconds": round(time.monotonic() - t0, 1),
        "rules_run": finished_rules(output),
        "error": error_lines(output) if rc else [],
        "log": str(log_path),
    }
    if injected is not None:
        attempt["injected"] = injected
    if orphans["orphans"]:
        attempt.update(orphans)
    return attempt


# ----------------------------------------------------------------------------------------------
# The in-process agent: exact file-system moments (sitecustomize on the faulted attempt's PYTHONPATH)

AGENT = r'''
"""Fault agent of bench/fault_campaign.py (only on a faulted attempt's PYTHONPATH).

FC_AGENT = {"event": "open"|"replace", "path": regex on the absolute path, "nth": 1, "when":
"before"|"after" (replace), "action": "kill"|"torn_kill"|"enospc", "keep": fraction of the write
kept before a torn_kill/enospc, "marker": file made once when the fault fires (all processes)}.
"""
import builtins, errno, io, json, os, re, signal, sys, time

_spec = json.loads(os.environ.get("FC_AGENT") or "null")


def _install(spec):
    rx = re.compile(spec["path"])
    seen = [0]

    def matches(path):
        try:
            p = os.path.abspath(os.fsdecode(os.fspath(path)))
        except TypeError:
            return False
        return rx.search(p) is not None

    def claim(path, what):
        seen[0] += 1
        if seen[0] != spec.get("nth", 1):
            return False
        try:
            fd = os.open(spec["marker"], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.write(fd, json.dumps({"pid": os.getpid(), "path": os.fsdecode(os.fspath(path)), "what": what,
                                 "argv": sys.argv[:2], "time": time.time()}).encode())
        os.close(fd)
        return True

    def die():
        sys.stdout.flush() if sys.stdout else None
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)

    class Faulty:
        """A file whose next write is cut short: part of it lands, then a kill or ENOSPC."""

        def __init__(self, fh, action, keep):
            self._fh, self._action, self._keep = fh, action, keep

        def write(self, data):
            part = data[: int(len(data) * self._keep)]
            if part:
                self._fh.write(part)
            self._fh.flush()
            if self._action == "torn_kill":
                os.fsync(self._fh.fileno())
                die()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self._fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._fh.close()
            return False

        def __iter__(self):
            return iter(self._fh)

    if spec["event"] == "open":
        real_open = builtins.open

        def fc_open(file, mode="r", *args, **kwargs):
            writes = any(c in mode for c in "wax+")
            if isinstance(file, (str, bytes, os.PathLike)) and writes and matches(file):
                if claim(file, "open " + mode):
                    fh = real_open(file, mode, *args, **kwargs)
                    if spec["action"] == "kill":
                        fh.close()
                        die()
                    return Faulty(fh, spec["action"], spec.get("keep", 0.0))
            return real_open(file, mode, *args, **kwargs)

        builtins.open = fc_open
        io.open = fc_open
    elif spec["event"] == "replace":
        for name in ("replace", "rename"):
            real = getattr(os, name)

            def fc_replace(src, dst, *args, _real=real, **kwargs):
                if matches(dst) and claim(dst, "replace " + spec.get("when", "after")):
                    if spec.get("when") == "before":
                        die()
                    result = _real(src, dst, *args, **kwargs)
                    die()
                    return result
                return _real(src, dst, *args, **kwargs)

            setattr(os, name, fc_replace)


if _spec:
    _install(_spec)
'''


def write_agent(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(AGENT)
    return directory


# ----------------------------------------------------------------------------------------------
# Faults


@dataclass
class Fault:
    """One fault: where the run starts, how it is injected, what it models."""

    name: str
    group: str  # the item (1-9)
    start: str  # "scratch" | "pretrain" | "final": which stage of the reference the copy starts from
    how: str  # how it is injected, in words (the table's "where / how")
    injector: Callable[[Ctx], dict[str, Any]] | None = None  # alongside the faulted run
    agent: dict[str, Any] | None = None  # sitecustomize trigger for the faulted run
    offline: Callable[[Path], dict[str, Any]] | None = None  # applied to a finished copy, no run
    lock: bool = False  # the stale-lock case
    move: bool = False  # the moved-project case


FAULTS: dict[str, Fault] = {}


def fault(**kw: Any) -> Fault:
    f = Fault(**kw)
    FAULTS[f.name] = f
    return f


#: where a trainer writes a checkpoint before it counts: in place at 172c17d, in the staging area
#: ``state/incoming/`` since the checkpoint transaction of issue 23 (the same moment at both)
STAGED = r"/(incoming/)?"


def state(run: str) -> str:
    return rf"/{re.escape(OUT)}/runs/{re.escape(run)}/state"


def kill_at_line(run: str, k: int, sig: int = signal.SIGKILL) -> Callable[[Ctx], dict[str, Any]]:
    """Once run's live metrics hold ``k`` lines (k steps done), signal its training process."""

    def inject(ctx: Ctx) -> dict[str, Any]:
        ctx.wait_for(f"{run} step {k}", lambda: ctx.live_lines(run) >= k)
        pid = ctx.signal_job("train.py", sig)
        return {"signal": signal.Signals(sig).name, "pid": pid, "live_lines_at_signal": ctx.live_lines(run)}

    return inject


def ctrl_c_group(run: str, k: int) -> Callable[[Ctx], dict[str, Any]]:
    """Ctrl-C in the terminal: SIGINT to the whole foreground process group (controller and jobs)."""

    def inject(ctx: Ctx) -> dict[str, Any]:
        ctx.wait_for(f"{run} step {k}", lambda: ctx.live_lines(run) >= k)
        os.killpg(ctx.proc.pid, signal.SIGINT)
        return {"signal": "SIGINT (process group)", "live_lines_at_signal": ctx.live_lines(run)}

    return inject


def kill_controller(run: str, k: int) -> Callable[[Ctx], dict[str, Any]]:
    def inject(ctx: Ctx) -> dict[str, Any]:
        ctx.wait_for(f"{run} step {k}", lambda: ctx.live_lines(run) >= k)
        jobs = []
        for p in session_processes(ctx.proc.pid):
            with contextlib.suppress(psutil.Error):
                if p.pid != ctx.proc.pid:
                    jobs.append(Path(p.cmdline()[-1]).name)
        ctx.proc.send_signal(signal.SIGKILL)
        return {
            "signal": "SIGKILL (controller only)",
            "live_lines_at_signal": ctx.live_lines(run),
            "jobs_left_running": jobs,
        }

    return inject


def kill_warmup(loss_lines: int) -> Callable[[Ctx], dict[str, Any]]:
    def inject(ctx: Ctx) -> dict[str, Any]:
        log = ctx.out / "logs" / "warmup" / "base.log"

        def lines() -> int:
            try:
                return log.read_text(errors="replace").count("{'loss'")
            except OSError:
                return 0

        ctx.wait_for(f"{loss_lines} warm-up loss lines", lambda: lines() >= loss_lines)
        pid = ctx.signal_job("warmup.py", signal.SIGKILL)
        return {"signal": "SIGKILL", "pid": pid, "loss_lines_at_signal": lines()}

    return inject


def safetensors_tensors(path: Path) -> tuple[int, dict[str, Any]]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    return 8 + n, {k: v for k, v in header.items() if k != "__metadata__"}


def alter_weights(path: Path, delta: float = 0.25) -> dict[str, Any]:
    """Add ``delta`` to every value of every float tensor, in place (same size, finite values, the
    same inode: the hard-linked copy under state/exported changes too), and restore the mtime."""
    import numpy as np

    st = path.stat()
    base, tensors = safetensors_tensors(path)
    kinds = {"F32": np.float32, "F16": np.float16, "F64": np.float64}
    changed = []
    with open(path, "r+b") as fh:
        for name, info in tensors.items():
            if info["dtype"] not in kinds:
                continue
            begin, end = info["data_offsets"]
            fh.seek(base + begin)
            values = np.frombuffer(fh.read(end - begin), dtype=kinds[info["dtype"]]).copy()
            values += delta
            fh.seek(base + begin)
            fh.write(values.tobytes())
            changed.append(name)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    if not changed:
        raise NotInjected(f"{path}: no float tensor to alter")
    return {"file": str(path), "tensors_altered": len(changed), "delta": delta, "mtime_restored": True}


def alter_adapter_before_eval(run: str, step: int) -> Callable[[Ctx], dict[str, Any]]:
    """Once the run's train job published (its metrics.jsonl appears, the job's last write), alter the
    adapter of step_N in place before any evaluation job loads it."""

    def inject(ctx: Ctx) -> dict[str, Any]:
        published = ctx.out / "runs" / run / "metrics.jsonl"
        ctx.wait_for(f"{run}'s published metrics.jsonl", published.exists)
        path = ctx.out / "runs" / run / "checkpoints" / f"step_{step}" / "adapter_model.safetensors"
        return alter_weights(path)

    return inject


def alter_adapter_after_run(project: Path) -> dict[str, Any]:
    return alter_weights(
        project / OUT / "runs" / GRPO / "checkpoints" / "step_20" / "adapter_model.safetensors"
    )


def truncate_model(project: Path) -> dict[str, Any]:
    path = project / OUT / "runs" / PPO / "checkpoints" / "step_10" / "model.safetensors"
    size = path.stat().st_size
    os.truncate(path, size // 2)
    return {"file": str(path), "size": size, "truncated_to": size // 2}


def delete_scores(project: Path) -> dict[str, Any]:
    path = project / OUT / "eval" / PPO / "step_20" / "scores.jsonl"
    path.unlink()
    return {"deleted": str(path)}


def nan_reward(project: Path) -> dict[str, Any]:
    path = project / OUT / "runs" / GRPO / "metrics.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        row = json.loads(line)
        if row.get("step") == 5 and "reward" in row:
            old = row["reward"]
            row["reward"] = "NaN"
            lines[i] = json.dumps(row) + "\n"
            path.write_text("".join(lines))
            return {"file": str(path), "line": i + 1, "reward_was": old, "now": "NaN"}
    raise NotInjected(f"{path}: no step-5 reward line")


def agent(event: str, path: str, action: str, **kw: Any) -> dict[str, Any]:
    return {"event": event, "path": path, "action": action, **kw}


# 1. SIGKILL of a training job at random times (steps drawn once with random.Random(23), kept fixed)
fault(
    name="kill-grpo-step7",
    group="1 kill",
    start="pretrain",
    injector=kill_at_line(GRPO, 7),
    how="SIGKILL to the grpo-lora train process once its live metrics hold 7 steps (before checkpoint 10)",
)
fault(
    name="kill-grpo-step14",
    group="1 kill",
    start="pretrain",
    injector=kill_at_line(GRPO, 14),
    how="SIGKILL to the grpo-lora train process at live step 14 (after checkpoint 10)",
)
fault(
    name="kill-ppo-step4",
    group="1 kill",
    start="pretrain",
    injector=kill_at_line(PPO, 4),
    how="SIGKILL to the ppo train process at live step 4 (before the first checkpoint)",
)
fault(
    name="kill-ppo-step16",
    group="1 kill",
    start="pretrain",
    injector=kill_at_line(PPO, 16),
    how="SIGKILL to the ppo train process at live step 16 (after checkpoint 10)",
)
# 2. kills inside a saving window (the agent kills its own process with SIGKILL at that moment)
fault(
    name="kill-grpo-torn-trainer-state",
    group="2 kill in save",
    start="pretrain",
    agent=agent("open", state(GRPO) + STAGED + r"checkpoint-10/trainer_state\.json$", "kill"),
    how="SIGKILL right after checkpoint-10/trainer_state.json is opened to write (0 bytes, first checkpoint)",
)
fault(
    name="kill-grpo-torn-trainer-state-20",
    group="2 kill in save",
    start="pretrain",
    agent=agent("open", state(GRPO) + STAGED + r"checkpoint-20/trainer_state\.json$", "torn_kill", keep=0.5),
    how="SIGKILL halfway through writing checkpoint-20/trainer_state.json (half; checkpoint-10 kept)",
)
fault(
    name="kill-grpo-mid-export",
    group="2 kill in save",
    start="pretrain",
    agent=agent("replace", state(GRPO) + r"/exported/step_10$", "kill", when="before"),
    how="SIGKILL after checkpoint-10 is complete, just before its export is renamed to exported/step_10",
)
fault(
    name="kill-grpo-exported-not-published",
    group="2 kill in save",
    start="pretrain",
    agent=agent("replace", state(GRPO) + r"/exported/step_10$", "kill", when="after"),
    how="SIGKILL right after the rename to exported/step_10, before checkpoints/step_10 is published",
)
fault(
    name="kill-ppo-mid-checkpoint",
    group="2 kill in save",
    start="pretrain",
    agent=agent(
        "open",
        state(PPO) + r"/(\.checkpoint-10\.[^/]*\.tmp|incoming/checkpoint-10)/trainer_state\.json$",
        "kill",
    ),
    how="SIGKILL while PPO writes checkpoint-10 (trainer_state.json opened in its temp dir)",
)
fault(
    name="kill-ppo-renamed-not-exported",
    group="2 kill in save",
    start="pretrain",
    agent=agent("replace", state(PPO) + r"/checkpoint-10$", "kill", when="after"),
    how="SIGKILL right after PPO renames its temp dir to checkpoint-10, before exported/step_10",
)
fault(
    name="kill-ppo-exported-not-published",
    group="2 kill in save",
    start="pretrain",
    agent=agent("replace", state(PPO) + r"/exported/step_10$", "kill", when="after"),
    how="SIGKILL right after the rename to exported/step_10, before checkpoints/step_10 is published",
)
# 3. graceful stops
fault(
    name="sigterm-grpo",
    group="3 SIGTERM/SIGINT",
    start="pretrain",
    injector=kill_at_line(GRPO, 13, signal.SIGTERM),
    how="SIGTERM to the grpo-lora train process at live step 13",
)
fault(
    name="sigterm-ppo",
    group="3 SIGTERM/SIGINT",
    start="pretrain",
    injector=kill_at_line(PPO, 13, signal.SIGTERM),
    how="SIGTERM to the ppo train process at live step 13",
)
fault(
    name="sigint-grpo",
    group="3 SIGTERM/SIGINT",
    start="pretrain",
    injector=kill_at_line(GRPO, 13, signal.SIGINT),
    how="SIGINT to the grpo-lora train process at live step 13",
)
fault(
    name="ctrl-c-ppo",
    group="3 SIGTERM/SIGINT",
    start="pretrain",
    injector=ctrl_c_group(PPO, 13),
    how="Ctrl-C in the terminal: SIGINT to the whole process group (controller and jobs) at ppo live step 13",
)
# 4. a full disk (ENOSPC once, from the agent; the rerun has space)
fault(
    name="enospc-grpo-checkpoint",
    group="4 disk full",
    start="pretrain",
    agent=agent("open", state(GRPO) + STAGED + r"checkpoint-20/trainer_state\.json$", "enospc", keep=0.0),
    how="OSError(ENOSPC) on the write of checkpoint-20/trainer_state.json (the file left empty)",
)
fault(
    name="enospc-ppo-metrics",
    group="4 disk full",
    start="pretrain",
    agent=agent("open", state(PPO) + r"/metrics\.jsonl$", "enospc", keep=0.5, nth=12),
    how="OSError(ENOSPC) halfway through appending step 12's line to ppo's live metrics.jsonl",
)
# 5. a torn last line of the live metrics
fault(
    name="torn-metrics-grpo",
    group="5 torn metrics line",
    start="pretrain",
    agent=agent("open", state(GRPO) + r"/metrics\.jsonl$", "torn_kill", keep=0.5, nth=13),
    how="SIGKILL halfway through appending step 13's line to grpo-lora's live metrics.jsonl",
)
# 6. corrupted files
fault(
    name="alter-adapter-after-run",
    group="6 corrupted file",
    start="final",
    offline=alter_adapter_after_run,
    how="finished run: grpo-lora step_20 adapter_model.safetensors altered in place "
    "(+0.25, finite, same size, mtime restored)",
)
fault(
    name="alter-adapter-before-eval",
    group="6 corrupted file",
    start="pretrain",
    injector=alter_adapter_before_eval(GRPO, 20),
    how="grpo-lora step_20 adapter altered in place (mtime restored) once its train job published, "
    "before evaluation",
)
fault(
    name="truncate-ppo-model",
    group="6 corrupted file",
    start="final",
    offline=truncate_model,
    how="finished run: ppo checkpoints/step_10/model.safetensors truncated to half",
)
fault(
    name="delete-scores",
    group="6 corrupted file",
    start="final",
    offline=delete_scores,
    how="finished run: eval/ppo/step_20/scores.jsonl deleted",
)
fault(
    name="nan-reward-in-metrics",
    group="6 corrupted file",
    start="final",
    offline=nan_reward,
    how='finished run: step 5\'s reward in published runs/grpo-lora/metrics.jsonl set to the string "NaN"',
)
# 7. the project moved
fault(
    name="move-project",
    group="7 moved project",
    start="final",
    move=True,
    how="finished run: the project folder renamed to another path; snakemake -n, then the command",
)
# 8. the controller killed
fault(
    name="kill-controller",
    group="8 controller killed",
    start="pretrain",
    injector=kill_controller(PPO, 8),
    lock=True,
    how="SIGKILL to the snakemake controller (only) at ppo live step 8; its orphaned job runs to its end",
)
# 9. the SFT warm-up killed
fault(
    name="kill-warmup",
    group="9 warm-up killed",
    start="scratch",
    injector=kill_warmup(8),
    how="SIGKILL to the warm-up job after its 8th loss line (step ~48 of 120)",
)


# ----------------------------------------------------------------------------------------------
# Comparing outputs with the clean reference

#: metrics keys that measure time, not training
VOLATILE = re.compile(r"time|runtime|per_second|_per_s$|elapsed")


#: files whose bytes differ between two clean runs: PEFT writes ``target_modules`` from a Python set,
#: in an order that changes with the interpreter's string-hash seed (PYTHONHASHSEED)
UNORDERED = "adapter_config.json"


def sha(path: Path) -> str:
    """Content hash, canonical where the bytes are not reproducible between two clean runs: the
    ``target_modules`` of an ``adapter_config.json`` sorted, and in a checkpoint's ``manifest.json``
    (HEAD's checkpoint transaction) that file's recorded hash left out (its size stays)."""
    data = path.read_bytes()
    if path.name in (UNORDERED, "manifest.json"):
        with contextlib.suppress(ValueError):
            doc = json.loads(data)
            if path.name == UNORDERED and isinstance(doc.get("target_modules"), list):
                doc["target_modules"] = sorted(doc["target_modules"])
            files = doc.get("files") if isinstance(doc, dict) else None
            if isinstance(files, dict) and isinstance(files.get(UNORDERED), dict):
                files[UNORDERED].pop("sha256", None)
            data = json.dumps(doc, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:16]


#: a fingerprint key with this suffix is secondary: reported, but no reason for "silently_wrong"
SECONDARY = " [secondary]"


def fingerprint(project: Path) -> dict[str, str]:
    """What must equal the clean run: published checkpoints byte for byte, evaluation files,
    scores.csv, the tables (cost.csv aside: wall times), the learning diagnostics and the per-step
    training metrics without their timing keys. Secondary: the trainer's closing summary rows of
    ``metrics.jsonl`` (TRL's ``train_loss`` there averages the last segment only, after a resume)."""
    out = project / OUT
    fp: dict[str, str] = {}
    for f in sorted((out / "runs").glob("*/checkpoints/*/*")):
        if f.is_file():
            fp[str(f.relative_to(out))] = sha(f)
    patterns = (
        "eval/*/step_*/*.jsonl",
        "eval/*/step_*/summary.csv",
        "scores.csv",
        "tables/*.csv",
        "diagnostics/*.json",
    )
    for pattern in patterns:
        for f in sorted(out.glob(pattern)):
            if f.name != "cost.csv":
                fp[str(f.relative_to(out))] = sha(f)
    for f in sorted((out / "runs").glob("*/metrics.jsonl")):
        steps, summaries = [], []
        for line in f.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = {"unparsable": line}
            clean = {k: v for k, v in row.items() if not VOLATILE.search(k)}
            (summaries if "train_runtime" in row else steps).append(clean)
        name = str(f.relative_to(out))
        fp[name + " (step rows, no timings)"] = digest(steps)
        fp[name + " (summary rows)" + SECONDARY] = digest(summaries)
    return fp


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def compare(fp: dict[str, str], ref: dict[str, str]) -> dict[str, list[str]]:
    diff = {
        "missing": sorted(set(ref) - set(fp)),
        "extra": sorted(set(fp) - set(ref)),
        "different": sorted(k for k in set(fp) & set(ref) if fp[k] != ref[k]),
    }
    return {k: v for k, v in diff.items() if v}


def primary(diff: dict[str, list[str]]) -> dict[str, list[str]]:
    kept = {k: [x for x in v if not x.endswith(SECONDARY)] for k, v in diff.items()}
    return {k: v for k, v in kept.items() if v}


# ----------------------------------------------------------------------------------------------
# The reference and one fault


@dataclass
class Reference:
    rev: str | None
    workdir: Path
    pristine: Path  # the clean tree, no results
    snapshots: dict[str, Path]  # "pretrain", "final"
    fingerprint: dict[str, str]
    timings: dict[str, float]
    attempts: list[dict[str, Any]]
    config_check: str


def pretrain_targets() -> list[str]:
    """Everything before training: data, warm-up, pre-flight of each run, the base model's evaluation."""
    return [f"{OUT}/preflight/{r}.json" for r in RUNS] + [f"{OUT}/eval/base/step_0/summary.csv"]


def prepare_reference(rev: str | None, workdir: Path, *, slot: int = 0) -> Reference:
    """Export the tree of ``rev``, check the config, run the clean reference (in two stages, snapshot
    after each) at the slot's project path, and fingerprint its outputs."""
    workdir.mkdir(parents=True, exist_ok=True)
    pristine = workdir / "pristine"
    if pristine.exists():
        shutil.rmtree(pristine)
    export_tree(rev, pristine)
    check = validate_config(pristine)
    if check:
        raise RuntimeError(f"{CONFIG_REL} does not validate at {rev or 'the working tree'}: {check}")
    project = slot_project(workdir, slot)
    fresh_project(pristine, project)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    attempts = []
    a = run_snakemake(project, logs / "reference-pretrain.log", extra=pretrain_targets())
    attempts.append(a)
    if a["rc"]:
        raise RuntimeError(f"reference (pretrain stage) failed: {a['error']}")
    take_snapshot(project, workdir / "snapshots" / "pretrain")
    b = run_snakemake(project, logs / "reference-final.log")
    attempts.append(b)
    if b["rc"]:
        raise RuntimeError(f"reference (final stage) failed: {b['error']}")
    take_snapshot(project, workdir / "snapshots" / "final")
    ref = Reference(
        rev=rev,
        workdir=workdir,
        pristine=pristine,
        snapshots={"pretrain": workdir / "snapshots" / "pretrain", "final": workdir / "snapshots" / "final"},
        fingerprint=fingerprint(project),
        timings={
            "pretrain_s": a["seconds"],
            "rest_s": b["seconds"],
            "total_s": round(a["seconds"] + b["seconds"], 1),
        },
        attempts=attempts,
        config_check=check or "valid",
    )
    (workdir / "reference.json").write_text(json.dumps(ref.fingerprint, indent=1))
    return ref


def slot_project(workdir: Path, slot: int) -> Path:
    return workdir / f"slot{slot}" / "rlpipe"


def fresh_project(pristine: Path, project: Path) -> None:
    if project.exists():
        shutil.rmtree(project)
    project.parent.mkdir(parents=True, exist_ok=True)
    copy_tree(pristine, project)
    (project / ".snakemake").mkdir(exist_ok=True)


def run_fault(
    name: str,
    project_dir: Path,
    *,
    reference: Reference | None = None,
    rev: str | None = None,
    reruns: int = 3,
    keep: bool = False,
) -> dict[str, Any]:
    """Inject fault ``name`` into a fresh copy of the project at ``project_dir``, rerun the same
    command up to ``reruns`` times, classify. ``reference``: the revision's clean run (made here,
    beside ``project_dir``, when None). ``keep``: move the faulted project into ``<name>.work/``
    afterwards (logs of every attempt are there anyway)."""
    result = _run_fault(name, Path(project_dir).absolute(), reference, rev, reruns)
    project = Path(result.pop("_project"))
    if keep and project.exists():
        project.rename(project.parent / f"{name}.work" / "project")
    else:
        shutil.rmtree(project, ignore_errors=True)
        shutil.rmtree(project.parent / f"{name}.work", ignore_errors=True)
        for a in [*result.get("attempts", []), result.get("dry_run") or {}]:
            a.pop("log", None)
    return result


def _run_fault(
    name: str, project_dir: Path, reference: Reference | None, rev: str | None, reruns: int
) -> dict[str, Any]:
    f = FAULTS[name]
    if reference is None:
        reference = prepare_reference(rev, project_dir.parent / "reference")
    t0 = time.monotonic()
    work = project_dir.parent / f"{name}.work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    fresh_project(reference.pristine, project_dir)
    if f.start != "scratch":
        restore_snapshot(reference.snapshots[f.start], project_dir)
    project = project_dir
    result: dict[str, Any] = {
        "fault": name,
        "group": f.group,
        "where": f.how,
        "start": f.start,
        "attempts": [],
    }
    result["_project"] = str(project)
    injected: dict[str, Any] = {}
    try:
        if f.offline is not None:
            injected = {"ok": True, **f.offline(project)}
        elif f.move:
            moved = project.parent / (project.name + "-moved")
            if moved.exists():
                shutil.rmtree(moved)
            project.rename(moved)
            project = moved
            result["_project"] = str(project)
            injected = {"ok": True, "moved_to": str(moved)}
            dry = run_snakemake(project, work / "dry-run.log", extra=["-n"])
            out = Path(dry["log"]).read_text(errors="replace")
            planned = re.findall(r"^(?:rule|checkpoint) ([\w-]+):", out, re.M)
            dry["planned"] = [r for r in planned if r != "all"]
            dry["nothing_to_do"] = "Nothing to be done" in out
            result["dry_run"] = dry
        else:
            agent_spec = None
            agent_dir = None
            if f.agent is not None:
                agent_dir = write_agent(work / "agent")
                agent_spec = {**f.agent, "marker": str(work / "agent-fired.json")}
            a = run_snakemake(
                project, work / "attempt0.log", injector=f.injector, agent=agent_spec, agent_dir=agent_dir
            )
            a["faulted"] = True
            if f.agent is not None:
                marker = work / "agent-fired.json"
                a["injected"] = (
                    {"ok": True, **json.loads(marker.read_text())}
                    if marker.exists()
                    else {"ok": False, "why": "the agent's trigger never fired"}
                )
            injected = a.get("injected", {"ok": True})
            result["attempts"].append(a)
    except NotInjected as exc:
        injected = {"ok": False, "why": str(exc)}
    result["injected"] = injected
    if not injected.get("ok"):
        result["outcome"] = "not_injected"
        result["exit_codes"] = [a["rc"] for a in result["attempts"]]
        result["seconds"] = round(time.monotonic() - t0, 1)
        return result

    def rerun_until_done(label: str) -> dict[str, Any] | None:
        for i in range(1, max(1, reruns) + 1):  # at least one rerun, also after a faulted run that ended well
            a = run_snakemake(project, work / f"{label}{i}.log")
            result["attempts"].append(a)
            if a["rc"] == 0:
                return a
        return None

    done = rerun_until_done("rerun")
    if f.lock:
        says = any(
            "--unlock" in " ".join(a.get("error", []))
            or "--unlock" in Path(a["log"]).read_text(errors="replace")
            for a in result["attempts"][1:]
            if a["rc"]
        )
        if done is None and says:
            result["outcome"] = "error_says_what_to_run"
            # the person does what the error says: --unlock, then the same command
            unlock = run_snakemake(project, work / "unlock.log", extra=["--unlock"])
            unlock["person"] = True
            result["attempts"].append(unlock)
            after = rerun_until_done("after-unlock")
            result["after_person"] = classify(after, project, reference, result)
    if "outcome" not in result:
        result["outcome"] = classify(done, project, reference, result)
        if f.move and result["outcome"] == "recovered":
            ran = [r for a in result["attempts"] for r in a["rules_run"] if r != "all"]
            if ran or not result.get("dry_run", {}).get("nothing_to_do"):
                result["outcome"] = "needless_rerun"
    last_fail = next((a for a in reversed(result["attempts"]) if a["rc"]), None)
    result["last_error"] = last_fail["error"] if last_fail else []
    result["rerun_jobs"] = sum(
        1 for a in result["attempts"] if not a.get("faulted") for r in a["rules_run"] if r != "all"
    )
    result["exit_codes"] = [a["rc"] for a in result["attempts"]]
    result["seconds"] = round(time.monotonic() - t0, 1)
    return result


def classify(done: dict[str, Any] | None, project: Path, reference: Reference, result: dict[str, Any]) -> str:
    if done is None:
        return "needs_person"
    diff = compare(fingerprint(project), reference.fingerprint)
    result.setdefault("diff", diff)
    return "silently_wrong" if primary(diff) else "recovered"


# ----------------------------------------------------------------------------------------------
# The campaign


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "trl", "peft", "snakemake", "safetensors", "accelerate"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[pkg] = md.version(pkg)
    return out


def machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError):
        m = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = m.group(1).strip() if m else ""
    cpu = cpu or platform.processor()
    return f"{os.cpu_count()}-core CPU VM ({cpu}), {platform.system()} {platform.release()}"


def run_campaign(
    names: list[str],
    rev: str | None,
    workdir: Path,
    *,
    reruns: int = 3,
    jobs: int = 1,
    keep: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    t0 = time.monotonic()
    info = resolve_rev(rev)
    log(f"reference run at {info['label']} in {workdir}")
    ref = prepare_reference(rev, workdir)
    log(f"reference: {ref.timings} ({len(ref.fingerprint)} files fingerprinted)")
    # with several workers each slot restores the snapshots to its own path (metadata rewritten)
    slots = list(range(jobs))
    free = list(slots)
    results: dict[str, dict[str, Any]] = {}

    def one(name: str) -> dict[str, Any]:
        slot = free.pop()
        try:
            r = run_fault(name, slot_project(workdir, slot), reference=ref, reruns=reruns, keep=keep)
        except Exception as exc:  # a harness failure: recorded, the campaign goes on
            r = {
                "fault": name,
                "group": FAULTS[name].group,
                "where": FAULTS[name].how,
                "outcome": "harness_error",
                "error": repr(exc),
            }
        finally:
            free.append(slot)
        log(f"{name}: {r['outcome']} ({r.get('seconds', '?')} s, exit codes {r.get('exit_codes')})")
        return r

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for r in pool.map(one, names):
            results[r["fault"]] = r
    ordered = [results[n] for n in names]
    counts = {o: sum(r["outcome"] == o for r in ordered) for o in (*OUTCOMES, "harness_error")}
    return {
        "date": date.today().isoformat(),
        "revision": info,
        "machine": machine(),
        "versions": versions(),
        "command": "snakemake --cores 1 --configfile bench/fault_campaign.yaml",
        "config": CONFIG.read_text(),
        "reruns": reruns,
        "jobs": jobs,
        "reference": {
            "timings_s": ref.timings,
            "config_check": ref.config_check,
            "fingerprinted_files": len(ref.fingerprint),
            "attempts": ref.attempts,
        },
        "counts": {k: v for k, v in counts.items() if v},
        "faults": ordered,
        "wall_s": round(time.monotonic() - t0, 1),
    }


def markdown(report: dict[str, Any]) -> str:
    rev = report["revision"]
    lines = [
        f"# Fault-injection campaign (issue 23) at {rev['label']}",
        "",
        f"Date {report['date']}; {report['machine']}; "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items())
        + ".",
        "",
        f"Experiment `bench/fault_campaign.yaml` (tiny model, SFT warm-up, `grpo-lora` and `ppo`, 20 steps, "
        f"checkpoints every 10, every checkpoint and the base evaluated). Each fault: a fresh copy of the "
        f"project, the fault injected, then `{report['command']}` rerun up to {report['reruns']} times "
        f"with no human action. Clean reference run: {report['reference']['timings_s']['total_s']} s "
        f"({report['reference']['timings_s']['pretrain_s']} s up to training, "
        f"{report['reference']['timings_s']['rest_s']} s for the rest); campaign wall time "
        f"{report['wall_s'] / 60:.1f} min.",
        "",
        "Outcomes: "
        + ", ".join(f"**{k}** {v}" for k, v in report["counts"].items())
        + f" (of {len(report['faults'])}).",
        "",
        "| # | fault | issue item | where / how | exit codes (faulted run, reruns) | outcome | jobs rerun | s"
        " "
        "| what the last failure said / what differs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(report["faults"], 1):
        note = ""
        diff = r.get("diff") or {}
        if primary(diff):
            parts = [
                f"{k}: {', '.join(v[:4])}{' ...' if len(v) > 4 else ''}" for k, v in primary(diff).items()
            ]
            note = "differs from the clean run: " + "; ".join(parts)
        elif r.get("last_error"):
            note = " / ".join(cause(r["last_error"]))
        if primary(diff) and not r.get("rerun_jobs"):
            note = "nothing reran; " + note
        secondary = [x.removesuffix(SECONDARY) for v in diff.values() for x in v if x.endswith(SECONDARY)]
        if secondary:
            note += f" (secondary, not counted: {', '.join(secondary)} differ)"
        if r.get("after_person"):
            note = f"after `--unlock`: {r['after_person']}. " + note
        if r.get("dry_run"):
            planned = r["dry_run"].get("planned", [])
            note = f"`snakemake -n` planned {len(planned)} jobs ({', '.join(sorted(set(planned)))}). " + note
        if r["outcome"] == "not_injected":
            note = r.get("injected", {}).get("why", "")
        note = note.replace("|", "\\|").replace("\n", " ")[:400]
        codes = ", ".join(str(c) for c in r.get("exit_codes", []))
        lines.append(
            f"| {i} | `{r['fault']}` | {r['group']} | {r['where']} | {codes} | **{r['outcome']}** | "
            f"{r.get('rerun_jobs', '')} | {r.get('seconds', '')} | {note} |"
        )
    if report.get("notes"):
        lines += ["", "## Observations", ""] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--faults", help="comma-separated fault names (default: all); --list shows them")
    p.add_argument("--rev", help="git revision to measure (default: the working tree)")
    p.add_argument("--out", help="write OUT.json and OUT.md (default: print the table)")
    p.add_argument(
        "--jobs", type=int, default=1, help="faults run at once, each in its own project copy (default 1)"
    )
    p.add_argument("--reruns", type=int, default=3, help="reruns of the same command per fault (default 3)")
    p.add_argument(
        "--workdir", help="where project copies live (default: a new temp dir, removed at the end)"
    )
    p.add_argument("--keep", action="store_true", help="keep the work dir")
    p.add_argument("--list", action="store_true", help="list the faults and exit")
    p.add_argument("--render", metavar="JSON", help="only write the markdown table of a saved campaign JSON")
    args = p.parse_args(argv)
    if args.render:
        table = markdown(json.loads(Path(args.render).read_text()))
        Path(args.render).with_suffix(".md").write_text(table)
        print(table)
        return 0
    if args.list:
        for f in FAULTS.values():
            print(f"{f.name:34s} [{f.group}] {f.how}")
        return 0
    names = args.faults.split(",") if args.faults else list(FAULTS)
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        p.error(f"unknown faults: {', '.join(unknown)} (--list)")
    with contextlib.suppress(OSError):
        os.nice(max(0, 10 - os.nice(0)))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="fault-campaign-")).absolute()
    try:
        report = run_campaign(
            names,
            args.rev,
            workdir,
            reruns=args.reruns,
            jobs=args.jobs,
            keep=args.keep or bool(args.workdir),
            log=lambda s: print(s, flush=True),
        )
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    table = markdown(report)
    if args.out:
        Path(args.out + ".json").write_text(json.dumps(report, indent=1) + "\n")
        Path(args.out + ".md").write_text(table)
        print(f"wrote {args.out}.json and {args.out}.md")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
