"""The validation/test split of an evaluation suite's held-out items.

Choosing a best checkpoint or a best run on the items it is then reported on is optimistic (a
maximum of noisy scores is biased upwards). So every suite task's held-out items are split once,
at data preparation, into a *validation* part (checkpoint and run selection) and a *test* part
(every reported number). The split is a hash of the item id: stable across runs, checkpoints,
machines and reruns, independent of the row order and of the experiment's seed, and a task's
split does not change when other tasks are added.
"""

from __future__ import annotations

import hashlib

#: Share of each task's held-out items used for selection, unless the suite sets
#: ``validation_fraction`` (0 disables the split: selection then falls back to test, flagged).
DEFAULT_VALIDATION_FRACTION = 0.25

VALIDATION = "validation"
TEST = "test"


def item_split(item_id: str, validation_fraction: float) -> str:
    """``"validation"`` for about ``validation_fraction`` of item ids, ``"test"`` for the rest."""
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    digest = hashlib.sha256(item_id.encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    return VALIDATION if position < validation_fraction else TEST
