"""Data-parallel PPO and PCGrad across real processes (torch.distributed on gloo, this CPU).

* PCGrad: the projection that 2 ranks compute from their halves of a batch equals the 1-process
  projection of the whole batch's domain gradients, also when a domain is missing on one rank.
* PPO: one update on 2 ranks, each with its share of the same sampled rollout, gives the
  parameters, advantages (whitened with global statistics) and logged statistics of the
  1-process update on the whole rollout.
* End to end: a tiny PPO + PCGrad run launched through ``rlpipe.train.launch`` (accelerate launch,
  2 processes) trains, checkpoints, exports loadable models, writes one metrics line per step and
  resumes with 2 processes.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp

from rlpipe.data.tasks import generate
from rlpipe.rewards.registry import SCORERS
from rlpipe.train import core_algos as algos
from rlpipe.train import distributed as dp
from rlpipe.train.methods import build_spec
from rlpipe.train.methods.ppo import PPOSettings
from rlpipe.train.pcgrad import flatten_grads, pcgrad_backward, project_conflicting
from rlpipe.train.schedule import EARLY_STOPPING_DEFAULTS

ROOT = Path(__file__).resolve().parents[2]
# A dense toy reward that varies between the tiny model's random completions (their characters).
SCORER = "test_char_sum"
SCORERS.setdefault(SCORER, lambda response, ground_truth, extra=None: sum(map(ord, response)) % 97 / 96)


@pytest.fixture(autouse=True)
def cpu_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    """These are CPU (gloo) tests: hide any GPU from the ranks, so a one-GPU machine runs them too
    (two NCCL ranks cannot share one GPU)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, world: int, port: int) -> None:
    """The environment torchrun gives each process; the code under test joins the group from it."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    dp.init_from_env()


def _spawn(fn: Any, *args: Any) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(fn, args=(2, _free_port(), out, *args), nprocs=2, join=True)
        return [torch.load(f"{out}/rank{r}.pt", weights_only=False) for r in range(2)]


# ------------------------------------------------------------------------------------------ PCGrad

# 8 samples, 3 domains; domain "c" only in the first half (rank 0's share)
DOMAINS = ["a", "a", "b", "c", "a", "b", "b", "a"]
TARGETS = {"a": 1.0, "b": -1.0, "c": 0.3}


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()


def _shares(model: torch.nn.Module, rows: slice, world: int) -> dict[str, torch.Tensor]:
    """Each domain's share of the batch loss, over the rows of ``rows``, weighted as PPO weights them:
    sum of per-sample losses / global sample count * ranks (a domain absent here: a constant 0)."""
    x = torch.linspace(-1, 1, 24, dtype=torch.float64).view(8, 3)[rows]
    domains = DOMAINS[rows]
    out = model(x).squeeze(-1)
    shares = {}
    for d in sorted(set(DOMAINS)):
        keep = torch.tensor([x == d for x in domains])
        if not keep.any():
            shares[d] = torch.zeros((), dtype=torch.float64)
            continue
        shares[d] = (out[keep] - TARGETS[d]).square().sum() / len(DOMAINS) * world
    return shares


def _pcgrad_worker(rank: int, world: int, port: int, out: str) -> None:
    _join(rank, world, port)
    try:
        model = _mlp()
        half = slice(rank * 4, rank * 4 + 4)
        stats = pcgrad_backward(
            model.parameters(), _shares(model, half, world), torch.Generator().manual_seed(3)
        )
        torch.save(
            {"grad": flatten_grads(model.parameters()), "projections": stats.num_projections},
            f"{out}/rank{rank}.pt",
        )
    finally:
        dp.shutdown()


def test_pcgrad_on_two_ranks_equals_one_process_on_the_whole_batch():
    results = _spawn(_pcgrad_worker)
    model = _mlp()
    stats = pcgrad_backward(
        model.parameters(), _shares(model, slice(0, 8), 1), torch.Generator().manual_seed(3)
    )
    expected = flatten_grads(model.parameters())
    assert stats.num_projections > 0  # the domains conflict: the projection matters
    for res in results:  # identical on both ranks, and equal to the whole batch's projection
        torch.testing.assert_close(res["grad"], expected, rtol=1e-10, atol=1e-12)
        assert res["projections"] == stats.num_projections
    # what a per-rank projection (then averaged) would give instead: not the same
    local = []
    for r in range(2):
        model.zero_grad()
        grads = []
        for loss in _shares(model, slice(r * 4, r * 4 + 4), 2).values():
            model.zero_grad()
            if loss.requires_grad:
                loss.backward(retain_graph=True)
            grads.append(flatten_grads(model.parameters()).clone())
        local.append(project_conflicting(grads, torch.Generator().manual_seed(3))[0])
    assert not torch.allclose((local[0] + local[1]) / 2, expected, atol=1e-6)


# ------------------------------------------------------------------------------------------- PPO


def _rows() -> list[dict[str, Any]]:
    add, sort = generate("addition", "train", 3, 0), generate("sorting", "train", 1, 0)
    rows = [add[0], sort[0], add[1], add[2]]  # rank 0: math + logic; rank 1: math only
    for row in rows:
        row["scorer"] = SCORER
    return rows


def _ppo_run(**changes: Any) -> dict[str, Any]:
    ppo = {
        **PPOSettings().as_dict(),
        "rollout_batch_size": 4,
        "samples_per_prompt": 2,
        "minibatch_size": 8,  # one minibatch: the update is one optimizer step on the whole batch
        "ppo_epochs": 1,
        "max_new_tokens": 6,
        "learning_rate": 1e-3,
        "critic_learning_rate": 1e-2,
        **changes.pop("ppo", {}),
    }
    return {
        "name": "dp",
        "seed": 0,
        "steps": 1,
        "save_every": 1,
        "method": "ppo",
        "lora": None,
        "ppo": ppo,
        **changes,
    }


def _dirs(root: Path) -> dict[str, Path]:
    return {"checkpoints_dir": root / "ck", "state_dir": root / "st", "metrics_path": root / "m.jsonl"}


def _slice(ro: Any, rows: slice) -> Any:
    from rlpipe.train.ppo import Rollout

    return Rollout(
        input_ids=ro.input_ids[rows],
        attention_mask=ro.attention_mask[rows],
        position_ids=ro.position_ids[rows],
        prompt_len=ro.prompt_len,
        mask=ro.mask[rows],
        scores=ro.scores[rows],
        domains=ro.domains[rows],
        texts=ro.texts[rows],
        clipped=ro.clipped[rows],
    )


def _params(trainer: Any, grad: bool = False) -> torch.Tensor:
    params = trainer.param_groups["policy"] + trainer.param_groups["critic"]
    return torch.cat([(p.grad if grad else p).detach().reshape(-1) for p in params])


def _shorten(ro: Any, rows: slice, keep: int) -> None:
    """End the completions of ``rows`` after ``keep`` tokens (as an EOS would): the ranks' token
    counts differ, so a rank's loss weight (its share of the minibatch's tokens) matters."""
    ro.mask[rows, keep:] = 0
    ro.attention_mask[rows, ro.prompt_len + keep :] = 0


def _ppo_worker(rank: int, world: int, port: int, out: str, model_dir: str, case_path: str) -> None:
    from rlpipe.train.ppo import PPOTrainer

    _join(rank, world, port)
    try:
        case = torch.load(case_path, weights_only=False)
        trainer = PPOTrainer(
            model_dir, case["rows"], spec=build_spec(case["run"]), **_dirs(Path(out) / f"r{rank}")
        )
        n = len(case["rollout"]) // world
        ro = trainer.prepare(_slice(case["rollout"], slice(rank * n, (rank + 1) * n)))
        upd = trainer.update(ro)
        torch.save(
            {
                "params": _params(trainer),
                "grads": _params(trainer, grad=True),
                "advantages": ro.advantages,
                "mask": ro.mask,
                "upd": upd,
                "stats": ro.stats,
            },
            f"{out}/rank{rank}.pt",
        )
    finally:
        dp.shutdown()


@pytest.mark.parametrize(
    "changes",
    [
        # 3 optimizer steps on the one fixed batch (one minibatch per epoch): Adam's later steps
        # depend on the gradients' scale, the first does not
        pytest.param({"ppo": {"ppo_epochs": 3}}, id="separate-critic-3-steps"),
        pytest.param({"ppo": {"ppo_epochs": 3, "critic": "shared"}}, id="shared-critic-3-steps"),
        pytest.param(
            {"pcgrad": True, "ppo": {"critic": "shared", "ppo_epochs": 3}},
            id="pcgrad-logic-missing-on-rank-1-3-steps",
        ),
        # each rank's 4 sequences in micro-batches of 2 (PCGrad: a domain's gradient accumulated over
        # them, then all-reduced, then projected); the one-process reference takes the batch at once
        pytest.param(
            {"pcgrad": True, "ppo": {"critic": "shared", "micro_batch_size": 2}}, id="pcgrad-micro-batches"
        ),
        pytest.param(
            {"ppo": {"micro_batch_size": 2, "gradient_checkpointing": True}}, id="micro-batches-checkpointing"
        ),
    ],
)
def test_ppo_update_on_two_ranks_equals_one_process(model_dir, tmp_path, changes):
    from rlpipe.train.ppo import PPOTrainer

    rows, run = _rows(), _ppo_run(**copy.deepcopy(changes))
    whole = copy.deepcopy(run)  # the one-process reference: the whole minibatch in one pass
    whole["ppo"].update(micro_batch_size=None, gradient_checkpointing=False)
    single = PPOTrainer(model_dir, rows, spec=build_spec(whole), **_dirs(tmp_path / "single"))
    sampled = single.sample(rows)  # one fixed rollout for both: sampling randomness plays no part
    assert float(sampled.scores[:4].mean()) != pytest.approx(float(sampled.scores[4:].mean()), abs=1e-2)
    _shorten(sampled, slice(5, 8), 2)  # rank 1: 6 + 3 * 2 tokens, rank 0: 4 * 6
    assert sampled.domains[4:] == ["math"] * 4 and "logic" in sampled.domains[:4]
    case_path = tmp_path / "case.pt"
    torch.save({"rows": rows, "run": run, "rollout": copy.deepcopy(sampled)}, case_path)
    results = _spawn(_ppo_worker, model_dir, str(case_path))
    before = _params(single).clone()
    ro = single.prepare(sampled)
    upd = single.update(ro)
    after = _params(single)

    # whitening used the global mean and variance: each rank's advantages are its slice of the
    # one-process ones, and a rank's own mean is not 0 (local whitening would centre it)
    for r, res in enumerate(results):
        torch.testing.assert_close(
            res["advantages"], ro.advantages[r * 4 : (r + 1) * 4], rtol=1e-4, atol=1e-5
        )
    assert max(abs(float(algos.masked_mean(res["advantages"], res["mask"]))) for res in results) > 1e-3
    for key in ("advantages/mean", "advantages/std", "values/mean", "returns/mean", "kl"):
        assert results[0]["stats"][key] == pytest.approx(ro.stats[key], rel=1e-4, abs=1e-6), key

    # the averaged gradient is the whole minibatch's (Adam's first step hides its scale: check it)
    grads = _params(single, grad=True)
    for res in results:
        torch.testing.assert_close(res["grads"], grads, rtol=1e-4, atol=1e-7)
    # one optimizer step: identical replicas, equal to the one-process parameters
    assert not torch.allclose(after, before)
    torch.testing.assert_close(results[0]["params"], results[1]["params"], rtol=0, atol=0)
    torch.testing.assert_close(results[0]["params"], after, rtol=1e-4, atol=1e-5)
    # ... and the logged statistics are the global ones
    keys = ["policy_loss", "value_loss", "entropy", "approx_kl", "clip_ratio", "grad_norm"]
    if run.get("pcgrad"):
        keys += ["pcgrad/cos/logic__math", "pcgrad/grad_norm/logic", "pcgrad/projections"]
    else:
        keys += ["critic_grad_norm"]
    for res in results:
        assert sorted(res["upd"]) == sorted(upd)
        for key in keys:
            assert res["upd"][key] == pytest.approx(upd[key], rel=1e-4, abs=1e-6), key


def _signal_worker(rank: int, world: int, port: int, out: str, model_dir: str) -> None:
    import signal

    from rlpipe.train.ppo import PPOTrainer
    from rlpipe.train.signals import TrainingInterrupted

    _join(rank, world, port)
    try:
        rows = _rows()
        es = {**EARLY_STOPPING_DEFAULTS, "patience": 100, "min_delta": 0.0, "eval_every": 1}
        run = _ppo_run(steps=3, save_every=3, early_stopping=es)
        dirs = _dirs(Path(out) / "run")  # shared by the ranks, as under accelerate launch
        trainer = PPOTrainer(model_dir, rows, spec=build_spec(run), validation_rows=rows[:2], **dirs)
        update = trainer.update

        def update_then_signal(ro: Any) -> dict[str, float]:
            if rank == 1 and trainer.step == 1:  # only rank 1 is signalled, during step 2
                os.kill(os.getpid(), signal.SIGTERM)
            return update(ro)

        trainer.update = update_then_signal
        result: dict[str, Any] = {}
        try:
            trainer.train()
        except TrainingInterrupted as exc:
            result["interrupted"] = (exc.step, exc.signum)
        resumed = PPOTrainer(model_dir, rows, spec=build_spec(run), validation_rows=rows[:2], **dirs)
        result["resumed_at"] = resumed.step
        resumed.train()
        result["params"] = _params(resumed)
        torch.save(result, f"{out}/rank{rank}.pt")
    finally:
        dp.shutdown()


def test_a_signal_to_one_rank_stops_all_after_the_same_step_and_they_resume(model_dir):
    """SIGTERM reaches rank 1 only: both ranks save one checkpoint after step 2 and exit with the
    signal's status; 2 new trainers resume there. Validation (early stopping) runs every step on
    rank 0 and its decision reaches rank 1 (else the ranks would part)."""
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_signal_worker, args=(2, _free_port(), out, model_dir), nprocs=2, join=True)
        results = [torch.load(f"{out}/rank{r}.pt", weights_only=False) for r in range(2)]
        state = Path(out) / "run" / "st"
        lines = [json.loads(line) for line in (Path(out) / "run" / "m.jsonl").read_text().splitlines()]
        saved = json.loads((state / "checkpoint-3" / "trainer_state.json").read_text())
    import signal

    for res in results:
        assert res["interrupted"] == (2, signal.SIGTERM) and res["resumed_at"] == 2
    torch.testing.assert_close(results[0]["params"], results[1]["params"], rtol=0, atol=0)
    assert [m["step"] for m in lines] == [1, 2, 3]  # one line per step, the resumed step not twice
    assert all("validation_reward" in m for m in lines)
    assert saved["global_step"] == 3 and saved["early_stopping"]["last_decision"]["best_step"] is not None


# ----------------------------------------------------------------------------------- end to end


@pytest.mark.e2e
@pytest.mark.parametrize(
    "pcgrad, critic",
    [pytest.param(True, "separate", id="pcgrad"), pytest.param(False, "shared", id="shared")],
)
def test_ppo_through_accelerate_launch_on_two_processes(model_dir, tmp_path, pcgrad, critic):
    """The launch path itself (accelerate launch + torchrun, ddp.yaml, gloo on this CPU): train 2
    steps, resume to 3 with 2 processes, export loadable checkpoints, one metrics line per step.
    PPO + PCGrad with a separate critic, and plain PPO with the value head on the policy."""
    from transformers import AutoModelForCausalLM

    from rlpipe.tracking.io import write_jsonl
    from rlpipe.train import launch

    rows = generate("addition", "train", 8, 0) + generate("sorting", "train", 8, 0)  # real scorers
    write_jsonl(tmp_path / "train.jsonl", rows)
    run = _ppo_run(
        pcgrad=pcgrad,
        resources={"gpus": 2},
        # the real scorers give a random tiny model 0: an entropy bonus gives the update a gradient
        ppo={
            "entropy_coef": 0.05,
            "rollout_batch_size": 8,
            "minibatch_size": 4,
            "max_new_tokens": 4,
            "critic": critic,
        },
    )
    paths = {
        "policy": model_dir,
        "train": str(tmp_path / "train.jsonl"),
        "checkpoints": str(tmp_path / "ckpt"),
        "state_dir": str(tmp_path / "state"),
        "metrics": str(tmp_path / "metrics.jsonl"),
        "log": str(tmp_path / "train.log"),
        "validation": None,  # as workflow/scripts/train.py passes it for a run without early stopping
    }
    assert launch.distributed_type(launch.accelerate_config(run)) == "MULTI_GPU"  # ppo's default: ddp

    def train(steps: int) -> None:
        try:
            launch.launch({**run, "steps": steps}, paths, threads=2)
        except SystemExit as exc:
            log = Path(paths["log"]).read_text() if Path(paths["log"]).exists() else ""
            pytest.fail(f"launcher exited {exc.code}:\n{log[-4000:]}")

    train(2)
    state = tmp_path / "state"
    assert (state / "checkpoint-2" / "rng_state_1.pth").exists()  # each rank's streams are saved
    train(3)  # resumes from checkpoint-2 with 2 processes
    log = Path(paths["log"]).read_text()
    assert "worker rank 1 of 2" in log and "resumed from" in log
    lines = [json.loads(line) for line in Path(paths["metrics"]).read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2, 3]  # rank 0 writes, once per step
    # 8 prompts x 2 samples per step, global minibatch 4: 4 optimizer steps per step
    assert [m["optimizer_steps"] for m in lines] == [4, 8, 12]
    for m in lines:
        assert ("pcgrad/cos/logic__math" in m) == pcgrad and m["completions/mean_length"] > 0
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["step_1", "step_2", "step_3"]
    trainer_state = json.loads((state / "checkpoint-3" / "trainer_state.json").read_text())
    assert trainer_state["global_step"] == 3 and trainer_state["data"] == {"epoch": 1, "pos": 8}
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt" / "step_3")
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    moved = [
        not torch.equal(a, b)
        for a, b in zip(trained.state_dict().values(), base.state_dict().values(), strict=True)
    ]
    assert any(moved)
