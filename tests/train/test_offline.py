"""Training and evaluation jobs touch no network and load no Hub kernels unless asked (issue 11).

transformers >= 5.25 with ``kernels`` installed loads every model with ``use_kernels=True``; on a
GPU, ``model.train()`` then kernelizes the model and fetches ``kernels-community/*`` from the Hub,
which crashed the first GPU warm-up under ``HF_HUB_OFFLINE=1``. On a CPU the same call path runs
(``kernelize``) but finds no CPU kernels to fetch, so these tests record ``kernelize`` calls and
every socket a job opens instead of waiting for the GPU to fail.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from rlpipe.data.tasks import generate
from rlpipe.models import HUB_KERNELS_ENV, load_policy, load_pretrained
from rlpipe.train.methods import build_spec
from rlpipe.train.methods.ppo import PPOSettings

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Offline, with every connection attempt and every kernelization recorded (and refused)."""
    import transformers.modeling_utils as modeling_utils

    seen: dict[str, list[Any]] = {"network": [], "kernelize": []}
    # Threads alive before the job starts (e.g. a W&B service thread of an earlier test) are not the
    # job's: a connection they attempt is refused but not counted against it.
    earlier = {t.ident for t in threading.enumerate() if t is not threading.main_thread()}

    def refuse(*args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() not in earlier:
            seen["network"].append((threading.current_thread().name, args[1:] or kwargs))
        raise OSError("network access in a test of an offline job")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(
        modeling_utils, "kernelize", lambda model, **kw: seen["kernelize"].append(type(model).__name__)
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(HUB_KERNELS_ENV, raising=False)  # rlpipe's loaders are off on their own
    return seen


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    out = generate("addition", "train", 8, 0) + generate("sorting", "train", 8, 0)
    for row in out:
        row["scorer"] = "test_digit_share"
    return out


def test_the_guard_sees_kernelization_of_a_default_transformers_load(model_dir, guarded) -> None:
    """Without rlpipe's loader, transformers kernelizes on ``train()``: the guard would notice."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.train()
    assert guarded["kernelize"], "transformers no longer kernelizes by default: revisit this test"


def test_jobs_load_no_hub_kernels_and_open_no_socket(model_dir, rows, tmp_path, guarded) -> None:
    from rlpipe.eval.generate import make_generator
    from rlpipe.train.grpo import train_grpo
    from rlpipe.train.ppo import train_ppo
    from rlpipe.train.sft import train_sft

    train_sft(
        model_dir, rows, tmp_path / "warm", steps=2, batch_size=4, learning_rate=1e-3, seed=0,
        work_dir=tmp_path / "warm-state", gradient_checkpointing=False,
    )  # fmt: skip
    grpo = {"num_generations": 4, "per_device_train_batch_size": 8, "max_completion_length": 8, "beta": 0.04}
    train_grpo(
        str(tmp_path / "warm"),
        rows,
        spec=build_spec({"name": "g", "seed": 0, "steps": 1, "save_every": 1, "lora": None, "grpo": grpo}),
        checkpoints_dir=tmp_path / "g" / "ck",
        state_dir=tmp_path / "g" / "st",
        metrics_path=tmp_path / "g" / "m.jsonl",
    )  # with beta > 0 TRL loads the reference model itself
    ppo = {**PPOSettings().as_dict(), "rollout_batch_size": 4, "samples_per_prompt": 2, "minibatch_size": 8}
    train_ppo(
        model_dir,
        rows,
        spec=build_spec({"name": "p", "seed": 0, "steps": 1, "save_every": 1, "method": "ppo", "lora": None,
             "ppo": {**ppo, "max_new_tokens": 4, "critic": "separate", "kl_coef": 0.05}}),
        checkpoints_dir=tmp_path / "p" / "ck",
        state_dir=tmp_path / "p" / "st",
        metrics_path=tmp_path / "p" / "m.jsonl",
    )  # fmt: skip
    model, tokenizer = load_policy(tmp_path / "g" / "ck" / "step_1")
    text = tokenizer.apply_chat_template(rows[0]["prompt"], add_generation_prompt=True, tokenize=False)
    prompt = tokenizer.encode(text, add_special_tokens=False)
    make_generator("hf", model, tokenizer, batch_size=4).generate(
        [prompt], n=2, temperature=1.0, top_p=1.0, max_new_tokens=4, seed=0
    )
    assert guarded["network"] == []
    assert guarded["kernelize"] == []


def test_hub_kernels_follow_the_experiment_switch(model_dir, monkeypatch) -> None:
    from transformers import AutoModelForCausalLM

    from rlpipe.runtime import init_job, set_hub_kernels

    asked: list[bool] = []
    real = AutoModelForCausalLM.from_pretrained

    def spy(path: Any, **kwargs: Any) -> Any:
        asked.append(kwargs["use_kernels"])
        return real(path, **{**kwargs, "use_kernels": False})  # never fetch in a test

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    monkeypatch.delenv(HUB_KERNELS_ENV, raising=False)
    load_pretrained(AutoModelForCausalLM, model_dir)
    set_hub_kernels(True)
    load_pretrained(AutoModelForCausalLM, model_dir)
    init_job(1, 0)  # a job of an experiment without hub_kernels: off again
    load_pretrained(AutoModelForCausalLM, model_dir)
    assert asked == [False, True, False]
