"""FastHFGenerator on a tiny random Qwen2 on CPU: the interface contract and equality with ``generate``.

The GPU path (compile + CUDA graph) runs the same step function, so these checks pin its semantics;
its speed is measured by ``bench/gen_throughput.py``.
"""

from __future__ import annotations

import pytest
import torch
from tiny_qwen import VOCAB, reference, tiny_qwen, tokenizer
from transformers import Qwen2ForCausalLM

from rlpipe.eval.fast_generate import FastHFGenerator

PROMPTS = [[5, 9, 17], [3, 44, 12, 8, 91, 60, 2], [70], [11, 22, 33, 44, 55, 66, 77, 88, 99, 10, 20, 30]]


@pytest.fixture(scope="module")
def model() -> Qwen2ForCausalLM:
    return tiny_qwen()


def test_shapes_and_range(model: Qwen2ForCausalLM) -> None:
    fast = FastHFGenerator(model, tokenizer(VOCAB - 1), compile=False)
    out = fast.generate(PROMPTS, n=3, temperature=1.0, top_p=0.9, max_new_tokens=9, seed=1)
    assert len(out) == len(PROMPTS)
    for samples in out:
        assert len(samples) == 3
        for tokens in samples:
            assert len(tokens) <= 9
            assert all(isinstance(t, int) and 0 <= t < VOCAB and t != VOCAB - 1 for t in tokens)


def test_greedy_matches_generate_across_batches(model: Qwen2ForCausalLM) -> None:
    # max_batch_size=3 over 4 prompts: one full batch and one padded to a power of two, both left-padded.
    fast = FastHFGenerator(model, tokenizer(None), max_batch_size=3, compile=False)
    out = fast.generate(PROMPTS, n=1, temperature=0.0, top_p=1.0, max_new_tokens=12, seed=0)
    for prompt, samples in zip(PROMPTS, out, strict=True):
        assert samples[0] == reference(model, prompt, 12, None)


def test_eos_stops_and_is_excluded(model: Qwen2ForCausalLM) -> None:
    # Make eos a token that greedy decoding actually emits mid-way for the first prompt.
    free_run = reference(model, PROMPTS[0], 12, None)
    eos = free_run[4]
    fast = FastHFGenerator(model, tokenizer(eos), compile=False)
    out = fast.generate(PROMPTS, n=2, temperature=0.0, top_p=1.0, max_new_tokens=12, seed=0)
    assert out[0][0] == free_run[: free_run.index(eos)]
    for prompt, samples in zip(PROMPTS, out, strict=True):
        assert samples[0] == samples[1] == reference(model, prompt, 12, eos)
        assert eos not in samples[0]


@pytest.mark.parametrize("top_p", [1.0, 0.8])
def test_sampling_is_seeded(model: Qwen2ForCausalLM, top_p: float) -> None:
    fast = FastHFGenerator(model, tokenizer(None), compile=False)
    kwargs = dict(n=2, temperature=1.0, top_p=top_p, max_new_tokens=10)
    first = fast.generate(PROMPTS, seed=7, **kwargs)
    assert first == fast.generate(PROMPTS, seed=7, **kwargs)
    assert first != fast.generate(PROMPTS, seed=8, **kwargs)
    assert all(len(t) == 10 for samples in first for t in samples)


def test_top_p_search_matches_sorted_prefix() -> None:
    from rlpipe.eval.fast_generate import _top_p_keep

    g = torch.Generator().manual_seed(3)
    probs = torch.softmax(3 * torch.randn(16, 1000, generator=g), dim=-1)
    for p in (0.1, 0.7, 0.95):
        sorted_p, order = probs.sort(dim=-1, descending=True)
        keep_sorted = torch.zeros_like(probs, dtype=torch.bool)
        keep_sorted.scatter_(1, order, (sorted_p.cumsum(-1) - sorted_p) < p)
        assert torch.equal(_top_p_keep(probs, torch.tensor([p])), keep_sorted)


@pytest.mark.parametrize("method", ["sort", "search"])
def test_top_p_methods_sample_inside_nucleus(model: Qwen2ForCausalLM, method: str) -> None:
    # With top_p tiny the nucleus is the argmax token, so sampling must equal greedy decoding.
    fast = FastHFGenerator(model, tokenizer(None), compile=False, top_p_method=method)
    greedy = fast.generate(PROMPTS, n=1, temperature=0.0, top_p=1.0, max_new_tokens=8, seed=0)
    assert fast.generate(PROMPTS, n=1, temperature=1.0, top_p=1e-6, max_new_tokens=8, seed=5) == greedy


def test_compile_only_when_the_planned_decode_steps_repay_it(model: Qwen2ForCausalLM) -> None:
    """``compile=None`` compiles a workload of >= COMPILE_MIN_DECODE_STEPS steps (all calls together)."""
    from rlpipe.eval.fast_generate import COMPILE_MIN_DECODE_STEPS

    fast = FastHFGenerator(model, tokenizer(None))
    assert fast.compile is False  # never on CPU
    fast.compile = None  # as on CUDA with the default
    assert not fast.should_compile(80)  # the embedded default's evaluation: 10 batches x 8 tokens
    assert fast.should_compile(COMPILE_MIN_DECODE_STEPS)  # one long evaluation
    rollouts = FastHFGenerator(model, tokenizer(None), expected_calls=60)
    rollouts.compile = None
    assert not rollouts.should_compile(8)  # 60 steps of 8-token rollouts
    assert rollouts.should_compile(COMPILE_MIN_DECODE_STEPS // 60 + 1)
    fast.compile = True  # an explicit choice wins
    assert fast.should_compile(1)
