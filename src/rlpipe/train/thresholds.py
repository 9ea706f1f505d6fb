"""Learning-signal thresholds shared by the pre-flight check (before training) and the diagnosis of
the training metrics (after, rlpipe.analysis.diagnostics): one definition, importable without torch."""

from __future__ import annotations

#: Mean ``frac_reward_zero_std`` at or above this: practically every group had identical rewards, so
#: every GRPO advantage (reward minus group mean) was zero -- no learning signal.
ZERO_STD_FRAC = 0.95
