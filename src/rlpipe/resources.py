"""Cluster resources of every job, sized from the experiment: GPUs, host memory, time limit, warning.

Snakemake's SLURM executor turns a rule's ``resources:`` into ``sbatch`` options (``gpu`` ->
``--gpus``, ``gpu_model`` -> ``--gpus=<model>:N``, ``constraint`` -> ``-C``, ``mem_mb`` -> ``--mem``,
``runtime`` -> ``-t`` minutes, ``slurm_extra`` verbatim). These pure functions decide the values so
that rules/common.smk only maps wildcards to them; locally the same values are inert (Snakemake
does not limit ``gpu`` unless ``--resources gpu=N`` is given).

Sizing rules (all overridable per run in ``runs[].resources`` or per rule with ``--set-resources``):

* GPUs come from the run's ``resources.gpus``. Training uses all of them (one process per GPU
  through ``accelerate launch``, over ``resources.nodes`` nodes); warm-up (SFT) loads the model once
  in one process and asks for one GPU when the runs on that model use GPUs, none otherwise; so
  does a run's pre-flight check; generation likewise, times the evaluation backend's
  tensor-parallel size.
* Host memory (``--mem``, not GPU memory) covers loading the weights on the host before they move to
  the GPU: a base plus ``MEM_MB_PER_BILLION`` per billion parameters per process on a node
  (``--mem`` is per node). The parameter count
  is read from the model spec (``tiny`` arch, or the ``7B`` / ``0.5B`` in a hub repo id or a local
  directory name); unknown sizes get the base only.
* Memory and time limit are multiplied by the retry attempt (1, 2, 3, ...): a job killed for its
  time or memory limit is retried with more.
* Training gets ``--signal=URG@<warning_s>``: SIGURG reaches every process of the job step shortly
  before the time limit, the trainer saves a checkpoint and exits non-zero, and the retry (with a
  longer limit) resumes. SIGURG and not the usual USR1: USR1 also reaches the Snakemake processes the
  plugin runs inside the job, which have no handler and die, failing the job before the trainer
  has saved; SIGURG is ignored by every process that did not ask for it (profiles/slurm/README.md).
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any

#: time limit in minutes of the first attempt, per GPU rule family (training: unless the run says)
RUNTIME_MIN = {"train": 240, "warmup": 120, "generate": 60, "preflight": 30}
#: host memory of every GPU job before the per-parameter share, in MB
BASE_MEM_MB = 2048
#: host memory per billion parameters per process: fp32 weights (4 bytes) while loading
MEM_MB_PER_BILLION = 4096
#: default early warning before the time limit, in seconds (never more than half the limit)
WARNING_S = 300

_SIZE = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)[Bb](?![A-Za-z0-9])")


def model_billions(model: dict[str, Any]) -> float | None:
    """Parameter count of a model spec in billions, or None when the spec does not tell.

    ``tiny`` models are counted (approximately: attention, MLP and ~128 tied embedding rows; norms and
    biases left out) from their arch; hub and local models from the size tag in their name
    (``Qwen/Qwen2.5-7B-Instruct`` -> 7.0).
    """
    if model["source"] == "tiny":
        a = model["arch"]
        h, inter, layers = a["hidden_size"], a["intermediate_size"], a["num_layers"]
        kv = h * a["num_kv_heads"] // a["num_heads"]
        per_layer = 2 * h * h + 2 * h * kv + 3 * h * inter
        return (layers * per_layer + 128 * h) / 1e9
    name = model.get("repo_id") if model["source"] == "hub" else PurePath(model.get("path", "")).name
    sizes = _SIZE.findall(name or "")
    return float(sizes[-1]) if sizes else None


def host_mem_mb(model: dict[str, Any], processes: int = 1) -> int:
    """Host memory (MB) of a job that loads ``model`` in ``processes`` processes, first attempt."""
    billions = model_billions(model) or 0.0
    return BASE_MEM_MB + round(MEM_MB_PER_BILLION * billions * max(1, processes))


def warning_s(res: dict[str, Any], runtime_min: int) -> int:
    """Seconds before the time limit at which SLURM warns the trainer; at most half the limit."""
    return max(1, min(int(res.get("warning_s", WARNING_S)), runtime_min * 30))


def gpu_job_resources(
    kind: str, model: dict[str, Any], res: dict[str, Any], attempt: int = 1, *, generation_gpus: int = 1
) -> dict[str, Any]:
    """Snakemake resources of one GPU-family job (``train``, ``warmup``, ``generate``, ``preflight``).

    ``res`` is the run's ``resources`` section (for warm-up and generation of a base model: that of
    the model's first GPU run, or ``{}``); ``generation_gpus`` is the tensor-parallel size of the
    evaluation backend (``evaluation.tensor_parallel_size``; the hf backend uses one GPU). Keys whose
    value is None are unset for the executor.
    """
    if kind not in RUNTIME_MIN:
        raise ValueError(f"unknown GPU rule family {kind!r}; expected one of {', '.join(RUNTIME_MIN)}")
    gpus = int(res.get("gpus", 0))
    nodes = int(res.get("nodes", 1)) if kind == "train" else 1
    if kind != "train":  # one process on one GPU; generation: the backend's tensor-parallel size
        gpus = (max(1, generation_gpus) if kind == "generate" else 1) if gpus else 0
    processes = -(-max(1, gpus) // nodes) if kind == "train" else 1  # per node: --mem is per node
    runtime, mem_mb = RUNTIME_MIN[kind], host_mem_mb(model, processes)
    if kind == "train":  # the run's own limits are those of its training job
        runtime, mem_mb = res.get("runtime", runtime), res.get("mem_mb", mem_mb)
    runtime, mem_mb = int(runtime) * attempt, int(mem_mb) * attempt
    return {
        "gpu": gpus,
        "gpu_model": res.get("gpu_model") if gpus else None,
        "constraint": res.get("constraint") if gpus else None,
        "nodes": nodes if nodes > 1 else None,
        "mem_mb": mem_mb,
        "runtime": runtime,
        "slurm_extra": f"--signal=URG@{warning_s(res, runtime)}" if kind == "train" else None,
    }


def model_gpu_resources(runs: dict[str, dict[str, Any]], model: str) -> dict[str, Any]:
    """The ``resources`` of the first run (by name) on ``model`` that uses GPUs, else ``{}``.

    Warm-up and base-model generation are not runs; they follow the GPUs of the runs they serve.
    """
    for name in sorted(runs):
        run = runs[name]
        if run["model"] == model and run.get("resources", {}).get("gpus", 0) > 0:
            return run["resources"]
    return {}
