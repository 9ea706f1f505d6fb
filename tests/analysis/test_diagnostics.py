"""rlpipe.analysis.diagnostics on synthetic metric streams with a known story."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from rlpipe.analysis import diagnostics as dg
from rlpipe.analysis.diagnostics import Verdict, diagnose_run, format_verdict

Override = Callable[[int], Any] | Any


def stream(n: int = 100, seed: int = 0, **overrides: Override) -> list[dict[str, Any]]:
    """A healthy-looking but non-learning GRPO log (reward ~0.3 +- noise), one row per step.

    ``overrides`` replace a metric: a callable gets the step index, ``None`` removes the key.
    Keys with a slash are passed with ``__`` (``completions__clipped_ratio``). A TRL-style
    end-of-training summary row (no reward) is appended, as MetricsFileCallback writes it.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row: dict[str, Any] = {
            "step": i + 1,
            "learning_rate": 1e-6 * min(1.0, (i + 1) / 10),
            "grad_norm": float(rng.lognormal(math.log(0.5), 0.3)),
            "loss": float(rng.normal(0, 0.01)),
            "reward": float(np.clip(0.3 + rng.normal(0, 0.05), 0, 1)),
            "reward_std": 0.35,
            "frac_reward_zero_std": 0.3,
            "entropy": 0.8 + float(rng.normal(0, 0.02)),
            "kl": 0.02 * i / n,
            "clip_ratio/region_mean": 0.0,
            "completions/mean_length": 120.0,
            "completions/clipped_ratio": 0.03,
        }
        for key, value in overrides.items():
            key = key.replace("__", "/")
            if value is None:
                row.pop(key, None)
            else:
                row[key] = value(i) if callable(value) else value
        rows.append(row)
    rows.append({"step": n, "train_runtime": 12.5, "train_loss": 0.01, "train_samples_per_second": 3.0})
    return rows


def rising(i: int, n: int = 100, seed: int = 1) -> float:
    return float(0.2 + 0.5 * i / n + np.random.default_rng(seed + i).normal(0, 0.05))


def has_cause(v: Verdict, text: str) -> bool:
    return any(text in c for c in v.causes)


# ---------------------------------------------------------------------------------------------
# the four stories of the brief


def test_reward_always_zero_is_flat_with_the_zero_reward_cause() -> None:
    v = diagnose_run(stream(reward=0.0, frac_reward_zero_std=1.0, reward_std=0.0))
    assert v.verdict == "flat"
    assert v.causes[0].startswith("reward always 0: no learning signal")
    assert has_cause(v, "check the scorer / prompt format / warm-up")
    assert has_cause(v, "every group has identical rewards: GRPO advantages are zero")


def test_learning_rate_zero_is_flat_with_the_no_gradient_cause() -> None:
    v = diagnose_run(stream(learning_rate=0.0))
    assert v.verdict == "flat"
    assert has_cause(v, "learning_rate is 0")
    assert has_cause(v, "no gradient reaches the weights")


def test_learning_rate_zero_is_flat_even_if_the_reward_drifts_up() -> None:
    v = diagnose_run(stream(learning_rate=0.0, reward=rising))
    assert v.verdict == "flat"
    assert has_cause(v, "no gradient reaches the weights")


def test_rising_reward_is_learning() -> None:
    v = diagnose_run(stream(reward=rising))
    assert v.verdict == "learning"
    assert v.causes == []
    assert v.evidence["reward_slope_lo"] > 0
    assert v.evidence["reward_gain"] == pytest.approx(0.5, abs=0.1)
    assert v.evidence["reward_first"] < v.evidence["reward_last"]


def test_exploding_grad_norm_is_unstable() -> None:
    v = diagnose_run(stream(grad_norm=lambda i: 0.5 * 1.12**i))
    assert v.verdict == "unstable"
    assert has_cause(v, "grad_norm exploded")


# ---------------------------------------------------------------------------------------------
# flat causes


def test_zero_grad_norm_is_flat() -> None:
    v = diagnose_run(stream(grad_norm=0.0))
    assert v.verdict == "flat"
    assert has_cause(v, "grad_norm ~ 0") and has_cause(v, "no gradient reaches the weights")


def test_identical_group_rewards_is_flat() -> None:
    v = diagnose_run(stream(frac_reward_zero_std=lambda i: 0.98 + 0.02 * (i % 2)))
    assert v.verdict == "flat"
    assert has_cause(v, "every group has identical rewards")
    assert v.evidence["frac_reward_zero_std_mean"] == pytest.approx(0.99)


def test_identical_rewards_from_reward_std_when_frac_is_not_logged() -> None:
    v = diagnose_run(stream(frac_reward_zero_std=None, reward_std=0.0, reward=1.0))
    assert v.verdict == "flat"
    assert has_cause(v, "identical rewards") and has_cause(v, "reward constant at 1")


