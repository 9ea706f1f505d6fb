"""The multi-GPU launch path: `accelerate launch` commands for one node and for a SLURM allocation of
several, the checks that refuse a launch that cannot work, and the worker entry point (run for real,
in one process on the CPU: the same trainer call every accelerate process makes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rlpipe.config import ConfigError, expand_runs, load_experiment
from rlpipe.train import launch
from rlpipe.train.launch import LaunchError

ROOT = Path(__file__).resolve().parents[2]
PY = "/env/bin/python"
FSDP = str(ROOT / "config" / "accelerate" / "fsdp.yaml")
ZERO3 = str(ROOT / "config" / "accelerate" / "deepspeed-zero3.yaml")
PATHS = {
    "policy": "p",
    "train": "t.jsonl",
    "checkpoints": "c",
    "state_dir": "s",
    "metrics": "m.jsonl",
    "log": "l",
}


def grpo_run(**resources: Any) -> dict[str, Any]:
    return {"name": "r", "method": "grpo", "seed": 0, "resources": resources, "grpo": {}}


def test_single_node_command() -> None:
    run = grpo_run(gpus=3)
    spec = launch.launch_spec(run, PATHS, threads=4, env={})
    assert spec["accelerate_config"] == FSDP and spec["threads"] == 4
    assert spec["paths"]["state_dir"] == str(Path("s").resolve())
    assert 0 < spec["main_process_port"] < 65536 and "main_process_ip" not in spec
    cmd = launch.job_command(spec, "/runs/r/state/launch.json", python=PY)
    assert cmd == [
        PY, "-m", "accelerate.commands.launch", "--config_file", FSDP,
        "--num_processes", "3", "--num_machines", "1", "--machine_rank", "0",
        "--main_process_port", str(spec["main_process_port"]),
        "--module", "rlpipe.train.launch", "worker", "/runs/r/state/launch.json",
    ]  # fmt: skip


def test_multi_node_commands_from_the_slurm_allocation() -> None:
    run = {**grpo_run(gpus=8, nodes=2), "accelerate": "deepspeed-zero3"}
    env = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_JOB_NUM_NODES": "2"}
    asked: list[str] = []

    def hostnames(nodelist: str) -> list[str]:  # stands in for `scontrol show hostnames`
        asked.append(nodelist)
        return ["gpu07", "gpu08"]

    spec = launch.launch_spec(run, PATHS, env=env, hostnames=hostnames)
    assert asked == ["gpu[07-08]"]
    assert (spec["main_process_ip"], spec["main_process_port"]) == ("gpu07", 20000 + 4242)
    # The job (on the first node) starts one task per node ...
    assert launch.job_command(spec, "/s/launch.json", python=PY) == [
        "srun", "--overlap", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--gpus-per-node=4",
        "--kill-on-bad-exit=1", PY, "-m", "rlpipe.train.launch", "node", "/s/launch.json",
    ]  # fmt: skip
    # ... and each task launches its node's 4 processes with its SLURM_NODEID as machine rank.
    for node in (0, 1):
        cmd = launch.node_command(spec, "/s/launch.json", {**env, "SLURM_NODEID": str(node)}, python=PY)
        assert cmd == [
            PY, "-m", "accelerate.commands.launch", "--config_file", ZERO3,
            "--num_processes", "8", "--num_machines", "2", "--machine_rank", str(node),
            "--main_process_port", "24242", "--main_process_ip", "gpu07",
            "--module", "rlpipe.train.launch", "worker", "/s/launch.json",
        ]  # fmt: skip
    with pytest.raises(LaunchError, match="SLURM_NODEID 2 is outside the run's 2 nodes"):
        launch.node_command(spec, "/s/launch.json", {**env, "SLURM_NODEID": "2"})
    with pytest.raises(LaunchError, match="runs as an srun task"):
        launch.node_command(spec, "/s/launch.json", env)


def test_multi_node_needs_a_matching_allocation() -> None:
    run = grpo_run(gpus=4, nodes=2)
    with pytest.raises(LaunchError, match=r"resources.nodes: 2 runs inside a SLURM allocation of 2 nodes"):
        launch.launch_spec(run, PATHS, env={})
    env = {"SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "gpu01", "SLURM_JOB_NUM_NODES": "1"}
    with pytest.raises(
        LaunchError, match=r"allocation has 1 node\(s\) \(gpu01\); the train job must request nodes=2"
    ):
        launch.launch_spec(run, PATHS, env=env, hostnames=lambda _: ["gpu01"])


def test_launches_that_cannot_work_are_refused() -> None:
    with pytest.raises(
        LaunchError, match=r"resources.gpus \(3, the total\) must be divisible by resources.nodes \(2\)"
    ):
        launch.processes_per_node(grpo_run(gpus=3, nodes=2))
    with pytest.raises(LaunchError, match=r"resources.nodes: 2 needs resources.gpus >= 2"):
        launch.processes_per_node(grpo_run(gpus=1, nodes=2))
    with pytest.raises(
        LaunchError, match=r"accelerate: 'zero9' is not a file .*known: ddp, deepspeed-zero3, fsdp"
    ):
        launch.accelerate_config({**grpo_run(gpus=2), "accelerate": "zero9"})
    # rlpipe's PPO (and PPO + PCGrad) runs data-parallel under ddp (its default), never sharded
    ppo = {**grpo_run(gpus=2), "method": "ppo", "ppo": {"rollout_batch_size": 8, "minibatch_size": 4}}
    assert (
        launch.single_process_only(ppo) is None
        and launch.single_process_only({**ppo, "pcgrad": True}) is None
    )
    with pytest.raises(
        LaunchError, match=r"^run r: rlpipe's PPO trains data-parallel .*FSDP; use accelerate: ddp .*gpus: 1$"
    ):
        launch.launch_spec({**ppo, "accelerate": "fsdp"}, PATHS, env={})
    with pytest.raises(
        LaunchError, match=r"ppo.minibatch_size \(4\) must be divisible by resources.gpus \(3\)"
    ):
        launch.launch_spec({**ppo, "resources": {"gpus": 3}, "ppo": {"minibatch_size": 4}}, PATHS, env={})
    with pytest.raises(LaunchError, match=r"PCGrad with GRPO runs in one process"):
        launch.launch_spec({**grpo_run(gpus=2), "pcgrad": True}, PATHS, env={})
    assert launch.single_process_only(grpo_run(gpus=2)) is None
    assert not launch.is_distributed(grpo_run(gpus=1)) and not launch.is_distributed(grpo_run())
    assert launch.is_distributed(grpo_run(gpus=2))


def test_config_checks_the_topology_at_parse() -> None:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["runs"] = [{"name": "grpo", "resources": {"gpus": 3, "nodes": 2}}]
    with pytest.raises(ConfigError, match=r"run grpo: resources.gpus \(3, the total\) must be divisible"):
        load_experiment(config, ["x.yaml"])
    config["runs"] = [{"name": "grpo", "accelerate": "missing", "resources": {"gpus": 2}}]
    with pytest.raises(ConfigError, match=r"run grpo: accelerate: 'missing' is not a file"):
        load_experiment(config, ["x.yaml"])
    # what the launcher would refuse at job start is refused while the config loads
    config["runs"] = [{"name": "grpo", "pcgrad": True, "resources": {"gpus": 2}}]
    with pytest.raises(ConfigError, match=r"run grpo: PCGrad with GRPO runs in one process"):
        load_experiment(config, ["x.yaml"])
    config["runs"] = [
        {"name": "ppo", "method": "ppo", "accelerate": "deepspeed-zero3", "resources": {"gpus": 2}}
    ]
    with pytest.raises(ConfigError, match=r"run ppo: rlpipe's PPO trains data-parallel .* is DEEPSPEED"):
        load_experiment(config, ["x.yaml"])


@pytest.mark.parametrize("name", ["fsdp", "deepspeed-zero3"])
def test_accelerate_configs_are_valid_for_accelerate(name: str) -> None:
    """accelerate's own loader accepts the files (it refuses unknown keys) and reads the strategy."""
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(ROOT / "config" / "accelerate" / f"{name}.yaml"))
    expected = {"fsdp": "FSDP", "deepspeed-zero3": "DEEPSPEED"}[name]
    assert config.distributed_type.value == expected and config.mixed_precision == "bf16"
    if name == "fsdp":  # checkpoints must load with from_pretrained: gathered, not sharded
        assert config.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    else:
        assert (
            config.deepspeed_config["zero_stage"] == 3 and config.deepspeed_config["zero3_save_16bit_model"]
        )


