"""Pre-flight check: signal statistics by hand, and the loss-mask probe on a real tiny model.

The mask probe runs the real losses (TRL's GRPOTrainer.compute_loss, rlpipe's PPOTrainer.losses)
on a real tiny Qwen2 and must pass; a loss that does not mask (HF's plain causal-LM loss over the
whole padded sequence) must fail it, so the check can fail.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

from rlpipe.data.tasks import generate
from rlpipe.train.mask_probe import mask_gradient_check, probe_loss
from rlpipe.train.preflight import (
    PreflightError,
    preflight_spec,
    run_preflight,
    signal_stats,
    signal_verdict,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return (
        generate("addition", "train", 8, 0)
        + generate("sorting", "train", 8, 0)
        + generate("program", "train", 8, 0)
    )


def grpo_run(**grpo: Any) -> dict[str, Any]:
    hp = {"num_generations": 4, "max_completion_length": 8, "beta": 0.0, **grpo}
    return {"name": "pf", "method": "grpo", "seed": 0, "lora": None, "grpo": hp}


# ---------------------------------------------------------------------------------------------
# signal statistics (hand-computed)


def test_signal_stats_by_hand() -> None:
    # 4 groups of k=3: one all-wrong, one all-right, two mixed
    groups = [[0, 0, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]]
    s = signal_stats(groups, ["math", "math", "logic", "logic"])
    assert s["n_prompts"] == 4 and s["k"] == 3
    assert s["reward_mean"] == pytest.approx(6 / 12)
    assert s["reward_std"] == pytest.approx(0.5)  # 6 ones and 6 zeros
    # unbiased std of [1, 0, 0] is sqrt(1/3); TRL's reward_std averages it over groups
    assert s["group_std_mean"] == pytest.approx((0 + 0 + 2 * np.sqrt(1 / 3)) / 4)
    assert s["frac_zero_std"] == 0.5 and s["frac_all_zero"] == 0.25 and s["frac_all_max"] == 0.25
    assert s["by_domain"]["math"]["frac_zero_std"] == 1.0
    assert s["by_domain"]["logic"]["frac_zero_std"] == 0.0
    assert s["by_domain"]["logic"]["reward_mean"] == pytest.approx(0.5)


def test_signal_verdicts() -> None:
    none, why = signal_verdict(signal_stats([[0, 0]] * 10))
    assert none and "reward 0" in why[0]
    # 19 of 20 groups identical (95 %): no signal
    none, why = signal_verdict(signal_stats([[1, 1]] * 19 + [[0, 1]]))
    assert none and "95%" in why[0]
    # 60 %: a weak signal, a warning only
    none, why = signal_verdict(signal_stats([[0, 0]] * 6 + [[0, 1]] * 4))
    assert not none and why == ["weak signal: 60% of prompt groups have identical rewards"]
    # one domain without signal is named
    s = signal_stats([[0, 0]] * 4 + [[0, 1]] * 4, ["math"] * 4 + ["logic"] * 4)
    none, why = signal_verdict(s)
    assert not none and any(w.startswith("domain math: 100% of its 4 prompt groups") for w in why)


def test_preflight_spec_ignores_the_learning_rate() -> None:
    run = {**grpo_run(learning_rate=1e-3, loss_type="dr_grpo"), "steps": 100, "save_every": 10}
    spec = preflight_spec(run)
    assert spec["grpo"] == {
        "num_generations": 4,
        "max_completion_length": 8,
        "beta": 0.0,
        "loss_type": "dr_grpo",
    }
    assert "steps" not in spec and spec == preflight_spec(
        {**run, "grpo": {**run["grpo"], "learning_rate": 0.5}}
    )


# ---------------------------------------------------------------------------------------------
# the mask check on hand-made gradients


def _masks() -> tuple[np.ndarray, np.ndarray]:
    prompt = np.array([[0, 1, 1], [1, 1, 1]])  # row 0 has one left-pad token
    completion = np.array([[1, 1, 0], [1, 1, 1]])  # row 0 ended early
    return prompt, completion


def test_mask_check_passes_exactly_where_the_loss_may_act() -> None:
    pm, cm = _masks()
    hid = np.zeros((2, 6))
    # hidden t predicts token t+1: completion tokens are at 3, 4 (row 0) and 3, 4, 5 (row 1)
    hid[0, [2, 3]] = 0.5
    hid[1, [2, 3, 4]] = 0.1
    emb = np.ones((2, 6))
    emb[0, [0, 5]] = 0.0  # padding embeddings get nothing
    r = mask_gradient_check(hid, emb, pm, cm)
    assert r["passed"], r["problems"]
    assert r["positions"] == {
        "prompt_tokens": 5,
        "prompt_padding": 1,
        "completion_tokens": 5,
        "completion_padding": 1,
    }
    assert r["max_abs_grad"]["hidden_predicting_completion"] == 0.5
    assert r["max_abs_grad"]["embedding_of_prompt"] == 1.0  # allowed: the completion attends to it


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        (("hid", 0, 1), "predicts prompt tokens"),  # hidden 1 of row 0 predicts prompt token 2
        (("hid", 0, 4), "predicts padding tokens"),  # hidden 4 of row 0 predicts the padded slot 5
        (("emb", 0, 0), "padding embeddings get gradient"),
    ],
)
def test_mask_check_flags_each_leak(where: tuple[str, int, int], problem: str) -> None:
    pm, cm = _masks()
    hid, emb = np.zeros((2, 6)), np.zeros((2, 6))
    hid[1, 3] = 1.0
    (hid if where[0] == "hid" else emb)[where[1], where[2]] = 1e-3
    r = mask_gradient_check(hid, emb, pm, cm)
    assert not r["passed"] and any(problem in p for p in r["problems"]), r["problems"]


def test_mask_check_without_any_gradient_fails() -> None:
    pm, cm = _masks()
    r = mask_gradient_check(np.zeros((2, 6)), np.zeros((2, 6)), pm, cm)
    assert not r["passed"] and "no gradient" in r["problems"][0]


# ---------------------------------------------------------------------------------------------
# the mask check through the real losses


@pytest.mark.parametrize(
    "variant", [{"loss_type": "grpo"}, {"loss_type": "dr_grpo", "scale_rewards": "none"}]
)
def test_trl_grpo_loss_masks_prompt_and_padding(model_dir, rows, variant) -> None:
    from rlpipe.train.preflight import mask_check

    r = mask_check(model_dir, rows, grpo_run(**variant))
    assert r["passed"], r["problems"]
    assert not r["not_exercised"], r["not_exercised"]  # prompt and completion padding were present
    assert r["positions"]["prompt_padding"] > 0 and r["positions"]["completion_padding"] > 0
    assert r["max_abs_grad"]["hidden_predicting_completion"] > 1e-6
    assert r["max_abs_grad"]["hidden_predicting_padding"] == 0.0
    assert r["max_abs_grad"]["embedding_of_padding"] == 0.0
    assert variant["loss_type"] in r["loss_path"]


def test_trl_grpo_loss_with_lora_masks_too(model_dir, rows) -> None:
    from rlpipe.train.preflight import mask_check

    run = {**grpo_run(), "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}}
    r = mask_check(model_dir, rows, run)
    assert r["passed"] and r["max_abs_grad"]["hidden_predicting_completion"] > 0


def test_ppo_loss_masks_prompt_and_padding(model_dir, rows) -> None:
    from rlpipe.train.methods.ppo import PPOSettings
    from rlpipe.train.preflight import mask_check

    ppo = {
        **PPOSettings().as_dict(),
        "samples_per_prompt": 4,
        "max_new_tokens": 8,
        "rollout_batch_size": 2,
        "minibatch_size": 8,
    }
    r = mask_check(model_dir, rows, {"name": "pf", "method": "ppo", "seed": 0, "lora": None, "ppo": ppo})
    assert r["passed"], r["problems"]
    assert r["positions"]["prompt_padding"] > 0 and r["positions"]["completion_padding"] > 0


def test_an_unmasked_loss_fails_the_probe(model_dir) -> None:
    """HF's causal-LM loss over a whole left-padded batch, attention unmasked: every leak at once."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    enc = tok(["sort 5281", "12+7="], padding=True, return_tensors="pt")  # left padding on row 1
    completion = torch.tensor([[30, 31, tok.pad_token_id], [32, 33, 34]])
    cmask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    ids = torch.cat([enc.input_ids, completion], dim=1)

    def unmasked_loss() -> torch.Tensor:
        return model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss

    r = probe_loss(model, unmasked_loss, enc.attention_mask, cmask)
    assert not r["passed"]
    problems = " | ".join(r["problems"])
    assert "predicts prompt tokens" in problems
    assert "predicts padding tokens" in problems
    assert "padding embeddings get gradient" in problems


