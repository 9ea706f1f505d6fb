"""``generate_for_suite``: one refill call for all tasks that sample alike, one call per task otherwise.

Greedy decoding on a tiny random Qwen2 (CPU): the completions cannot depend on how tasks are grouped
into calls, so the grouped records must equal the per-task ones exactly.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from tiny_qwen import reference
from transformers import Qwen2Config, Qwen2ForCausalLM

from rlpipe.eval.generate import HFGenerator, generate_for_suite
from rlpipe.eval.refill import RefillGenerator
from rlpipe.models import build_char_tokenizer

TOKENIZER = build_char_tokenizer()


@pytest.fixture(scope="module")
def model() -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(TOKENIZER), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      initializer_range=0.5, eos_token_id=TOKENIZER.eos_token_id,
                      pad_token_id=TOKENIZER.pad_token_id)  # fmt: skip
    return Qwen2ForCausalLM(cfg).eval()


def _task(samples: int, max_new: int, top_p: float = 1.0) -> dict[str, Any]:
    return {"samples": samples, "generation": {"temperature": 0.0, "top_p": top_p, "max_new_tokens": max_new}}


TASKS = {"alpha": _task(2, 6), "beta": _task(3, 20), "gamma": _task(1, 9, top_p=0.9)}


def _rows(task: str, n: int) -> list[dict[str, Any]]:
    def prompt(i: int) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"{task} {i} " * (i + 1)}]

    return [{"id": f"{task}{i}", "domain": "d", "prompt": prompt(i)} for i in range(n)]


ROWS = {"alpha": _rows("alpha", 3), "beta": _rows("beta", 2), "gamma": _rows("gamma", 2)}


class Spy:
    """Records each ``generate`` call's keyword arguments, then delegates."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, []
        self.per_prompt_budgets = getattr(inner, "per_prompt_budgets", False)

    def generate(self, prompts: list[list[int]], **kwargs: Any) -> list[list[list[int]]]:
        self.calls.append({"prompts": len(prompts), **kwargs})
        return self.inner.generate(prompts, **kwargs)


def test_refill_engine_gets_one_call_per_sampling_setting_with_per_prompt_budgets(model) -> None:
    grouped = Spy(RefillGenerator(model, TOKENIZER, max_batch_size=4, check_every=2))
    records = generate_for_suite(grouped, TOKENIZER, TASKS, ROWS, seed=3)
    # alpha and beta sample alike (one call, the first task's seed); gamma's top-p differs.
    assert [(c["prompts"], c["seed"]) for c in grouped.calls] == [(5, 3000), (2, 3002)]
    merged = grouped.calls[0]
    assert merged["n_per_prompt"] == [2, 2, 2, 3, 3] and merged["max_new_per_prompt"] == [6, 6, 6, 20, 20]
    assert merged["max_new_tokens"] == 20

    per_task = Spy(RefillGenerator(model, TOKENIZER, max_batch_size=4, check_every=2))
    per_task.per_prompt_budgets = False
    assert generate_for_suite(per_task, TOKENIZER, TASKS, ROWS, seed=3) == records
    assert [c["seed"] for c in per_task.calls] == [3000, 3001, 3002]  # one call per task, as before

    by_task = {t: [r for r in records if r["task"] == t] for t in TASKS}
    assert [len(v) for v in by_task.values()] == [3 * 2, 2 * 3, 2 * 1]
    assert max(r["n_tokens"] for r in by_task["alpha"]) <= 6  # its own budget, not the call's 20
    assert all(r["truncated"] == (r["n_tokens"] >= TASKS[r["task"]]["generation"]["max_new_tokens"])
               for r in records)  # fmt: skip


def test_other_engines_keep_one_call_per_task(model) -> None:
    spy = Spy(HFGenerator(model, TOKENIZER, batch_size=4))
    generate_for_suite(spy, TOKENIZER, TASKS, ROWS, seed=3)
    assert [(c["prompts"], c["n"], c["seed"]) for c in spy.calls] == [
        (3, 2, 3000),
        (2, 3, 3001),
        (2, 1, 3002),
    ]
    assert all("n_per_prompt" not in c for c in spy.calls)


def test_per_prompt_sample_counts_and_limits_match_generate(model) -> None:
    prompts = [[5, 6, 7], [8], [9, 10, 11, 12, 13], [14, 15]]
    counts, limits = [1, 3, 0, 2], [4, 12, 7, 9]
    gen = RefillGenerator(model, TOKENIZER, max_batch_size=3, check_every=2, eos_token_ids=[-1])
    out = gen.generate(prompts, n=1, temperature=0.0, top_p=1.0, max_new_tokens=12, seed=0,
                       max_new_per_prompt=limits, n_per_prompt=counts)  # fmt: skip
    assert [len(samples) for samples in out] == counts
    for prompt, limit, samples in zip(prompts, limits, out, strict=True):
        assert all(s == reference(model, prompt, limit, None) for s in samples)
    with pytest.raises(ValueError, match="one entry per prompt"):
        gen.generate(prompts, n=1, temperature=0.0, top_p=1.0, max_new_tokens=4, seed=0, n_per_prompt=[1])


def test_each_call_logs_what_it_produced_and_how_busy_the_slots_were(model, caplog) -> None:
    caplog.set_level("INFO", logger="rlpipe.eval.generate")
    records = generate_for_suite(
        RefillGenerator(model, TOKENIZER, max_batch_size=4), TOKENIZER, TASKS, ROWS, seed=3
    )
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("generated ")]
    assert len(lines) == 2  # one per call: alpha+beta, gamma
    completions = [int(line.split()[1]) for line in lines]
    tokens = [int(line.split()[3]) for line in lines]
    assert sum(completions) == len(records) and sum(tokens) == sum(r["n_tokens"] for r in records)
    assert all("slots" in line and "slot efficiency" in line for line in lines)

    caplog.clear()
    generate_for_suite(HFGenerator(model, TOKENIZER, batch_size=4), TOKENIZER, TASKS, ROWS, seed=3)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("generated ")]
    assert len(lines) == 3 and not any("slots" in line for line in lines)  # no engine stats to report