def test_seed_experiments_launch_as_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    """The LoRA sweep runs through accelerate on 3 GPUs, GURU's PPO runs on 2; the GSM8K runs stay
    in-process."""
    monkeypatch.setenv("RLPIPE_DATA_ROOT", str(ROOT / "tests" / "fixtures" / "hf"))
    sweep = yaml.safe_load((ROOT / "config" / "experiments" / "musique-lora-sweep.yaml").read_text())
    for run in expand_runs(sweep, "musique-lora-sweep.yaml").values():
        spec = launch.launch_spec(run, PATHS, env={})
        assert launch.job_command(spec, "x.json")[3:8] == [
            "--config_file",
            FSDP,
            "--num_processes",
            "3",
            "--num_machines",
        ]
    # the seed experiment of issues 3 + 5: PPO and PPO + PCGrad on 2 GPUs, through the ddp config
    guru = yaml.safe_load((ROOT / "config" / "experiments" / "guru-mtl.yaml").read_text())
    runs = expand_runs(guru, "guru-mtl.yaml")
    assert sorted(runs) == ["ppo", "ppo-pcgrad"]
    for run in runs.values():
        cmd = launch.job_command(launch.launch_spec(run, PATHS, env={}), "x.json")
        assert cmd[3:7] == [
            "--config_file",
            str(ROOT / "config" / "accelerate" / "ddp.yaml"),
            "--num_processes",
            "2",
        ]
    gsm8k = yaml.safe_load((ROOT / "config" / "experiments" / "gsm8k-ppo-vs-grpo.yaml").read_text())
    assert not any(launch.is_distributed(r) for r in expand_runs(gsm8k, "gsm8k.yaml").values())


