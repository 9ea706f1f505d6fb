"""Recommendations are generated from the numbers and speak only about significant evidence."""

from __future__ import annotations

from rlpipe.analysis.recommend import recommendations


def d(delta: float, lo: float, hi: float, level: str = "checkpoint", seeds: tuple = (1, 1)) -> dict:
    return {
        "delta": delta,
        "lo": lo,
        "hi": hi,
        "p": 0.01,
        "significant": lo > 0 or hi < 0,
        "n_items": 200,
        "claim": level,
        "seed_source": "seeds" if level == "configuration" else None,
        "n_seeds": seeds,
    }


def selection(
    best: int, stop: int | None, final: int = 100, overfit: int | None = None, verdict: str = "equivalent"
) -> dict:
    return {
        "best": {"overall": {"step": best}},
        "verdict": verdict,
        "margin": 0.01,
        "stop_step": stop,
        "undetermined_step": 20 if verdict == "undetermined" else None,
        "stop_delta": -0.004,
        "stop_lo": -0.02 if verdict == "undetermined" else -0.008,
        "stop_hi": 0.012 if verdict == "undetermined" else 0.0,
        "final_step": final,
        "stop_fraction": stop / final if stop is not None else float("nan"),
        "overfitting": overfit is not None,
        "overfit_step": overfit,
        "overfit_delta": -0.1,
        "overfit_lo": -0.15,
        "overfit_hi": -0.05,
    }


def test_recommendations_from_data() -> None:
    recs = recommendations(
        baseline="grpo",
        vs_baseline=[
            {
                "run": "pcgrad",
                "domains": {"logic": d(0.05, 0.02, 0.08), "code": d(-0.03, -0.05, -0.01)},
                "mean": d(0.01, -0.01, 0.03),
            },
            {
                "run": "lora",
                "domains": {"logic": d(0.01, -0.02, 0.04, "configuration", (3, 3))},
                "mean": d(0.01, -0.02, 0.04, "configuration", (3, 3)),
                "seeds_needed": 9,
            },
        ],
        vs_base=[{"run": "grpo", "mean": d(0.1, 0.05, 0.15)}, {"run": "lora", "mean": d(0.01, -0.01, 0.03)}],
        selection={
            "grpo": selection(100, 50),
            "lora": selection(50, 50, overfit=100),
            "ppo": selection(60, None, verdict="undetermined"),
        },
        diagnostics={
            "grpo": {"verdict": "learning", "causes": []},
            "lora": {"verdict": "flat", "causes": ["learning_rate is 0 at every step"]},
        },
        preflight={
            "grpo": {
                "signal": {
                    "no_signal": False,
                    "frac_zero_std": 0.3,
                    "by_domain": {"math": {"frac_zero_std": 1.0, "reward_mean": 0.0}},
                },
                "loss_mask": {"passed": True, "problems": []},
            }
        },
        cost={
            "grpo": {"gain": 0.1, "per_hour": 0.05, "unit": "GPU-hour", "hours": 2.0},
            "lora": {"gain": 0.01, "per_hour": 0.02, "unit": "GPU-hour", "hours": 0.5},
        },
    )
    text = "\n".join(recs)
    helps = "`pcgrad` helps logic by +0.050 [+0.020, +0.080] over `grpo`"
    checkpoint = (
        "checkpoint-level: these two training runs, one seed each; not a claim about the configurations"
    )
    assert f"{helps} but costs code (-0.030 [-0.050, -0.010]) ({checkpoint})." in text
    assert "`lora` vs `grpo`: no significant difference on any domain (95 % CIs about ±0.030 wide; " in text
    assert "configuration-level, 3 seeds" in text
    assert "about 9 seeds per configuration would separate them" in text
    assert "seeds per configuration would separate them" not in text.split("`pcgrad` vs")[-1].split("\n")[0]
    assert "Training `grpo` improved the mean score over its base model by +0.100 [+0.050, +0.150] (" in text
    assert "`lora` is not significantly better than its base model" in text
    assert "`lora` is **flat**: learning_rate is 0 at every step." in text
    assert "`grpo`: domain math had no learning signal at the start" in text
    assert "`grpo`: step 50 is within ±0.01 of its best checkpoint (equivalence test" in text
    # not significant is not "no gain": the stopping point is undetermined, with its CI
    assert "`ppo`: whether training beyond step 20 helped is undetermined" in text
    assert "bought no" not in text.split("`ppo`:")[-1]
    assert "`lora` overfits: step 100 is significantly below the best step 50" in text
    assert "Most score per GPU-hour: `grpo`" in text
