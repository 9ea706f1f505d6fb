"""Preemption: SIGTERM/SIGUSR1 save at the end of the step and exit non-zero; a rerun resumes exactly.

SLURM signals a job before killing it (preemption, time limit). The PPO test runs the real entry
point in a subprocess, signals it at a random step after the first checkpoint, and checks that
the interrupted-and-resumed run ends identical to an uninterrupted one: same optimizer steps,
same checkpoints, same per-step rewards (data order and RNG restored) and bit-identical weights.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from rlpipe.data.tasks import generate
from rlpipe.train.checkpoints import latest_trainer_checkpoint, live_metrics, trainer_checkpoints
from rlpipe.train.methods import build_spec
from rlpipe.train.methods.ppo import PPOSettings
from rlpipe.train.signals import TrainingInterrupted

STEPS, SAVE_EVERY = 8, 2

# The child registers the same toy reward (the random tiny model earns 0 from the real scorers).
DRIVER = textwrap.dedent(
    """
    import json, logging, sys
    from rlpipe.rewards.registry import SCORERS
    SCORERS.setdefault("test_digit_share", lambda r, g, e=None: sum(map(str.isdigit, r)) / 8)
    from rlpipe.runtime import init_job
    from rlpipe.train.methods import build_spec
    from rlpipe.train.ppo import train_ppo

    job = json.load(open(sys.argv[1]))
    logging.basicConfig(level=logging.INFO)
    init_job(1, job["run"]["seed"])
    train_ppo(job["policy"], job["rows"], spec=build_spec(job["run"]), **job["out"])
    """
)


def rows() -> list[dict[str, Any]]:
    out = generate("addition", "train", 12, 0) + generate("sorting", "train", 12, 0)
    for row in out:
        row["scorer"] = "test_digit_share"
    return out


def out_dirs(root: Path) -> dict[str, str]:
    return {
        "checkpoints_dir": str(root / "checkpoints"),
        "state_dir": str(root / "state"),
        "metrics_path": str(root / "metrics.jsonl"),
    }


def ppo_run() -> dict[str, Any]:
    ppo = {
        **PPOSettings().as_dict(),
        "rollout_batch_size": 8,
        "samples_per_prompt": 4,
        "minibatch_size": 16,
        "ppo_epochs": 2,
        "max_new_tokens": 8,
        "learning_rate": 3e-3,
        "critic_learning_rate": 1e-2,
    }
    return {
        "name": "resume",
        "seed": 3,
        "steps": STEPS,
        "save_every": SAVE_EVERY,
        "method": "ppo",
        "lora": None,
        "pcgrad": True,
        "ppo": ppo,
    }


def run_in_process(job: dict[str, Any]) -> None:
    from rlpipe.runtime import init_job
    from rlpipe.train.methods import build_spec
    from rlpipe.train.ppo import train_ppo

    old = torch.get_num_threads()
    try:
        init_job(1, job["run"]["seed"])
        train_ppo(job["policy"], job["rows"], spec=build_spec(job["run"]), **job["out"])
    finally:
        torch.set_num_threads(old)


def metric_lines(path: str) -> list[dict[str, Any]]:
    p = Path(path)
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path / "model.safetensors")


def test_ppo_sigterm_saves_exits_nonzero_and_resumes_identically(model_dir, tmp_path):
    job = {"policy": model_dir, "rows": rows(), "run": ppo_run(), "out": out_dirs(tmp_path / "interrupted")}
    (tmp_path / "job.json").write_text(json.dumps(job))
    (tmp_path / "driver.py").write_text(DRIVER)
    stop_after = random.randint(SAVE_EVERY, STEPS // 2)  # after the first checkpoint, well before the end
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    child = subprocess.Popen(
        [sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "job.json")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    live = live_metrics(job["out"]["state_dir"])  # the output appears only when the run ends
    while len(metric_lines(str(live))) < stop_after:
        assert child.poll() is None, child.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the child made no progress"
        time.sleep(0.01)
    child.send_signal(signal.SIGTERM)
    output = child.communicate(timeout=60)[0].decode()
    assert child.returncode == 128 + signal.SIGTERM, f"stop_after={stop_after}\n{output[-3000:]}"
    assert "interrupted by SIGTERM" in output

    state = Path(job["out"]["state_dir"])
    latest = latest_trainer_checkpoint(state)
    assert latest is not None and list(trainer_checkpoints(state)) == [int(latest.name.split("-")[1])]
    stopped = json.loads((latest / "trainer_state.json").read_text())["global_step"]
    assert stop_after <= stopped < STEPS, (stop_after, stopped)
    assert {p.name for p in latest.iterdir()} >= {
        "optimizer.pt",
        "rng_state.pth",
        "critic",
        "model.safetensors",
    }
    published = sorted(p.name for p in Path(job["out"]["checkpoints_dir"]).iterdir())
    assert published == [f"step_{s}" for s in range(SAVE_EVERY, stopped + 1, SAVE_EVERY)]  # no extra export

    assert not Path(job["out"]["metrics_path"]).exists()  # nothing Snakemake would take as complete
    # a retry starts after Snakemake deleted the failed job's outputs
    shutil.rmtree(job["out"]["checkpoints_dir"])
    run_in_process(job)  # the rerun resumes, with the metrics of the steps before the interruption
    reference = {**job, "out": out_dirs(tmp_path / "uninterrupted")}
    run_in_process(reference)

    for a, b in ((job, reference),):
        ck_a, ck_b = Path(a["out"]["checkpoints_dir"]), Path(b["out"]["checkpoints_dir"])
        assert sorted(p.name for p in ck_a.iterdir()) == sorted(p.name for p in ck_b.iterdir())
        assert [p.name for p in sorted(ck_a.iterdir())] == [f"step_{s}" for s in (2, 4, 6, 8)]
        final_a = json.loads(
            (latest_trainer_checkpoint(a["out"]["state_dir"]) / "trainer_state.json").read_text()
        )
        final_b = json.loads(
            (latest_trainer_checkpoint(b["out"]["state_dir"]) / "trainer_state.json").read_text()
        )
        assert final_a["global_step"] == final_b["global_step"] == STEPS
        assert final_a["optimizer_steps"] == final_b["optimizer_steps"] == STEPS * 2 * 2
        lines_a, lines_b = metric_lines(a["out"]["metrics_path"]), metric_lines(b["out"]["metrics_path"])
        assert [m["step"] for m in lines_a] == list(range(1, STEPS + 1))
        assert [m["reward"] for m in lines_a] == [m["reward"] for m in lines_b]
        for step in (2, 8):
            wa, wb = weights(ck_a / f"step_{step}"), weights(ck_b / f"step_{step}")
            assert all(torch.equal(wa[k], wb[k]) for k in wb), f"step_{step} differs after resume"


def grpo_run(name: str) -> dict[str, Any]:
    """A 3-step GRPO run saving every 2 steps (so a signal at step 1 saves an unscheduled checkpoint)."""
    return {
        "name": name,
        "seed": 0,
        "steps": 3,
        "save_every": 2,
        "method": "grpo",
        "lora": None,
        "grpo": {
            "num_generations": 4,
            "per_device_train_batch_size": 8,
            "max_completion_length": 8,
            "learning_rate": 1e-3,
            "beta": 0.0,
        },
    }


def signal_during_step_1(monkeypatch: pytest.MonkeyPatch, signum: int) -> None:
    """Deliver ``signum`` to this process while step 1 runs (as SLURM would, asynchronously):
    train_grpo imports its callbacks when called, so the progress callback is swapped for one
    that signals."""
    from transformers import TrainerCallback

    class SignalAtStep(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 0:
                os.kill(os.getpid(), signum)

    monkeypatch.setattr("rlpipe.train.callbacks.ProgressCallback", lambda what: SignalAtStep())


def test_grpo_signal_saves_unscheduled_checkpoint_and_resumes(model_dir, tmp_path, monkeypatch):
    """GRPO (TRL) path: SIGUSR1 mid-run -> checkpoint of that step (not exported), non-zero exit, resume."""
    import rlpipe.train.grpo as grpo

    run = grpo_run("grpo-resume")
    out = out_dirs(tmp_path)
    signal_during_step_1(monkeypatch, signal.SIGUSR1)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.raises(TrainingInterrupted) as info:
            grpo.train_grpo(model_dir, rows(), spec=build_spec(run), **out)
    finally:
        monkeypatch.undo()
    assert info.value.code == 128 + signal.SIGUSR1 and info.value.step == 1
    assert list(trainer_checkpoints(out["state_dir"])) == [1]
    assert not Path(out["checkpoints_dir"]).exists() or not any(Path(out["checkpoints_dir"]).iterdir())
    assert not Path(out["metrics_path"]).exists()
    assert [m["step"] for m in metric_lines(str(live_metrics(out["state_dir"]))) if "reward" in m] == [1]
    try:
        grpo.train_grpo(model_dir, rows(), spec=build_spec(run), **out)
    finally:
        torch.set_num_threads(old)
    assert sorted(p.name for p in Path(out["checkpoints_dir"]).iterdir()) == ["step_2", "step_3"]
    assert [m["step"] for m in metric_lines(out["metrics_path"]) if "reward" in m] == [1, 2, 3]
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL  # handlers are restored


def test_grpo_ctrl_c_saves_and_a_torn_checkpoint_and_metrics_line_are_skipped_on_resume(
    model_dir, tmp_path, monkeypatch, caplog
):
    """Issue 23: SIGINT saves like SIGTERM; a kill during a save (checkpoint-2 with an empty
    trainer_state.json) and a torn last metrics line no longer block every rerun."""
    import rlpipe.train.grpo as grpo

    run = grpo_run("grpo-torn")
    out = out_dirs(tmp_path)
    signal_during_step_1(monkeypatch, signal.SIGINT)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.raises(TrainingInterrupted) as info:
            grpo.train_grpo(model_dir, rows(), spec=build_spec(run), **out)
        monkeypatch.undo()
        assert info.value.code == 128 + signal.SIGINT and info.value.step == 1
        assert list(trainer_checkpoints(out["state_dir"])) == [1]
        # what a kill in the next save and in the next append leave behind
        torn = Path(out["state_dir"]) / "checkpoint-2"
        torn.mkdir()
        (torn / "trainer_state.json").write_text("")
        live = live_metrics(out["state_dir"])
        with live.open("a") as fh:
            fh.write('{"step": 2, "rew')
        with caplog.at_level("WARNING"):
            assert list(trainer_checkpoints(out["state_dir"])) == [1]
            grpo.train_grpo(model_dir, rows(), spec=build_spec(run), **out)
    finally:
        torch.set_num_threads(old)
    assert "checkpoint-2: no manifest.json" in caplog.text  # a save without its manifest: never committed
    assert "dropping a torn last line" in caplog.text
    assert sorted(p.name for p in Path(out["checkpoints_dir"]).iterdir()) == ["step_2", "step_3"]
    assert [m["step"] for m in metric_lines(out["metrics_path"]) if "reward" in m] == [1, 2, 3]
    # one closing summary row, the finished segment's: the interrupted one's was dropped on resume
    assert [m["step"] for m in metric_lines(out["metrics_path"]) if "train_runtime" in m] == [3]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_trim_metrics_names_a_damaged_line_and_a_second_ctrl_c_stops_at_once(tmp_path) -> None:
    from rlpipe.train.checkpoints import trim_metrics
    from rlpipe.train.signals import StopRequest

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, "x\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not a JSON metrics line"):
        trim_metrics(path, 3)
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "rew')
    trim_metrics(path, 5)
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n'
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert stop.requested == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)


def test_the_sft_warm_up_stops_on_a_signal_and_resumes_to_the_same_weights(model_dir, tmp_path, monkeypatch):
    """Issue 23: the warm-up commits checkpoints and resumes like training: interrupted at step 1 of 4
    and rerun, it ends bit-identical to an uninterrupted warm-up, its output carrying a manifest."""
    from safetensors.torch import load_file

    from rlpipe.tracking.manifest import verify_manifest
    from rlpipe.train.sft import train_sft

    data = generate("addition", "train", 16, 0)

    def warm_up(name: str) -> Path:
        train_sft(
            model_dir, data, tmp_path / name, steps=4, batch_size=4, learning_rate=1e-3, seed=0,
            work_dir=tmp_path / f"{name}-state", gradient_checkpointing=False,
        )  # fmt: skip
        return tmp_path / name

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        signal_during_step_1(monkeypatch, signal.SIGTERM)
        with pytest.raises(TrainingInterrupted) as info:
            warm_up("resumed")
        monkeypatch.undo()
        assert info.value.step == 1 and not (tmp_path / "resumed").exists()
        assert list(trainer_checkpoints(tmp_path / "resumed-state")) == [1]
        resumed, straight = warm_up("resumed"), warm_up("straight")
    finally:
        torch.set_num_threads(old)
    verify_manifest(resumed)
    a, b = load_file(resumed / "model.safetensors"), load_file(straight / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
