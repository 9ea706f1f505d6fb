"""Per-job runtime setup: thread count and seeds, so a rerun with the same seed is identical."""

from __future__ import annotations

import os
import random


def set_hub_kernels(enabled: bool) -> None:
    """Set transformers' process-wide Hub-kernel switch from the experiment's ``hub_kernels`` option.

    Set in the environment (not only passed to rlpipe's loaders) so that models third-party code
    loads (TRL's reference model) and processes started from this one (``accelerate launch``)
    follow it too. Off, nothing is fetched from the Hub when a model loads or enters training mode.
    """
    from rlpipe.models import HUB_KERNELS_ENV

    os.environ[HUB_KERNELS_ENV] = "YES" if enabled else "NO"


def set_compile_cache(folder: str) -> None:
    """Keep Inductor's and Triton's caches in ``folder`` (the experiment's, under ``results/``).

    The jobs of an experiment then compile each decode graph once between them rather than once per
    job (the default cache lives in ``/tmp``: per node, and wiped between SLURM jobs). A cache the
    user set wins. Set in the environment, so launched worker processes share it.
    """
    cache = os.path.abspath(folder)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(cache, "inductor"))
    os.environ.setdefault("TRITON_CACHE_DIR", os.path.join(cache, "triton"))


def init_job(threads: int, seed: int, *, hub_kernels: bool = False, compile_cache: str | None = None) -> None:
    """Pin torch to the job's Snakemake thread count, seed every RNG, set the Hub-kernel switch.

    CPU float reductions depend on the thread count, so it is fixed per rule (not left to
    torch's default of all cores) and two runs of one config produce identical numbers.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    set_hub_kernels(hub_kernels)
    if compile_cache:
        set_compile_cache(compile_cache)
    import numpy as np
    import torch

    torch.set_num_threads(max(1, int(threads)))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
