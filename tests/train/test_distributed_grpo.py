"""GRPO under FSDP2 as 2 real processes on this CPU (gloo), checked against one process.

Every 2-process run here is the launcher's own command (``rlpipe.train.launch.job_command``:
``accelerate launch --config_file config/accelerate/fsdp.yaml --num_processes 2 ...``) with the
worker module swapped for ``dist_worker`` (tests/train), which adds a dense toy reward and per-
completion sampling seeds and then runs ``rlpipe.train.launch.main`` unchanged. Without a GPU the
worker keeps accelerate's FSDP2 (``rlpipe.train.accelerate_cpu``); these tests check it did.

* Equivalence: a 3-step run on 2 processes (6 completions each, one group of 4 split over the ranks)
  logs the losses, gradient norms and rewards of one process on the same 12-completion batch, and
  every checkpoint it exports (``from_pretrained``; LoRA: ``PeftModel.from_pretrained``) holds the
  same weights and gives the same greedy completions. Full fine-tune and LoRA.
* A 2-process run killed mid-step (SIGKILL, during step 3), with one rank slow to write its part of
  each checkpoint and the main process slow to commit, and greedy validation (early stopping) every
  step, resumes from checkpoint-2 with 2 processes, logs every step once and ends with the
  uninterrupted run's weights; run again once finished it trains nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from rlpipe.tracking.io import write_json, write_jsonl
from rlpipe.train import launch

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ARCH = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_layers": 2,
    "num_heads": 2,
    "num_kv_heads": 1,
    "max_positions": 64,
}
STEPS = 3
LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"}
# Measured on this CPU (fp32, 1 thread per process, 3 steps): gradient norms and entropies agree to
# 1.4e-7 relative, losses to 1e-8 absolute, rewards exactly; weights to 1.6e-6 absolute (full
# fine-tune; LoRA 1.1e-6: Adam's normalised first steps magnify the float noise of gradient entries
# near 0). The bounds leave room for other thread counts and CPUs.
RTOL, ATOL = 1e-4, 1e-5
TIMEOUT_S = 300


def _run(name: str, processes: int, lora: dict[str, Any] | None) -> dict[str, Any]:
    """A 3-step GRPO run whose global batch is 12 completions (3 prompts x 4) on 1 or 2 processes."""
    return {
        "name": name,
        "method": "grpo",
        "seed": 0,
        "steps": STEPS,
        "save_every": 1,
        "lora": lora,
        "resources": {"gpus": processes} if processes > 1 else {},
        "grpo": {
            "num_generations": 4,
            "per_device_train_batch_size": 12 // processes,
            "max_completion_length": 6,
            "learning_rate": 1e-2 if lora else 1e-3,
            "lr_scheduler_type": "constant",
            "gradient_checkpointing": lora is None,  # both of TRL's paths, under FSDP
        },
    }


def _paths(root: Path, model: Path) -> dict[str, Any]:
    return {
        "policy": str(model),
        "train": str(root.parent / "train.jsonl"),
        "checkpoints": str(root / "ckpt"),
        "state_dir": str(root / "state"),
        "metrics": str(root / "metrics.jsonl"),
        "log": str(root / "train.log"),
        "validation": None,
    }


def _env(hooks: dict[str, Any] | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT / "src")]),
        "CUDA_VISIBLE_DEVICES": "",  # gloo on the CPU, also on a machine with a GPU
        "HF_HUB_OFFLINE": "1",
        "RLPIPE_TEST_WORKER": json.dumps(hooks or {}),
    }
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _launch(run: dict[str, Any], paths: dict[str, Any], hooks: dict[str, Any] | None = None) -> int:
    """``rlpipe.train.launch.launch``'s steps (spec, launch.json, command) with the worker module
    swapped for ``dist_worker``; the launcher and its workers are one process group, killed whole if
    they outlive ``TIMEOUT_S`` (a hang fails the test instead of blocking it)."""
    spec = launch.launch_spec(run, paths, threads=2)
    spec_path = Path(spec["paths"]["state_dir"]) / "launch.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(spec_path, spec)
    cmd = launch.job_command(spec, spec_path)
    cmd[cmd.index("rlpipe.train.launch")] = "dist_worker"
    with open(paths["log"], "a") as log:
        proc = subprocess.Popen(
            cmd, env=_env(hooks), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            return proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"the 2-process run hung (> {TIMEOUT_S} s):\n{_tail(paths['log'])}")


def _one_process(run: dict[str, Any], paths: dict[str, Any]) -> None:
    """The worker entry point in one process, without accelerate (as a ``gpus: 1`` run trains)."""
    spec_path = Path(paths["state_dir"]) / "launch.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(spec_path, {"run": run, "paths": paths, "threads": 1})
    proc = subprocess.run(
        [sys.executable, "-m", "dist_worker", "worker", str(spec_path)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + _tail(paths["log"])


def _tail(path: str) -> str:
    return Path(path).read_text()[-4000:] if Path(path).exists() else ""


def _metrics(path: str | Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return [r for r in rows if "train_runtime" not in r]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2 (2 decoder layers: 2 FSDP units besides the root) and 6 addition prompts."""
    from rlpipe.data.tasks import generate
    from rlpipe.models import build_tiny_model

    root = tmp_path_factory.mktemp("dist_grpo")
    build_tiny_model(root / "model", ARCH, seed=0)
    rows = generate("addition", "train", 6, 0)
    for row in rows:
        row["scorer"] = "test_char_sum"  # dist_worker's dense toy reward
    write_jsonl(root / "train.jsonl", rows)
    return root


