"""A real SLURM cluster for the tests in this folder, brought up by the test session when asked to.

* ``CI=true`` (as in ``.ci/run``) or ``RLPIPE_SLURM_TESTS=1``: the session runs
  ``bash tests/slurm/cluster.sh up`` (root; installs the Debian packages on a fresh machine) before
  the first SLURM test and ``cluster.sh down`` at the end, if it was not up already. A cluster that
  does not come up fails the tests: in CI they must run, not skip.
* Otherwise the tests use a cluster that already answers, and skip with the reason when there is none.

The durations (cluster up, each workflow run) are printed in pytest's terminal summary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "tests" / "slurm" / "cluster.sh"
CLUSTER_UP_TIMEOUT_S = 600  # apt-get update + install on a fresh machine is ~20-30 s; this is the hard cap
#: name -> seconds, printed at the end of the session
DURATIONS: dict[str, float] = {}


def cluster_problem() -> str | None:
    """Why no test can run here, or None when a cluster answers and has a usable node and sacct."""
    for tool in ("sinfo", "sbatch", "sacct", "scancel", "squeue"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found: no SLURM client here"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15)
        nodes = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
        sacct = subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"SLURM not answering: {err}"
    if ping.returncode != 0 or "UP" not in ping.stdout:
        said = (ping.stdout.strip() or ping.stderr.strip()).splitlines()
        return f"slurmctld not up (scontrol ping: {said[0] if said else ping.returncode})"
    states = nodes.stdout.split()
    if not any(s.rstrip("*~#$@").startswith(("idle", "mix", "alloc")) for s in states):
        return f"no usable SLURM node (sinfo states: {states or 'none'})"
    if sacct.returncode != 0:
        return f"sacct does not work (accounting off?): {sacct.stderr.strip()}"
    return None


def _bring_up() -> None:
    if os.geteuid() != 0:
        pytest.fail(f"{CLUSTER_SH} up needs root (CI=true / RLPIPE_SLURM_TESTS=1 ask for a cluster)")
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            ["bash", str(CLUSTER_SH), "up"],
            capture_output=True,
            text=True,
            timeout=CLUSTER_UP_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"cluster.sh up did not finish in {CLUSTER_UP_TIMEOUT_S} s:\n{err.stdout}\n{err.stderr}")
    DURATIONS["cluster up (cluster.sh up, incl. apt)"] = time.monotonic() - t0
    if proc.returncode != 0:
        said = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        pytest.fail(f"cluster.sh up failed ({proc.returncode}):\n{said}")


@pytest.fixture(scope="session")
def slurm_cluster():
    """Session-wide: a working cluster, or a skip (outside CI) / failure (in CI) with the reason."""
    wanted = os.environ.get("CI") == "true" or os.environ.get("RLPIPE_SLURM_TESTS") == "1"
    problem = cluster_problem()
    started = False
    if problem and wanted:
        _bring_up()
        started = True
        problem = cluster_problem()
        if problem:
            pytest.fail(f"cluster.sh up succeeded but the cluster is not usable: {problem}")
    if problem:
        pytest.skip(
            f"{problem}. Set RLPIPE_SLURM_TESTS=1 (as root on Debian) to bring one up with "
            "tests/slurm/cluster.sh, or run `bash tests/slurm/cluster.sh up` first"
        )
    yield
    if started:
        subprocess.run(["bash", str(CLUSTER_SH), "down"], capture_output=True, timeout=120, check=False)


@pytest.fixture
def slurm_env(slurm_cluster) -> dict[str, str]:
    """The environment for snakemake: the test cluster's partition and account unless set."""
    env = dict(os.environ)
    env.setdefault("RLPIPE_SLURM_PARTITION", "debug")
    env.setdefault("RLPIPE_SLURM_ACCOUNT", "ci")
    env["HF_HUB_OFFLINE"] = "1"
    return env


def sacct_allocations(
    jobids: list[str], fields: list[str], timeout_s: float = 60
) -> dict[str, dict[str, str]]:
    """JobID -> ``fields`` of each job's allocation (``sacct -X``: not its steps), once every job has
    reached a final state; ``State`` loses sacct's suffix ("CANCELLED by 0" -> "CANCELLED")."""
    fields = ["JobID", *(f for f in fields if f not in ("JobID", "State")), "State"]
    deadline = time.monotonic() + timeout_s
    while True:
        res = subprocess.run(
            ["sacct", "-n", "-P", "-X", "-j", ",".join(jobids), "-o", ",".join(f"{f}%2000" for f in fields)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        rows = {}
        for line in res.stdout.splitlines():
            row = dict(zip(fields, line.split("|", len(fields) - 1), strict=True))
            row["State"] = row["State"].split()[0]
            rows[row["JobID"]] = row
        if set(rows) == set(jobids) and all(r["State"] not in {"PENDING", "RUNNING"} for r in rows.values()):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"sacct never showed final states for {jobids}: {rows}")
        time.sleep(1)


@pytest.fixture(scope="session")
def sacct():
    """``sacct_allocations``, for the tests of this folder."""
    return sacct_allocations


@pytest.fixture(scope="session")
def slurm_durations() -> dict[str, float]:
    """Where a test records how long its SLURM work took (printed at the end of the session)."""
    return DURATIONS


def pytest_terminal_summary(terminalreporter) -> None:
    if DURATIONS:
        terminalreporter.section("SLURM durations")
        for name, seconds in DURATIONS.items():
            terminalreporter.write_line(f"{name}: {seconds:.1f} s")
