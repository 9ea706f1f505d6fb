"""How rule ``train`` runs one training run: in-process, or through ``accelerate launch`` on several GPUs.

* ``resources.gpus <= 1`` (and one node): the trainer runs in the Snakemake job's own process, as it
  always has.
* ``resources.gpus > 1``: the job runs ``accelerate launch`` with a config from ``config/accelerate/``
  (the run's ``accelerate`` key: a name or a path; by default the method's ``accelerate_default``:
  ``fsdp`` for GRPO, ``ddp`` for PPO) and ``--num_processes`` = the run's GPUs; each process runs
  ``python -m rlpipe.train.launch worker <spec>``, which calls ``rlpipe.train.run.run_training``, as
  the in-process path does. GRPO is TRL's: accelerate wraps it as the config says (FSDP, ZeRO-3).
  rlpipe's PPO (with or without PCGrad) is data-parallel with a full replica per process and explicit gradient
  all-reduces (``rlpipe.train.distributed``), so it takes the ``ddp`` config (``MULTI_GPU``).
  The same config runs on a machine without GPUs: torchrun starts the processes and the trainer
  joins a gloo group instead of NCCL (the multi-process tests use exactly this path).
* ``resources.nodes > 1``: the job runs inside a SLURM allocation of that many nodes. It starts one
  task per node with ``srun``; each task (``python -m rlpipe.train.launch node <spec>``) reads its
  ``SLURM_NODEID`` as the machine rank and runs ``accelerate launch`` with ``--num_machines``,
  ``--machine_rank`` and the main process address = the first host of ``scontrol show hostnames
  $SLURM_JOB_NODELIST`` (resolved once, by the job, and written into the spec). ``resources.gpus`` is
  the total over all nodes and must split evenly.

Only the command is built here; accelerate (torchrun underneath) does the launching, rendezvous and
signal forwarding. The spec (run, paths, log) is a JSON file in the run's state directory, so a
retried job finds it again. What cannot run as several processes (``single_process_only``: each
method's ``single_process_reason``, e.g. GRPO with PCGrad, PPO under a sharding config) is refused
with one line while the config loads.

This module must stay importable without torch: ``rlpipe.config`` uses it to check configs at parse.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rlpipe.train.methods import SpecError, build_spec, method_of

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[3]
ACCELERATE_DIR = ROOT / "config" / "accelerate"
# Rendezvous port of a multi-node run: every node must compute the same one, so it comes from the
# job id (two jobs sharing a node then rarely collide); a single-node run takes a free port instead.
PORT_BASE, PORT_SPAN = 20000, 20000
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class LaunchError(ValueError):
    """A run that cannot be launched as configured; the message names the setting to change."""


# --------------------------------------------------------------------------------------------------
# The run's topology and accelerate config (also checked while the config loads)


def gpus(run: Mapping[str, Any]) -> int:
    return int(run.get("resources", {}).get("gpus", 0))


def nodes(run: Mapping[str, Any]) -> int:
    return int(run.get("resources", {}).get("nodes", 1))


def is_distributed(run: Mapping[str, Any]) -> bool:
    """Whether the run goes through ``accelerate launch`` (more than one GPU or node)."""
    return gpus(run) > 1 or nodes(run) > 1


def processes_per_node(run: Mapping[str, Any]) -> int:
    """GPUs (= training processes) on each node; the total must split evenly over the nodes."""
    total, n = gpus(run), nodes(run)
    if n > 1 and total < n:
        raise LaunchError(f"resources.nodes: {n} needs resources.gpus >= {n} (the total over all nodes)")
    if total % n:
        raise LaunchError(f"resources.gpus ({total}, the total) must be divisible by resources.nodes ({n})")
    return max(1, total // n)


def accelerate_config(run: Mapping[str, Any], root: Path = ROOT) -> Path:
    """The ``accelerate launch --config_file``: ``config/accelerate/<name>.yaml`` or a path.

    Without an ``accelerate`` key: the method's default (``ddp`` for PPO, the only kind it runs under).
    """
    ref = run.get("accelerate") or method_of(run).accelerate_default
    if Path(ref).suffix in (".yaml", ".yml"):
        candidates = [Path(ref), root / ref]
    else:
        candidates = [root / "config" / "accelerate" / f"{ref}.yaml"]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        known = ", ".join(sorted(p.stem for p in (root / "config" / "accelerate").glob("*.yaml")))
        raise LaunchError(f"accelerate: {ref!r} is not a file (looked in {candidates[-1]}; known: {known})")
    return found.resolve()


def distributed_type(config: Path) -> str:
    """accelerate's ``distributed_type`` of a config file (``NO`` when it has none)."""
    import yaml

    return str((yaml.safe_load(config.read_text()) or {}).get("distributed_type", "NO"))


def single_process_only(run: Mapping[str, Any]) -> str | None:
    """Why the run cannot train as several processes as configured, or None when it can.

    The method says (``Method.single_process_reason``) from its spec (``build_spec``: a run the
    method refuses outright raises ``SpecError``) and the ``distributed_type`` of the run's accelerate
    config.
    """
    spec = build_spec(run)
    try:
        kind = distributed_type(accelerate_config(run))
    except LaunchError as exc:
        return str(exc)
    return spec.method.single_process_reason(spec, kind)


