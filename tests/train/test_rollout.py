"""Training rollouts through FastHFGenerator (rollout.engine) on a tiny Qwen2 on CPU.

The GPU speed is measured by bench/train_step.py; here: the engine choice (CPU default unchanged),
the completion contract the trainers rely on (eos kept, generate-shaped padded sequences, greedy
equal to ``generate``), and GRPO (with PCGrad) and PPO (with LoRA) training through it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from rlpipe.data.tasks import generate
from rlpipe.train import rollout as rollout_mod
from rlpipe.train.methods import build_spec
from rlpipe.train.methods.ppo import PPOSettings
from rlpipe.train.rollout import TrainingRollout, rollout_engine

SCORER = "test_digit_share"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    out = generate("addition", "train", 8, 0) + generate("sorting", "train", 8, 0)
    for row in out:
        row["scorer"] = SCORER
    return out


@pytest.fixture
def sample_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts real ``TrainingRollout.sample`` calls (the method still runs)."""
    calls: list[int] = []
    real = rollout_mod.TrainingRollout.sample

    def counting(self: TrainingRollout, prompts: list[list[int]], **kw: Any) -> list[list[int]]:
        calls.append(len(prompts))
        return real(self, prompts, **kw)

    monkeypatch.setattr(rollout_mod.TrainingRollout, "sample", counting)
    return calls


def test_engine_choice() -> None:
    expected = "fast" if torch.cuda.is_available() else "hf"
    assert rollout_engine({}) == expected
    assert rollout_engine({"rollout": None}) == expected
    assert rollout_engine({"rollout": {"engine": "auto"}}) == expected
    assert rollout_engine({"rollout": {"engine": "fast"}}) == "fast"
    assert rollout_engine({"rollout": {"engine": "refill"}}) == "refill"
    assert rollout_engine({"rollout": {"engine": "hf"}}) == "hf"
    with pytest.raises(ValueError, match="rollout.engine"):
        rollout_engine({"rollout": {"engine": "vllm"}})


