"""PCGrad on TRL's GRPOTrainer: exact per-domain gradient split, projection metrics in training."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from rlpipe.data.tasks import generate
from rlpipe.train.methods import build_spec

SCORER = "test_digit_share"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    out = generate("addition", "train", 16, 0) + generate("sorting", "train", 16, 0)
    for row in out:
        row["scorer"] = SCORER
    return out


def grpo_run(**grpo: Any) -> dict[str, Any]:
    hp = {
        "num_generations": 4,
        "per_device_train_batch_size": 8,
        "max_completion_length": 8,
        "learning_rate": 1e-3,
        "beta": 0.0,
        **grpo,
    }
    return {"name": "pc", "seed": 0, "steps": 2, "save_every": 2, "method": "grpo", "lora": None, "grpo": hp}


def test_grpo_pcgrad_runs_and_logs_cosines_and_projections(model_dir, rows, tmp_path):
    from rlpipe.train.grpo import train_grpo

    run = {**grpo_run(gradient_accumulation_steps=2), "pcgrad": True}
    metrics = tmp_path / "metrics.jsonl"
    train_grpo(
        model_dir,
        rows,
        spec=build_spec(run),
        checkpoints_dir=tmp_path / "ck",
        state_dir=tmp_path / "st",
        metrics_path=metrics,
    )
    steps = [json.loads(line) for line in metrics.read_text().splitlines()]
    steps = [m for m in steps if "reward" in m]
    assert [m["step"] for m in steps] == [1, 2]
    for m in steps:
        assert -1.0 <= m["pcgrad/cos/logic__math"] <= 1.0
        assert 0 <= m["pcgrad/projections"] <= 2
        assert m["pcgrad/grad_norm/logic"] > 0 and m["pcgrad/grad_norm/math"] > 0
        assert m["grad_norm"] > 0
    assert (tmp_path / "ck" / "step_2" / "model.safetensors").exists()


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo"])
def test_domain_gradients_sum_to_the_grpo_gradient(model_dir, rows, tmp_path, loss_type):
    """The per-domain split is exact whatever TRL's normalisation (bnpo divides by the batch's tokens)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from rlpipe.train.grpo import make_reward_fn
    from rlpipe.train.grpo_pcgrad import DOMAIN_KEY, PCGradGRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    hp = grpo_run(loss_type=loss_type)["grpo"]
    args = GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=1,
        report_to="none",
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
        seed=0,
        **hp,
    )
    cols = ("prompt", "ground_truth", "scorer", "domain", "task")
    trainer = PCGradGRPOTrainer(
        model=model,
        reward_funcs=make_reward_fn(),
        args=args,
        train_dataset=Dataset.from_list([{k: r[k] for k in cols} for r in rows]),
        processing_class=tokenizer,
    )
    trainer.current_gradient_accumulation_steps = 1
    model.train()
    batch = [{k: r[k] for k in cols} for r in rows[:2] + rows[-2:] for _ in range(2)]
    inputs = trainer._generate_and_score_completions(batch)
    assert inputs[DOMAIN_KEY].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]  # sorted domains: logic, math
    params = [p for p in model.parameters() if p.requires_grad]
    plain = {k: v for k, v in inputs.items() if k != DOMAIN_KEY}

    def counts() -> dict[str, int]:
        return {k: len(v) for k, v in trainer._metrics["train"].items()}

    before = counts()
    loss = GRPOTrainer.compute_loss(trainer, model, plain)
    expected = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])
    after_plain = counts()
    trainer.compute_loss(model, inputs)
    buffers = trainer._pcgrad_acc._buffers
    assert set(buffers) == {"logic", "math"}
    torch.testing.assert_close(buffers["logic"] + buffers["math"], expected, rtol=1e-4, atol=1e-7)
    assert all(p.grad is None for p in params)  # the split goes to the accumulator, not .grad
    # TRL's per-micro-batch metrics were logged once, not once per domain.
    after_split = counts()
    assert {k: after_split[k] - n for k, n in after_plain.items()} == {
        k: n - before.get(k, 0) for k, n in after_plain.items()
    }