# --------------------------------------------------------------------------------------------------
# SLURM


def slurm_hostnames(nodelist: str) -> list[str]:
    """The host names of a SLURM node list (``node[01-03]``), through ``scontrol show hostnames``."""
    try:
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise LaunchError(f"scontrol show hostnames {nodelist} failed: {exc}") from None
    hosts = out.split()
    if not hosts:
        raise LaunchError(f"scontrol show hostnames {nodelist} printed no host")
    return hosts


def slurm_main_address(
    run: Mapping[str, Any],
    env: Mapping[str, str],
    hostnames: Callable[[str], list[str]] = slurm_hostnames,
) -> tuple[str, int]:
    """``(main process host, port)`` of a multi-node run from its SLURM allocation.

    The allocation must have the run's node count: a job started outside SLURM, or with too few nodes,
    fails here with the resource to set.
    """
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist or not env.get("SLURM_JOB_ID"):
        raise LaunchError(
            f"resources.nodes: {nodes(run)} runs inside a SLURM allocation of {nodes(run)} nodes "
            "(SLURM_JOB_NODELIST / SLURM_JOB_ID are not set); use the slurm profile"
        )
    hosts = hostnames(nodelist)
    allocated = int(env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES") or len(hosts))
    if allocated != nodes(run) or len(hosts) != nodes(run):
        raise LaunchError(
            f"resources.nodes: {nodes(run)}, but the SLURM allocation has {allocated} node(s) "
            f"({', '.join(hosts)}); the train job must request nodes={nodes(run)}"
        )
    return hosts[0], PORT_BASE + int(env["SLURM_JOB_ID"]) % PORT_SPAN


def free_port() -> int:
    """A TCP port free on this host now (the single-node rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------------
# Commands


def accelerate_command(
    spec: Mapping[str, Any],
    spec_path: str | os.PathLike[str],
    *,
    machine_rank: int = 0,
    python: str = sys.executable,
) -> list[str]:
    """``accelerate launch`` of the worker on one machine (run as ``python -m accelerate.commands.launch``).

    The interpreter is the job's own, so the launcher and the workers use the job's environment
    (conda env, container) whatever ``accelerate`` is first on the PATH. Flags override the values in
    the config file (num_processes etc. there are placeholders).
    """
    run = spec["run"]
    cmd = [
        python, "-m", "accelerate.commands.launch",
        "--config_file", str(spec["accelerate_config"]),
        "--num_processes", str(gpus(run)),
        "--num_machines", str(nodes(run)),
        "--machine_rank", str(machine_rank),
        "--main_process_port", str(spec["main_process_port"]),
    ]  # fmt: skip
    if nodes(run) > 1:
        cmd += ["--main_process_ip", str(spec["main_process_ip"])]
    return [*cmd, "--module", "rlpipe.train.launch", "worker", str(spec_path)]


def srun_command(
    spec: Mapping[str, Any], spec_path: str | os.PathLike[str], python: str = sys.executable
) -> list[str]:
    """One task per node of the allocation, each running ``rlpipe.train.launch node`` (its machine rank).

    ``--overlap``: the Snakemake job itself may be a job step already (the slurm executor runs jobs
    through srun), and the node tasks share its resources.
    """
    run = spec["run"]
    n = nodes(run)
    return [
        "srun", "--overlap", f"--nodes={n}", f"--ntasks={n}", "--ntasks-per-node=1",
        f"--gpus-per-node={processes_per_node(run)}", "--kill-on-bad-exit=1",
        python, "-m", "rlpipe.train.launch", "node", str(spec_path),
    ]  # fmt: skip


def node_command(
    spec: Mapping[str, Any],
    spec_path: str | os.PathLike[str],
    env: Mapping[str, str],
    python: str = sys.executable,
) -> list[str]:
    """The ``accelerate launch`` of the node this task runs on: machine rank = ``SLURM_NODEID``."""
    if "SLURM_NODEID" not in env:
        raise LaunchError("rlpipe.train.launch node runs as an srun task (SLURM_NODEID is not set)")
    rank = int(env["SLURM_NODEID"])
    if not 0 <= rank < nodes(spec["run"]):
        raise LaunchError(f"SLURM_NODEID {rank} is outside the run's {nodes(spec['run'])} nodes")
    return accelerate_command(spec, spec_path, machine_rank=rank, python=python)


def launch_spec(
    run: dict[str, Any],
    paths: Mapping[str, str],
    *,
    threads: int = 1,
    env: Mapping[str, str] | None = None,
    hostnames: Callable[[str], list[str]] = slurm_hostnames,
) -> dict[str, Any]:
    """Everything the workers need: the run, absolute paths, the accelerate config and the rendezvous.

    ``paths``: ``policy``, ``train``, ``checkpoints``, ``state_dir``, ``metrics`` (as for the trainers)
    and ``log`` (the rule's log, which every worker appends to). ``threads``: CPU threads per worker.
    """
    env = os.environ if env is None else env
    processes_per_node(run)
    accelerate_config(run)
    try:
        reason = single_process_only(run)
    except SpecError as exc:
        reason = str(exc)
    if reason:
        raise LaunchError(f"run {run['name']}: {reason}; or set resources.gpus: 1")
    spec: dict[str, Any] = {
        "run": run,
        # absolute, for the workers; a path the run does not use (validation, without early stopping): None
        "paths": {k: None if v is None else str(Path(v).resolve()) for k, v in paths.items()},
        "accelerate_config": str(accelerate_config(run)),
        "threads": int(threads),
    }
    if nodes(run) > 1:
        spec["main_process_ip"], spec["main_process_port"] = slurm_main_address(run, env, hostnames)
    else:
        spec["main_process_port"] = free_port()
    return spec


def job_command(
    spec: Mapping[str, Any], spec_path: str | os.PathLike[str], python: str = sys.executable
) -> list[str]:
    """The command the Snakemake job runs: accelerate launch on one node, srun over several."""
    if nodes(spec["run"]) > 1:
        return srun_command(spec, spec_path, python)
    return accelerate_command(spec, spec_path, python=python)


def run_forwarding_signals(cmd: Sequence[str], log_path: str | os.PathLike[str] | None = None) -> int:
    """Run ``cmd``, passing SIGTERM/SIGUSR1/SIGINT on to it (SLURM's warnings reach the workers, which
    checkpoint and exit non-zero); returns its exit status. Output goes to ``log_path`` (appended)."""
    out = open(log_path, "a", buffering=1) if log_path else None  # noqa: SIM115 (closed below)
    try:
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT if out else None)
        previous = {}

        def forward(signum: int, frame: Any) -> None:
            log.warning("forwarding %s to the launcher (pid %d)", signal.Signals(signum).name, proc.pid)
            proc.send_signal(signum)

        for sig in FORWARDED_SIGNALS:
            try:
                previous[sig] = signal.signal(sig, forward)
            except ValueError:  # not the main thread: signals stay with the default handlers
                break
        try:
            return proc.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        if out:
            out.close()


def launch(run: dict[str, Any], paths: Mapping[str, str], threads: int = 1) -> None:
    """Train ``run`` on its GPUs through accelerate (see ``launch_spec`` for ``paths``); ``threads`` is
    the job's CPU thread count, split over the processes of a node.

    Raises ``SystemExit`` with the launcher's status when it fails or is interrupted, so the job fails
    and a retry resumes from the workers' last checkpoint.
    """
    from rlpipe.tracking.io import write_json

    # the job's CPU threads are shared by the processes of its node
    spec = launch_spec(run, paths, threads=max(1, threads // processes_per_node(run)))
    spec_path = Path(spec["paths"]["state_dir"]) / "launch.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(spec_path, spec)
    cmd = job_command(spec, spec_path)
    log.info("run %s on %d GPU(s), %d node(s): %s", run["name"], gpus(run), nodes(run), " ".join(cmd))
    status = run_forwarding_signals(cmd, spec["paths"].get("log"))
    if status:
        log.error(
            "run %s: the launcher exited with status %d (the workers' lines are above)", run["name"], status
        )
        raise SystemExit(status)


# --------------------------------------------------------------------------------------------------
# Entry points: ``python -m rlpipe.train.launch node|worker <spec.json>``


def worker(spec: Mapping[str, Any]) -> None:
    """One training process (one GPU): ``run_training``, as the in-process path."""
    from rlpipe.models import hub_kernels_enabled
    from rlpipe.runtime import init_job
    from rlpipe.tracking.logs import script_logging
    from rlpipe.train.accelerate_cpu import configure_cpu_worker
    from rlpipe.train.run import run_training

    run, paths = dict(spec["run"]), spec["paths"]
    with script_logging(paths.get("log")):
        rank = os.environ.get("RANK", "0")
        log.info(
            "worker rank %s of %s (local rank %s)",
            rank,
            os.environ.get("WORLD_SIZE"),
            os.environ.get("LOCAL_RANK"),
        )
        # the Hub-kernel switch comes from the launching job's environment (workflow/scripts/train.py)
        init_job(int(spec.get("threads", 1)), run["seed"], hub_kernels=hub_kernels_enabled())
        # without a GPU: FSDP stays FSDP (accelerate would fall back to DDP) and float32 as in one process
        configure_cpu_worker()
        run_training(run, paths)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("node", "worker"):
        raise SystemExit("usage: python -m rlpipe.train.launch node|worker <launch.json>")
    mode, spec_path = args
    spec = json.loads(Path(spec_path).read_text())
    if mode == "worker":
        worker(spec)
        return
    cmd = node_command(spec, spec_path, os.environ)
    os.execv(cmd[0], cmd)  # the node's accelerate launcher replaces this task: srun signals reach it


if __name__ == "__main__":
    main()