# ---------------------------------------------------------------------------------------------
# the whole job


def test_run_preflight_writes_json_and_fails_when_configured(model_dir, rows, tmp_path) -> None:
    out = tmp_path / "pf.json"
    run = grpo_run()
    result = run_preflight(model_dir, rows, run, {"prompts": 12}, str(out), batch_size=64)
    saved = json.loads(out.read_text())
    assert saved["signal"]["n_prompts"] == 12 and saved["signal"]["k"] == 4
    assert saved["loss_mask"]["passed"]
    # the untrained tiny model never answers right: reward 0 everywhere, no learning signal
    assert result["signal"]["reward_mean"] == 0.0 and result["signal"]["no_signal"]
    failing = tmp_path / "fail.json"
    with pytest.raises(PreflightError, match="no learning signal and preflight.fail_on_no_signal is set"):
        run_preflight(
            model_dir, rows, run, {"prompts": 12, "fail_on_no_signal": True}, str(failing), batch_size=64
        )
    assert not failing.exists()


def test_run_preflight_fails_on_reward_for_nothing_before_loading_a_model(rows, tmp_path) -> None:
    """Issue 24: a scorer that pays a hedge fails the job at once, naming scorer, kind and task; the
    paid responses are kept beside the output, which is not written."""
    hedged = {
        "prompt": [{"role": "user", "content": "Which city is the capital of France?"}],
        "ground_truth": "Paris",
        "scorer": "musique_f1",  # token F1: partial credit for "Paris or ..."
        "domain": "qa",
        "task": "capitals",
    }
    out = tmp_path / "pf.json"
    with pytest.raises(
        PreflightError, match=r"reward for nothing: musique_f1 paid 0\.\d+ for hedge \(task capitals\)"
    ):
        run_preflight(str(tmp_path / "no-model"), [*rows, hedged], grpo_run(), {"prompts": 100}, str(out))
    assert not out.exists()
    paid = json.loads((tmp_path / "pf.json.failed").read_text())["reward_for_nothing"]["paid"]
    assert [(p["scorer"], p["kind"]) for p in paid] == [("musique_f1", "hedge")]