def _pair(data: Path, kind: str) -> dict[str, dict[str, Any]]:
    """The same run on 1 and on 2 processes (trained once per module)."""
    lora = LORA if kind == "lora" else None
    out = {}
    for n in (1, 2):
        root = data / f"{kind}-{n}"
        paths = _paths(root, data / "model")
        if not (root / "metrics.jsonl").exists():
            run = _run(kind, n, lora)
            if n == 1:
                _one_process(run, paths)
            else:
                status = _launch(run, paths)
                assert status == 0, _tail(paths["log"])
        out[str(n)] = paths
    return out


def _load(path: Path, base: Path, lora: bool) -> Any:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base if lora else path)
    if lora:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, path)
    return model.eval()


def _greedy(model: Any, tokenizer: Any, prompts: list[str]) -> torch.Tensor:
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model.generate(**enc, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id)


@pytest.mark.parametrize("kind", ["full", "lora"])
def test_fsdp_grpo_on_two_processes_equals_one_process(data: Path, kind: str) -> None:
    from transformers import AutoTokenizer

    # GRPO's default accelerate config: config/accelerate/fsdp.yaml (FSDP2)
    assert launch.distributed_type(launch.accelerate_config(_run(kind, 2, None))) == "FSDP"
    runs = _pair(data, kind)
    log = Path(runs["2"]["log"]).read_text()
    assert "worker rank 1 of 2" in log and "FSDP2 on the CPU over gloo" in log
    # the trainer saved through accelerate's FSDP path (the gathered full state dict, rank 0)
    assert "Saving model to" in log and "pytorch_model_fsdp.bin" in log
    state = Path(runs["2"]["state_dir"]) / f"checkpoint-{STEPS}"
    assert {"pytorch_model_fsdp.bin", "optimizer.bin", "rng_state_0.pth", "rng_state_1.pth"} <= {
        p.name for p in state.iterdir()
    }

    one, two = _metrics(runs["1"]["metrics"]), _metrics(runs["2"]["metrics"])
    assert [m["step"] for m in one] == [m["step"] for m in two] == list(range(1, STEPS + 1))
    assert all(m["grad_norm"] > 0 for m in one)  # the toy reward gives the update a gradient
    for a, b in zip(one, two, strict=True):
        for key in ("loss", "grad_norm", "reward", "reward_std", "completions/mean_length"):
            assert b[key] == pytest.approx(a[key], rel=RTOL, abs=ATOL), (a["step"], key)

    base = data / "model"
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.padding_side = "left"
    prompts = [f"{a}+{b}=" for a, b in ((12, 30), (7, 5), (41, 8))]
    for step in range(1, STEPS + 1):
        name = f"step_{step}"
        exported = {p.name for p in (Path(runs["2"]["checkpoints"]) / name).iterdir()}
        assert not exported & {"pytorch_model_fsdp.bin", "optimizer.bin"}  # the model only
        models = [_load(Path(runs[n]["checkpoints"]) / name, base, kind == "lora") for n in ("1", "2")]
        weights = [dict(m.named_parameters()) for m in models]
        assert weights[0].keys() == weights[1].keys()
        for key, value in weights[0].items():
            torch.testing.assert_close(weights[1][key], value, rtol=RTOL, atol=ATOL, msg=key)
        outputs = [_greedy(m, tokenizer, prompts) for m in models]
        assert torch.equal(outputs[0], outputs[1]), name
    # training moved the weights (LoRA: the adapter's B matrices start at 0)
    start = _load(base, base, False)
    trained = _load(Path(runs["2"]["checkpoints"]) / f"step_{STEPS}", base, kind == "lora")
    if kind == "lora":
        trained = trained.merge_and_unload()
    moved = [not torch.equal(a, b) for a, b in zip(start.parameters(), trained.parameters(), strict=True)]
    assert sum(moved) > len(moved) // 2


