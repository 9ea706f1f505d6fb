"""One training run, whichever way it is started: ``run_training``.

The in-process path (workflow/scripts/train.py, one GPU or the CPU) and every process of a launched
multi-GPU run (``python -m rlpipe.train.launch worker``) call it, so both train exactly alike: the
run's method (``rlpipe.train.methods``) builds its typed spec and trains.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlpipe.tracking.io import disk_full_reported
from rlpipe.train.methods import build_spec


def run_training(run: Mapping[str, Any], paths: Mapping[str, Any]) -> None:
    """Train (or resume) ``run``, an expanded run spec (``rlpipe.config``).

    ``paths``: ``policy`` (the starting weights), ``train`` and, with early stopping, ``validation``
    (JSONL rows), ``checkpoints`` (the published step_N folders), ``state_dir`` (resumable state) and
    ``metrics`` (the published metrics.jsonl). A full disk surfaces as ``OSError(ENOSPC)`` saying
    "no space left on device" and where (``rlpipe.tracking.io.disk_full_reported``), not as torch's
    ``RuntimeError ... inline_container.cc``.
    """
    spec = build_spec(run)
    with disk_full_reported([paths["state_dir"], paths["checkpoints"]]):
        spec.method.train(spec, paths)
