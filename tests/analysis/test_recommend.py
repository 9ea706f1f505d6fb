"""Recommendations are generated from the numbers and speak only about significant evidence."""

from __future__ import annotations

from rlpipe.analysis.recommend import recommendations


def d(delta: float, lo: float, hi: float) -> dict:
    return {"delta": delta, "lo": lo, "hi": hi, "p": 0.01, "significant": lo > 0 or hi < 0, "n_items": 200}


def selection(best: int, stop: int, final: int = 100, overfit: int | None = None) -> dict:
    return {
        "best": {"overall": {"step": best}},
        "stop_step": stop,
        "final_step": final,
        "stop_fraction": stop / final,
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
            {"run": "pcgrad", "domains": {"logic": d(0.05, 0.02, 0.08), "code": d(-0.03, -0.05, -0.01)}},
            {"run": "lora", "domains": {"logic": d(0.01, -0.02, 0.04), "code": d(0.0, -0.03, 0.03)}},
        ],
        vs_base=[{"run": "grpo", "mean": d(0.1, 0.05, 0.15)}, {"run": "lora", "mean": d(0.01, -0.01, 0.03)}],
        selection={"grpo": selection(100, 50), "lora": selection(50, 50, overfit=100)},
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
    assert f"{helps} but costs code (-0.030 [-0.050, -0.010])." in text
    assert "`lora` vs `grpo`: no significant difference on any domain (95 % CIs about ±0.030 wide)" in text
    assert "Training `grpo` improved the mean score over its base model by +0.100 [+0.050, +0.150]." in text
    assert "`lora` is not significantly better than its base model" in text
    assert "`lora` is **flat**: learning_rate is 0 at every step." in text
    assert "`grpo`: domain math had no learning signal at the start" in text
    assert "`grpo`: step 50 is not significantly below its best checkpoint" in text
    assert "`lora` overfits: step 100 is significantly below the best step 50" in text
    assert "Most score per GPU-hour: `grpo`" in text
