"""Per-job runtime setup: thread count and seeds, so a rerun with the same seed is identical."""

from __future__ import annotations

import os
import random


def init_job(threads: int, seed: int) -> None:
    """Pin torch to the job's Snakemake thread count and seed every RNG.

    CPU float reductions depend on the thread count, so it is fixed per rule (not left to
    torch's default of all cores) and two runs of one config produce identical numbers.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import numpy as np
    import torch

    torch.set_num_threads(max(1, int(threads)))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