def test_worker_entry_point_trains_a_real_run(tmp_path: Path) -> None:
    """`python -m rlpipe.train.launch worker <spec>` (what each accelerate process runs) trains a tiny
    GRPO run on source-style rows (mixed ground-truth types) and exports its checkpoints."""
    from rlpipe.data.tasks import generate
    from rlpipe.models import build_tiny_model
    from rlpipe.tracking.io import write_jsonl

    model = tmp_path / "model"
    arch = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1}
    build_tiny_model(model, {**arch, "max_positions": 64}, seed=0)
    rows = generate("addition", "train", 4, 0)
    # ground truths of several types in one dataset, as GURU's mix has (zebra dict, ARC grid)
    rows += [
        {**rows[0], "id": "z/0", "task": "z", "domain": "logic", "scorer": "zebra",
         "ground_truth": {"header": ["A"], "rows": [["1"]]}, "extra_info": {"split": "train", "k": [1]}},
        {**rows[1], "id": "a/0", "task": "a", "domain": "logic", "scorer": "arc_grid",
         "ground_truth": [[0, 1], [1, 0]], "extra_info": {}},
    ]  # fmt: skip
    write_jsonl(tmp_path / "train.jsonl", rows)
    run = {
        **grpo_run(), "name": "w", "steps": 2, "save_every": 1, "lora": None,
        "grpo": {"num_generations": 2, "per_device_train_batch_size": 4, "max_completion_length": 4},
    }  # fmt: skip
    paths = {
        "policy": str(model), "train": str(tmp_path / "train.jsonl"), "checkpoints": str(tmp_path / "ckpt"),
        "state_dir": str(tmp_path / "state"), "metrics": str(tmp_path / "metrics.jsonl"),
        "log": str(tmp_path / "train.log"),
    }  # fmt: skip
    spec_path = tmp_path / "launch.json"
    spec_path.write_text(json.dumps({"run": run, "paths": paths, "threads": 1}))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    env.pop("RANK", None)
    proc = subprocess.run(
        [sys.executable, "-m", "rlpipe.train.launch", "worker", str(spec_path)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    log_text = Path(paths["log"]).read_text() if Path(paths["log"]).exists() else ""
    assert proc.returncode == 0, proc.stderr[-3000:] + log_text[-3000:]
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["step_1", "step_2"]
    assert (tmp_path / "ckpt" / "step_2" / "config.json").exists()
    metrics = [json.loads(line) for line in Path(paths["metrics"]).read_text().splitlines()]
    assert any("reward/logic" in m for m in metrics) and max(m["step"] for m in metrics) == 2
    assert "worker rank 0" in log_text