def test_noisy_reward_without_trend_is_flat() -> None:
    v = diagnose_run(stream())
    assert v.verdict == "flat"
    assert has_cause(v, "no significant reward trend")
    assert v.evidence["reward_slope_lo"] < 0 < v.evidence["reward_slope_hi"]


def test_reward_that_does_not_move_is_flat() -> None:
    v = diagnose_run(stream(reward=lambda i: 0.5 + 0.001 * ((-1) ** i)))
    assert v.verdict == "flat"
    assert has_cause(v, "reward did not move")


def test_significant_but_negligible_gain_is_not_learning() -> None:
    # a long, very quiet run gaining 0.5 points in total: significant, irrelevant
    v = diagnose_run(stream(n=1000, reward=lambda i: 0.5 + 0.005 * i / 1000 + 1e-4 * ((-1) ** i)))
    assert v.evidence["reward_slope_lo"] > 0
    assert v.verdict == "flat"
    assert has_cause(v, "negligible") or has_cause(v, "did not move")


def test_entropy_collapse_is_reported() -> None:
    v = diagnose_run(stream(entropy=lambda i: 0.8 * 0.93**i))
    assert v.verdict == "flat"
    assert has_cause(v, "entropy collapsed")
    # ... and only as a warning for a run that does learn
    w = diagnose_run(stream(entropy=lambda i: 0.8 * 0.93**i, reward=rising))
    assert w.verdict == "learning" and has_cause(w, "entropy collapsed")


def test_entropy_zero_from_the_start_suggests_temperature() -> None:
    v = diagnose_run(stream(entropy=0.001))
    assert has_cause(v, "raise the temperature")


def test_truncation_from_the_start_is_a_flat_cause_not_instability() -> None:
    v = diagnose_run(stream(completions__clipped_ratio=0.9))
    assert v.verdict == "flat"
    assert has_cause(v, "the model never stops")


def test_advantages_std_zero_is_flat() -> None:
    v = diagnose_run(stream(**{"advantages/std": 0.0, "advantages/mean": 0.0}))
    assert has_cause(v, "advantages carry no learning signal")


# ---------------------------------------------------------------------------------------------
# unstable


@pytest.mark.parametrize("key", ["grad_norm", "loss", "reward", "kl"])
def test_nan_or_inf_is_unstable(key: str) -> None:
    v = diagnose_run(
        stream(**{key: lambda i: float("nan") if i == 40 else (float("inf") if i == 60 else 0.3)})
    )
    assert v.verdict == "unstable"
    assert has_cause(v, f"{key} is NaN/inf at 2 step(s), first at step 41")
    json.dumps(v.evidence, allow_nan=False)


def test_growing_grad_norm_is_unstable() -> None:
    v = diagnose_run(stream(grad_norm=lambda i: 0.2 * 1.05**i))  # 0.2 -> 26, smooth: no spike
    assert v.verdict == "unstable"
    assert has_cause(v, "grad_norm grew")


def test_kl_blow_up_is_unstable() -> None:
    v = diagnose_run(stream(kl=lambda i: 0.01 * 1.06**i, reward=rising))
    assert v.verdict == "unstable"
    assert has_cause(v, "kl blew up")


def test_high_clip_ratio_is_unstable_also_from_low_high_split() -> None:
    v = diagnose_run(stream(**{"clip_ratio/region_mean": 0.45}))
    assert v.verdict == "unstable" and has_cause(v, "clip ratio very high")
    split = stream(
        **{"clip_ratio/region_mean": None, "clip_ratio/low_mean": 0.2, "clip_ratio/high_mean": 0.2}
    )
    w = diagnose_run(split)
    assert w.verdict == "unstable" and has_cause(w, "clip ratio very high")
    assert w.evidence["clip_ratio_last"] == pytest.approx(0.4)


def test_length_drift_to_the_cap_is_unstable() -> None:
    v = diagnose_run(stream(completions__clipped_ratio=lambda i: min(1.0, i / 80)))
    assert v.verdict == "unstable"
    assert has_cause(v, "completion length drifted to the cap")


def test_reward_collapse_after_a_peak_is_unstable() -> None:
    def peak(i: int) -> float:
        base = 0.2 + 0.6 * i / 50 if i < 50 else 0.8 - 0.6 * (i - 50) / 50
        return base + float(np.random.default_rng(i).normal(0, 0.03))

    v = diagnose_run(stream(reward=peak))
    assert v.verdict == "unstable"
    assert has_cause(v, "reward collapsed")