def _model_and_prompts(model_dir: str) -> tuple[Any, Any, list[list[int]]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    prompts = [tok(t, add_special_tokens=False).input_ids for t in ["12+7=", "sort: c a b", "9"]]
    return model, tok, prompts


@pytest.mark.parametrize("engine", ["fast", "refill"])
def test_greedy_sample_equals_generate_and_keeps_eos(model_dir: str, engine: str) -> None:
    model, tok, prompts = _model_and_prompts(model_dir)
    # Make the first greedy token of prompt 0 the eos, so one row stops at once and the others run on.
    with torch.no_grad():
        eos = int(model(torch.tensor([prompts[0]])).logits[0, -1].argmax())
    out = TrainingRollout(model, tok, [eos], engine=engine).sample(
        prompts, temperature=0.0, top_p=1.0, max_new_tokens=6, seed=0
    )
    assert out[0] == [eos]
    for p, got in zip(prompts, out, strict=True):
        ref = model.generate(
            torch.tensor([p]), do_sample=False, max_new_tokens=6, eos_token_id=eos, pad_token_id=eos
        )[0, len(p) :].tolist()
        assert got == ref  # generate also keeps the eos token and stops there
        assert len(got) <= 6


def test_sequences_are_generate_shaped(model_dir: str) -> None:
    model, tok, prompts = _model_and_prompts(model_dir)
    with torch.no_grad():
        eos = int(model(torch.tensor([prompts[0]])).logits[0, -1].argmax())
    pad = tok.pad_token_id
    assert pad != eos
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    engine = TrainingRollout(model, tok, [eos])
    seqs = engine.sequences(ids, mask, temperature=0.0, max_new_tokens=6, seed=0, pad_token_id=pad)
    completions = engine.sample(prompts, temperature=0.0, top_p=1.0, max_new_tokens=6, seed=0)
    assert seqs.shape == (len(prompts), width + max(map(len, completions)))
    assert torch.equal(seqs[:, :width], ids)
    for row, c in zip(seqs[:, width:].tolist(), completions, strict=True):
        assert row[: len(c)] == c and all(t == pad for t in row[len(c) :])


@pytest.mark.parametrize("engine", ["fast", "refill"])
def test_grpo_with_fast_engine_and_pcgrad_trains(model_dir, rows, tmp_path, sample_calls, engine):
    from rlpipe.train.grpo import train_grpo

    hp = {
        "num_generations": 4,
        "per_device_train_batch_size": 8,
        "max_completion_length": 8,
        "learning_rate": 1e-3,
        "beta": 0.0,
    }
    run = {"name": "fast", "seed": 0, "steps": 2, "save_every": 2, "method": "grpo", "lora": None,
           "grpo": hp, "pcgrad": True, "rollout": {"engine": engine}}  # fmt: skip
    metrics = tmp_path / "metrics.jsonl"
    train_grpo(model_dir, rows, spec=build_spec(run), checkpoints_dir=tmp_path / "ck",
               state_dir=tmp_path / "st", metrics_path=metrics)  # fmt: skip
    assert sample_calls == [8, 8]  # one rollout of 2 prompts x 4 generations per step, all fast
    steps = [m for m in map(json.loads, metrics.read_text().splitlines()) if "reward" in m]
    assert [m["step"] for m in steps] == [1, 2]
    assert all(0 < m["completions/mean_length"] <= 8 for m in steps)
    assert all("pcgrad/projections" in m for m in steps)  # the mixin composed with PCGrad's trainer
    assert (tmp_path / "ck" / "step_2" / "model.safetensors").exists()


def ppo_run(engine: str | None, **changes: Any) -> dict[str, Any]:
    ppo = {**PPOSettings().as_dict(), "rollout_batch_size": 4, "samples_per_prompt": 4, "minibatch_size": 8,
           "max_new_tokens": 8, "learning_rate": 3e-3, "critic": "shared"}  # fmt: skip
    run = {"name": "ppo-fast", "seed": 0, "steps": 2, "save_every": 2, "method": "ppo", "lora": None,
           "pcgrad": False, "ppo": ppo, **changes}  # fmt: skip
    if engine is not None:
        run["rollout"] = {"engine": engine}
    return run


def _dirs(tmp_path: Path) -> dict[str, Path]:
    return {
        "checkpoints_dir": tmp_path / "ck",
        "state_dir": tmp_path / "st",
        "metrics_path": tmp_path / "m.jsonl",
    }


def test_ppo_cpu_default_is_generate(model_dir, rows, tmp_path):
    from rlpipe.train.ppo import PPOTrainer

    if torch.cuda.is_available():
        pytest.skip("the CPU default only")
    assert PPOTrainer(model_dir, rows, spec=build_spec(ppo_run(None)), **_dirs(tmp_path)).fast_rollout is None


@pytest.mark.parametrize("engine", ["fast", "refill"])
def test_ppo_fast_rollout_masks_and_lora_training(model_dir, rows, tmp_path, sample_calls, engine):
    from rlpipe.eval.refill import RefillGenerator
    from rlpipe.train.ppo import PPOTrainer

    run = ppo_run(engine, lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    trainer = PPOTrainer(model_dir, rows, spec=build_spec(run), **_dirs(tmp_path))
    assert trainer.fast_rollout is not None
    assert isinstance(trainer.fast_rollout.generator, RefillGenerator) == (engine == "refill")
    ro = trainer.rollout(trainer.next_rows())
    assert sample_calls == [16]
    lengths = ro.mask.sum(dim=1)
    assert ro.completion_ids.shape == (16, int(lengths.max()))
    eos = torch.tensor(trainer.eos_ids)
    for ids, n, clipped in zip(ro.completion_ids, lengths.long().tolist(), ro.clipped.tolist(), strict=True):
        # Up to and including the first eos (or all max_new_tokens when clipped), as with generate.
        assert clipped == (n == 8 and not bool(torch.isin(ids[n - 1], eos)))
        assert not torch.isin(ids[: n - 1], eos).any()
    assert torch.isfinite(ro.old_logprobs).all() and torch.isfinite(ro.advantages).all()
    trainer.train()
    lines = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2]
    assert all(m["completions/mean_length"] > 0 for m in lines)
    assert (tmp_path / "ck" / "step_2" / "adapter_config.json").exists()


def test_config_accepts_rollout_section_and_leaves_runs_without_it_unchanged():
    import copy

    import yaml

    from rlpipe.config import ConfigError, load_experiment

    root = Path(__file__).resolve().parents[2]
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    config = copy.deepcopy(config)
    config["runs"] = [{"name": "grpo"}, {"name": "ppo", "method": "ppo", "rollout": {"engine": "hf"}}]
    config["baseline"] = "grpo"
    exp = load_experiment(config, ["x.yaml"])
    assert exp.runs["ppo"]["rollout"] == {"engine": "hf"}
    assert "rollout" not in exp.runs["grpo"]  # nothing added: existing runs' params (and outputs) stay
    config["runs"][1]["rollout"] = {"engine": "vllm"}
    with pytest.raises(ConfigError, match="rollout"):
        load_experiment(config, ["x.yaml"])