def test_fsdp_grpo_killed_mid_step_resumes_on_two_processes(data: Path) -> None:
    """SIGKILL of rank 0 while generating step 3 (checkpoint-2 committed): every rank dies and the
    launcher fails; rank 1 wrote its part of every checkpoint 1.5 s late and the main process
    committed each 1.5 s late, and no save hung or went out without rank 1's file. The rerun
    resumes at step 2 with 2 processes and ends where the uninterrupted run ended."""
    from transformers import AutoModelForCausalLM

    from rlpipe.train.schedule import EARLY_STOPPING_DEFAULTS

    root = data / "killed"
    paths = {**_paths(root, data / "model"), "validation": str(data / "train.jsonl")}
    run = _run("full", 2, None)
    # greedy validation every step on every rank (FSDP's forward is collective): it changes no
    # weight, and its stopper's state must come back with the resume
    run["early_stopping"] = {**EARLY_STOPPING_DEFAULTS, "patience": 100, "min_delta": 0.0, "eval_every": 1}
    hooks = {"slow_save": {"1": 1.5}, "slow_commit": 1.5, "kill": [0, 3]}
    assert _launch(run, paths, hooks) != 0
    state = Path(paths["state_dir"])
    assert sorted(p.name for p in state.glob("checkpoint-*")) == ["checkpoint-2"]
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {p.name for p in (state / "checkpoint-2").iterdir()}
    assert [m["step"] for m in _metrics(state / "metrics.jsonl")] == [1, 2]

    assert _launch(run, paths) == 0, _tail(paths["log"])
    log = Path(paths["log"]).read_text()
    assert f"resuming from {paths['state_dir']}/checkpoint-2" in log
    lines = _metrics(paths["metrics"])
    assert [m["step"] for m in lines] == [1, 2, 3]
    assert all("validation_reward" in m for m in lines)
    saved = json.loads((state / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    stopper = saved["stateful_callbacks"]["EarlyStoppingCallback"]["attributes"]["early_stopping"]
    assert stopper["last_decision"]["best_step"] is not None
    uninterrupted = _metrics(_pair(data, "full")["2"]["metrics"])
    for a, b in zip(uninterrupted, lines, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=RTOL, abs=ATOL)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=RTOL, abs=ATOL)
    resumed = AutoModelForCausalLM.from_pretrained(Path(paths["checkpoints"]) / f"step_{STEPS}")
    reference = AutoModelForCausalLM.from_pretrained(
        Path(_pair(data, "full")["2"]["checkpoints"]) / f"step_{STEPS}"
    )
    for (key, a), b in zip(reference.named_parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=RTOL, atol=ATOL, msg=key)

    # run again after its last step (killed before the workflow marked it finished): nothing trains
    assert _launch(run, paths) == 0, _tail(paths["log"])
    assert [m["step"] for m in _metrics(paths["metrics"])] == [1, 2, 3]
    assert sorted(p.name for p in state.glob("checkpoint-*")) == [f"checkpoint-{STEPS}"]
