"""The training-method registry: typed specs own their defaults and checks; GSPO trains through TRL.

GSPO is the method added to show what a method costs: one module (rlpipe.train.methods.gspo) and one
registry entry. It trains here for two steps on the tiny model through ``run_training``, the path
both the in-process job and the launched workers take.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from rlpipe.config import ConfigError, load_experiment, load_yaml
from rlpipe.data.tasks import generate
from rlpipe.tracking.io import write_jsonl
from rlpipe.train.methods import METHODS, SpecError, build_spec, get_method
from rlpipe.train.methods.grpo import GRPOSettings
from rlpipe.train.methods.gspo import GSPOSettings
from rlpipe.train.methods.ppo import PPOSettings
from rlpipe.train.run import run_training

ROOT = Path(__file__).resolve().parents[2]


def test_grpo_settings_default_to_trls_own_defaults() -> None:
    """A key a run leaves unset trains exactly as TRL's GRPOConfig default would."""
    from trl import GRPOConfig

    trl_fields = GRPOConfig.__dataclass_fields__
    for field in dataclasses.fields(GRPOSettings):
        assert field.default == trl_fields[field.name].default, field.name


def test_an_unknown_method_is_refused_with_the_known_ones() -> None:
    with pytest.raises(SpecError, match=r"unknown training method 'rloo' \(known: grpo, gspo, ppo\)"):
        get_method("rloo")
    config = load_yaml(ROOT / "config" / "config.yaml")
    config["runs"].append({"name": "r", "method": "rloo"})
    with pytest.raises(
        ConfigError, match=r"^x.yaml: runs\[6\] \(r\): method: unknown training method 'rloo'"
    ):
        load_experiment(config, ["x.yaml"])


def test_an_unknown_setting_is_refused_by_name() -> None:
    with pytest.raises(SpecError, match=r"^ppo: unknown key\(s\) clip \(known: learning_rate, "):
        PPOSettings.from_section({"clip": 0.1}, "ppo")


def test_each_method_is_one_registered_module_with_its_hooks() -> None:
    assert sorted(METHODS) == ["grpo", "gspo", "ppo"]
    for name, method in METHODS.items():
        assert method.name == name
        assert method.accelerate_default in {"fsdp", "ddp"}
        spec = build_spec({"name": "x", "seed": 0, "steps": 1, "method": name})
        assert spec.method is method and spec.prompts_per_step() > 0
        assert set(method.sampling(spec)) == {"k", "temperature", "top_p", "max_new_tokens"}


def test_gspo_is_grpo_with_sequence_level_ratios() -> None:
    spec = build_spec({"name": "g", "seed": 0, "steps": 1, "method": "gspo", "grpo": {"beta": 0.0}})
    assert isinstance(spec.settings, GSPOSettings) and spec.method.section == "grpo"
    kwargs = spec.settings.trl_kwargs()
    assert kwargs["importance_sampling_level"] == "sequence" and kwargs["epsilon"] == 3e-4
    assert build_spec({"name": "g", "seed": 0, "steps": 1}).settings.importance_sampling_level == "token"
    with pytest.raises(SpecError, match="method gspo is sequence-level by definition"):
        build_spec(
            {
                "name": "g",
                "seed": 0,
                "steps": 1,
                "method": "gspo",
                "grpo": {"importance_sampling_level": "token"},
            }
        )


def test_a_gspo_run_in_the_default_experiment_config() -> None:
    """The run commented in config/config.yaml loads: GSPO takes the run defaults' grpo section."""
    config = copy.deepcopy(load_yaml(ROOT / "config" / "config.yaml"))
    config["runs"].append({"name": "gspo", "method": "gspo"})
    run = load_experiment(config, ["config.yaml"]).runs["gspo"]
    assert run["method"] == "gspo" and run["grpo"]["loss_type"] == "grpo"  # run_defaults apply
    assert build_spec(run).settings.importance_sampling_level == "sequence"


@pytest.mark.usefixtures("one_thread")
def test_gspo_trains_on_the_tiny_model(model_dir: str, tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = generate("addition", "train", 8, 0) + generate("sorting", "train", 8, 0)
    write_jsonl(tmp_path / "train.jsonl", rows)
    grpo = {"num_generations": 4, "per_device_train_batch_size": 8, "max_completion_length": 8}
    run = {
        "name": "gspo",
        "seed": 0,
        "steps": 2,
        "save_every": 2,
        "method": "gspo",
        "lora": None,
        "grpo": grpo,
    }
    paths = {
        "policy": model_dir,
        "train": str(tmp_path / "train.jsonl"),
        "checkpoints": str(tmp_path / "ck"),
        "state_dir": str(tmp_path / "st"),
        "metrics": str(tmp_path / "metrics.jsonl"),
    }
    run_training(run, paths)
    steps = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in steps if "reward" in m] == [1, 2]
    assert (tmp_path / "ck" / "step_2" / "model.safetensors").exists()
    # TRL trained with sequence-level importance ratios and GSPO's clip range
    args = torch.load(tmp_path / "st" / "checkpoint-2" / "training_args.bin", weights_only=False)
    assert args.importance_sampling_level == "sequence"
    assert (args.epsilon, args.epsilon_high) == (3e-4, 4e-4)
