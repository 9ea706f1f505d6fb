"""Every tensor on the training paths lives on the model's device (issue 11), checked on a CPU.

``device_audit.py`` (beside this file) applies CUDA's device rules on the CPU; these tests run the PPO
pre-flight probe, PPO training (separate critic, PCGrad, early stopping), the GRPO pre-flight and
GRPO + PCGrad training under it. The first test shows the audit fails where a GPU would.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from device_audit import DeviceAudit

from rlpipe.data.tasks import generate
from rlpipe.train.methods import build_spec
from rlpipe.train.methods.ppo import PPOSettings
from rlpipe.train.schedule import EARLY_STOPPING_DEFAULTS

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
SCORER = "test_digit_share"  # tests/conftest.py: a dense reward the random tiny model earns


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    out = generate("addition", "train", 8, 0) + generate("sorting", "train", 8, 0)
    for row in out:
        row["scorer"] = SCORER
    return out


def ppo_run(**changes: Any) -> dict[str, Any]:
    ppo = {
        **PPOSettings().as_dict(),
        "rollout_batch_size": 4,
        "samples_per_prompt": 4,
        "minibatch_size": 8,
        "max_new_tokens": 8,
        **changes.pop("ppo", {}),
    }
    run = {"name": "dev", "seed": 0, "steps": 2, "save_every": 1, "method": "ppo", "lora": None}
    return {**run, "pcgrad": False, "ppo": ppo, **changes}


def test_the_audit_flags_what_a_gpu_rejects() -> None:
    weight = torch.nn.Linear(3, 3)
    with DeviceAudit(weight) as audit:
        on_device = weight(torch.ones(2, 3).to("cpu"))  # moved input and parameters: device
        index = torch.arange(2, device=on_device.device)
        _ = on_device[torch.tensor([1, 0])]  # device tensor, host index: allowed on CUDA
        _ = on_device * torch.tensor(2.0)  # host scalar: allowed on CUDA
        _ = on_device + torch.zeros(2, 3).to(on_device.device)
        assert audit.violations == []
        _ = torch.tensor([1.0, -1.0])[index]  # the pre-flight defect of issue 11
        _ = on_device + torch.zeros(2, 3)
        _ = torch.cat([on_device, torch.zeros(1, 3)])
    assert [v.split(":")[0] for v in audit.violations] == ["__getitem__", "add", "cat"]


def test_ppo_preflight_probe_keeps_tensors_on_the_model_device(model_dir, rows) -> None:
    from rlpipe.train.preflight import mask_check

    run = ppo_run()
    with DeviceAudit() as audit:
        result = mask_check(model_dir, rows, run)
    assert result["passed"], result["problems"]
    assert audit.ops > 1000 and audit.violations == [], audit.violations[:5]


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"ppo": {"critic": "separate", "kl_coef": 0.05}}, id="separate-critic-kl"),
        pytest.param({"pcgrad": True, "ppo": {"critic": "shared", "micro_batch_size": 4}}, id="pcgrad-micro"),
    ],
)
def test_ppo_training_keeps_tensors_on_the_model_device(model_dir, rows, tmp_path, changes) -> None:
    from rlpipe.train.ppo import train_ppo

    run = ppo_run(**copy.deepcopy(changes))
    run["early_stopping"] = {**EARLY_STOPPING_DEFAULTS, "patience": 5, "eval_every": 1}
    with DeviceAudit() as audit:
        train_ppo(
            model_dir,
            rows,
            spec=build_spec(run),
            checkpoints_dir=tmp_path / "ck",
            state_dir=tmp_path / "st",
            metrics_path=tmp_path / "metrics.jsonl",
            validation_rows=rows[:4],
        )
    assert audit.ops > 1000 and audit.violations == [], audit.violations[:5]


def test_grpo_preflight_and_pcgrad_training_keep_tensors_on_the_model_device(
    model_dir, rows, tmp_path
) -> None:
    from rlpipe.train.grpo import train_grpo
    from rlpipe.train.preflight import mask_check

    grpo = {"num_generations": 4, "per_device_train_batch_size": 8, "max_completion_length": 8, "beta": 0.04}
    run = {"name": "dev", "seed": 0, "steps": 1, "save_every": 1, "method": "grpo", "lora": None}
    run = {**run, "pcgrad": True, "grpo": grpo}
    with DeviceAudit() as audit:
        result = mask_check(model_dir, rows, run)
        train_grpo(
            model_dir,
            rows,
            spec=build_spec(run),
            checkpoints_dir=tmp_path / "ck",
            state_dir=tmp_path / "st",
            metrics_path=tmp_path / "metrics.jsonl",
        )
    assert result["passed"], result["problems"]
    assert audit.ops > 1000 and audit.violations == [], audit.violations[:5]