def test_steadily_dropping_reward_is_unstable() -> None:
    v = diagnose_run(stream(reward=lambda i: 0.6 - 0.3 * i / 100 + 0.01 * ((-1) ** i)))
    assert v.verdict == "unstable"
    assert has_cause(v, "reward")


def test_ppo_value_head_problems() -> None:
    v = diagnose_run(stream(reward=rising, value_loss=lambda i: 0.1 * 1.08**i, explained_variance=-0.8))
    assert v.verdict == "unstable"
    assert has_cause(v, "value loss diverging")
    assert has_cause(v, "value head explains no variance")
    healthy = diagnose_run(stream(reward=rising, value_loss=0.1, explained_variance=0.6))
    assert healthy.verdict == "learning" and healthy.causes == []


# ---------------------------------------------------------------------------------------------
# robustness


def test_healthy_noise_is_rarely_misjudged() -> None:
    """Stationary noise: 'learning' or 'unstable' should be rare (about alpha/2 each at most)."""
    verdicts = [diagnose_run(stream(seed=s)).verdict for s in range(60)]
    assert verdicts.count("learning") <= 5
    assert verdicts.count("unstable") <= 5
    rises = [
        diagnose_run(stream(seed=s, reward=lambda i, s=s: rising(i, seed=100 * s))).verdict for s in range(20)
    ]
    assert rises.count("learning") == 20


@pytest.mark.parametrize("n", [0, 1, 2, 4])
def test_too_few_steps_never_raise(n: int) -> None:
    v = diagnose_run(stream(n=n))
    assert v.verdict == "flat"
    assert v.causes
    assert "\n" not in format_verdict(v)


def test_empty_and_rewardless_streams() -> None:
    assert diagnose_run([]).verdict == "flat"
    v = diagnose_run(stream(reward=None))
    assert v.verdict == "flat" and has_cause(v, "no reward logged")
    assert diagnose_run([{"foo": "bar"}, 3, None]).verdict == "flat"  # type: ignore[list-item]


def test_unsorted_rows_without_step_and_ppo_trainer_names() -> None:
    rows = stream(reward=rising)
    shuffled = list(reversed(rows))
    assert diagnose_run(shuffled).verdict == "learning"
    # no "step": the row index is used; TRL PPOTrainer spells the reward objective/scores
    renamed = [
        {("objective/scores" if k == "reward" else k): val for k, val in r.items() if k != "step"}
        for r in rows
    ]
    assert diagnose_run(renamed).verdict == "learning"


def test_evidence_is_strict_json_even_with_nan_metrics() -> None:
    rows = stream(grad_norm=lambda i: float("nan") if i > 90 else 0.5)
    text = json.dumps([json.loads(json.dumps(r)) for r in rows])  # as a metrics.jsonl round trip
    v = diagnose_run(json.loads(text))
    assert v.verdict == "unstable"
    json.dumps(v.evidence, allow_nan=False)


def test_rows_all_at_one_step_give_no_trend_and_json_evidence() -> None:
    v = diagnose_run(stream(step=7))
    assert v.verdict == "flat" and has_cause(v, "share step 7")
    assert v.evidence["reward_slope"] is None  # NaN is not JSON
    json.dumps(v.evidence, allow_nan=False)


def test_format_verdict_is_one_line_with_verdict_and_causes() -> None:
    v = diagnose_run(stream(reward=0.0))
    line = format_verdict(v, "grpo/seed0")
    assert line.startswith("grpo/seed0: WARNING: flat")
    assert "reward always 0" in line and "\n" not in line
    ok = format_verdict(diagnose_run(stream(reward=rising)))
    assert ok.startswith("OK, learning") and "slope" in ok and "95% CI" in ok
    bad = format_verdict(diagnose_run(stream(grad_norm=lambda i: 0.5 * 1.12**i)))
    assert bad.startswith("WARNING: unstable") and "grad_norm exploded" in bad


def test_thresholds_are_sane_constants() -> None:
    assert 0 < dg.LEARNING_MIN_GAIN < dg.REWARD_DROP
    assert 0 < dg.ZERO_STD_FRAC <= 1
    assert dg.GRAD_SPIKE_FACTOR > dg.GRAD_GROWTH_FACTOR > 1
    assert set(dg.VERDICTS) == {"learning", "flat", "unstable"}


def test_small_significant_decline_is_flat_and_says_so() -> None:
    # -0.03 over the run: below REWARD_DROP (not "unstable") but a significant negative slope
    v = diagnose_run(stream(reward=lambda i: 0.30 - 0.0003 * i + 0.001 * ((i * 7) % 3 - 1)))
    assert v.verdict == "flat"
    assert any(c.startswith("reward drifting down: slope") for c in v.causes), v.causes
    assert not any("includes 0" in c for c in v.causes)
