"""GSPO (Group Sequence Policy Optimization, Zheng et al. 2025) through TRL's ``GRPOTrainer``.

GRPO with one importance ratio per completion (the length-normalised sequence likelihood ratio)
instead of one per token: ``importance_sampling_level: sequence`` on TRL's ``GRPOConfig``. A run
with ``method: gspo`` takes GRPO's ``grpo:`` section; only the defaults differ: the paper's clip range
(sequence ratios stay far closer to 1 than token ratios, so GRPO's 0.2 would never clip) and the
per-sequence ``grpo`` loss normalisation TRL's GSPO recipe uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlpipe.train.methods.base import SpecError
from rlpipe.train.methods.grpo import GRPO, GRPOSettings


@dataclass(frozen=True)
class GSPOSettings(GRPOSettings):
    """GRPO's settings with GSPO's defaults."""

    loss_type: str = "grpo"
    epsilon: float = 3e-4
    epsilon_high: float | None = 4e-4
    importance_sampling_level: str = "sequence"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.importance_sampling_level != "sequence":
            raise SpecError(
                "grpo.importance_sampling_level: method gspo is sequence-level by definition; "
                "use method: grpo for token-level ratios"
            )


class GSPO(GRPO):
    name = "gspo"
    settings_cls = GSPOSettings
