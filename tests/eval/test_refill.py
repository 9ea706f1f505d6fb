"""RefillGenerator on a tiny random Qwen2 on CPU: equality with ``generate`` while slots are refilled.

The CUDA path (flash varlen attention, compile, CUDA graph) runs the same step function with another
attention kernel; its speed and bf16 agreement are measured by ``bench/gen_longtail.py``.
"""

from __future__ import annotations

import pytest
import torch
from tiny_qwen import VOCAB, reference, tiny_qwen, tokenizer
from transformers import Qwen2ForCausalLM

from rlpipe.eval.refill import RefillGenerator

_g = torch.Generator().manual_seed(1)
# Uneven prompts (1 to 29 tokens) and very different lengths per row: 1 to 40 new tokens.
PROMPTS = [
    torch.randint(1, VOCAB - 1, (int(n),), generator=_g).tolist() for n in (1, 29, 3, 17, 8, 2, 23, 12, 5)
]
LIMITS = [1, 40, 3, 25, 7, 2, 33, 12, 5]


@pytest.fixture(scope="module")
def model() -> Qwen2ForCausalLM:
    return tiny_qwen()


@pytest.mark.parametrize(("slots", "check_every", "refill_min"), [(3, 2, None), (4, 5, 2), (1, 1, None)])
def test_greedy_matches_generate_while_refilling(model, slots, check_every, refill_min) -> None:
    gen = RefillGenerator(
        model, tokenizer(None), max_batch_size=slots, check_every=check_every, refill_min=refill_min
    )
    out = gen.generate(
        PROMPTS, n=2, temperature=0.0, top_p=1.0, max_new_tokens=40, seed=0, max_new_per_prompt=LIMITS
    )
    for prompt, limit, samples in zip(PROMPTS, LIMITS, out, strict=True):
        ref = reference(model, prompt, limit, None)
        assert samples == [ref, ref]
    stats = gen.last_stats
    assert stats["slots"] == slots and stats["prefills"] > 1  # more jobs than slots: slots were refilled
    # Tokens counted per finished row; the full-width phase ends when the queue is empty, before the end.
    assert stats["tokens"] == 2 * sum(LIMITS)
    assert 0 < stats["drain_tokens"] < stats["tokens"] and 0 < stats["drain_s"] <= stats["seconds"]
    # Refill keeps the slots busy: far fewer steps than static batches of the same size would take.
    assert stats["decode_steps"] < sum(LIMITS) * 2


def test_eos_stops_a_row_and_frees_its_slot(model) -> None:
    free_run = reference(model, PROMPTS[1], 40, None)
    eos = free_run[5]
    # One slot: every job must wait for the one before it, so a row that never stopped would hang it.
    gen = RefillGenerator(model, tokenizer(eos), max_batch_size=1, check_every=3)
    out = gen.generate(PROMPTS, n=1, temperature=0.0, top_p=1.0, max_new_tokens=40, seed=0)
    assert out[1][0] == free_run[: free_run.index(eos)]
    for prompt, samples in zip(PROMPTS, out, strict=True):
        assert samples[0] == reference(model, prompt, 40, eos)
        assert eos not in samples[0]
    assert gen.last_stats["prefills"] == len(PROMPTS)
    # The slot freed at eos was reused: the whole call took about as many steps as tokens were produced.
    produced = sum(len(s[0]) + 1 for s in out)
    assert gen.last_stats["decode_steps"] <= produced + 3 * len(PROMPTS)


@pytest.mark.parametrize(
    ("top_p", "method"), [(1.0, "search"), (0.8, "search"), (0.8, "sort"), (0.8, "topk")]
)
def test_sampling_is_seeded(model, top_p, method) -> None:
    gen = RefillGenerator(model, tokenizer(None), max_batch_size=4, top_p_method=method, top_k=16)
    kwargs = dict(n=2, temperature=1.0, top_p=top_p, max_new_tokens=10, max_new_per_prompt=LIMITS)
    first = gen.generate(PROMPTS, seed=7, **kwargs)
    assert first == gen.generate(PROMPTS, seed=7, **kwargs)
    assert first != gen.generate(PROMPTS, seed=8, **kwargs)
    assert [len(s[0]) for s in first] == [min(10, lim) for lim in LIMITS]
    assert all(0 <= t < VOCAB for samples in first for s in samples for t in s)


@pytest.mark.parametrize("method", ["sort", "search", "topk"])
def test_tiny_top_p_is_greedy(model, method) -> None:
    gen = RefillGenerator(model, tokenizer(None), max_batch_size=3, top_p_method=method)
    greedy = gen.generate(PROMPTS, n=1, temperature=0.0, top_p=1.0, max_new_tokens=8, seed=0)
    assert gen.generate(PROMPTS, n=1, temperature=1.0, top_p=1e-6, max_new_tokens=8, seed=5) == greedy


def test_topk_sampler_keeps_the_exact_nucleus_when_it_fits() -> None:
    from rlpipe.eval.fast_generate import _sample

    g = torch.Generator().manual_seed(3)
    logits = 4 * torch.randn(64, 500, generator=g)
    probs = logits.softmax(-1)
    sorted_p, order = probs.sort(dim=-1, descending=True)
    nucleus = torch.zeros_like(probs, dtype=torch.bool)
    nucleus.scatter_(1, order, (sorted_p.cumsum(-1) - sorted_p) < 0.5)
    assert int(nucleus.sum(-1).max()) <= 100  # the nucleus fits in top_k = 100
    one, half = torch.ones(1), torch.tensor([0.5])
    torch.manual_seed(0)
    for _ in range(20):
        picks = _sample(logits, one, half, "top_p", "topk", top_k=100)
        assert bool(nucleus.gather(1, picks[:, None]).all())


def test_make_generator_builds_the_refill_engine_on_request(model) -> None:
    from rlpipe.eval.generate import HFGenerator, make_generator

    assert isinstance(make_generator("hf-refill", model, tokenizer(None), batch_size=8), RefillGenerator)
    assert isinstance(make_generator("hf", model, tokenizer(None), batch_size=8), HFGenerator)  # CPU: stock


def test_tail_is_compacted_into_fewer_slots(model) -> None:
    """One long row among short ones: once the queue is empty the long rows move to a 4-slot session."""
    limits = [40 if i == 1 else 2 for i in range(len(PROMPTS))]
    gen = RefillGenerator(model, tokenizer(None), max_batch_size=16, check_every=2)
    out = gen.generate(
        PROMPTS, n=2, temperature=0.0, top_p=1.0, max_new_tokens=40, seed=0, max_new_per_prompt=limits
    )
    for prompt, limit, samples in zip(PROMPTS, limits, out, strict=True):
        ref = reference(model, prompt, limit, None)
        assert samples == [ref, ref]  # the moved rows continue exactly where they were
    stats = gen.last_stats
    assert stats["tail_slots"] == [4]
    # Most steps ran 4 wide, not 16: far fewer slot-steps than the full width would have cost.
    assert stats["slot_steps"] < 16 * stats["decode_steps"] / 2


def test_tail_shrinks_again_and_again_in_the_same_cache(model, monkeypatch) -> None:
    """Staggered lengths: the tail is compacted several times, each into the front of the same buffers."""
    prompts = PROMPTS * 4  # 36 prompts, one sample each, lengths 1..36 in a shuffled order
    limits = [1 + (7 * i) % 36 for i in range(len(prompts))]
    gen = RefillGenerator(model, tokenizer(None), max_batch_size=32, check_every=1)
    storages: list[int] = []
    compact = RefillGenerator._compact

    def recording(self, session, owner):
        narrower, owner = compact(self, session, owner)
        storages.append(narrower.k[0].untyped_storage().data_ptr())
        return narrower, owner

    monkeypatch.setattr(RefillGenerator, "_compact", recording)
    out = gen.generate(
        prompts, n=1, temperature=0.0, top_p=1.0, max_new_tokens=40, seed=0, max_new_per_prompt=limits
    )
    for prompt, limit, samples in zip(prompts, limits, out, strict=True):
        assert samples == [reference(model, prompt, limit, None)]
    tails = gen.last_stats["tail_slots"]
    assert len(tails) >= 3 and tails == sorted(tails, reverse=True) and tails[-1] == 4
    # No new cache memory: every narrower session decoded in the full session's buffers.
    assert set(storages) == {gen._session.k[0].untyped_storage().data_ptr()}


def test_projections_are_fused_during_a_call_only(model) -> None:
    """Greedy output is the same fused or not, and the model's own forward is back after the call."""
    kwargs = dict(n=1, temperature=0.0, top_p=1.0, max_new_tokens=12, seed=0, max_new_per_prompt=LIMITS)
    fused = RefillGenerator(model, tokenizer(None), max_batch_size=4)
    plain = RefillGenerator(model, tokenizer(None), max_batch_size=4, fuse_projections=False)
    assert fused.generate(PROMPTS, **kwargs) == plain.generate(PROMPTS, **kwargs)
    assert fused._fused is not None and fused._fused.layers == model.config.num_hidden_layers
    assert plain._fused is None
    assert all("forward" not in m.__dict__ for m in model.modules())


def _reference_kernel(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale, seqused_k=None):
    """``_flash``'s signature over ``varlen_attention``, the plain fp32 reference."""
    from rlpipe.eval.refill import varlen_attention

    return varlen_attention(q, k, v, cu_q, cu_k, causal, scale, seqused_k)


@pytest.mark.parametrize("swap", [False, True])
def test_flash_path_matches_generate_with_and_without_the_group_swap(model, monkeypatch, swap) -> None:
    """The CUDA attention path's indexing (packed prefill, per-slot decode, the grouped-query swap)
    against a reference kernel on CPU: greedy output equals ``generate`` through refills."""
    from rlpipe.eval import refill

    monkeypatch.setattr(refill, "flash_available", lambda *a, **k: True)
    monkeypatch.setattr(refill, "_flash", _reference_kernel)
    gen = RefillGenerator(model, tokenizer(None), max_batch_size=3, check_every=2, decode_group_swap=swap)
    out = gen.generate(
        PROMPTS, n=1, temperature=0.0, top_p=1.0, max_new_tokens=40, seed=0, max_new_per_prompt=LIMITS
    )
    assert gen.last_stats["flash"] and gen._session.group == (2 if swap else 1)
    for prompt, limit, samples in zip(PROMPTS, LIMITS, out, strict=True):
        assert samples == [reference(model, prompt, limit, None)]


@pytest.mark.parametrize(("pool", "slots"), [(None, 4), (3 * 72, 8)])
def test_growing_extents_match_generate_through_moves_and_preemption(model, pool, slots) -> None:
    """Extents start at the prompt plus 4 rows and grow as rows decode; with a pool of three widest
    extents for 8 slots, rows must be preempted and restarted. Greedy output still equals ``generate``."""
    gen = RefillGenerator(
        model, tokenizer(None), max_batch_size=slots, check_every=3, kv_growth=True, kv_chunk=1, kv_pool=pool
    )
    kwargs = dict(n=2, temperature=0.0, top_p=1.0, max_new_tokens=40, seed=0, max_new_per_prompt=LIMITS)
    out = gen.generate(PROMPTS, **kwargs)
    for prompt, limit, samples in zip(PROMPTS, LIMITS, out, strict=True):
        ref = reference(model, prompt, limit, None)
        assert samples == [ref, ref]
    stats = gen.last_stats
    assert stats["kv_growth"] and stats["moved"] + stats["extended"] > 5
    if pool is None:
        assert stats["pool_rows"] == 4 * 256 and stats["preempted"] == 0  # CPU: slots * cache_len
    else:
        assert stats["pool_rows"] == 216 and stats["preempted"] > 0


@pytest.mark.parametrize(("slots", "check_every", "chunk"), [(16, 1, 1), (16, 5, 2), (8, 2, 4), (4, 3, 1)])
def test_growing_extents_under_pressure_match_generate(model, slots, check_every, chunk) -> None:
    """Pools of three widest extents for up to 16 slots: rows grow, move and are preempted all the time."""
    prompts, limits = PROMPTS * 2, LIMITS * 2
    widest = max(-(-(len(p) + n) // chunk) * chunk for p, n in zip(prompts, limits, strict=True))
    gen = RefillGenerator(
        model,
        tokenizer(None),
        max_batch_size=slots,
        check_every=check_every,
        kv_growth=True,
        kv_chunk=chunk,
        kv_pool=3 * widest,
    )
    kwargs = dict(n=1, temperature=0.0, top_p=1.0, max_new_tokens=40, seed=0, max_new_per_prompt=limits)
    out = gen.generate(prompts, **kwargs)
    for prompt, limit, samples in zip(prompts, limits, out, strict=True):
        assert samples == [reference(model, prompt, limit, None)]
    assert gen.last_stats["moved"] > 0


def test_growing_extents_keep_sampling_seeded(model) -> None:
    gen = RefillGenerator(
        model, tokenizer(None), max_batch_size=8, check_every=2, kv_growth=True, kv_chunk=2, kv_pool=3 * 72
    )
    kwargs = dict(n=2, temperature=1.0, top_p=0.9, max_new_tokens=40, max_new_per_prompt=LIMITS)
    first = gen.generate(PROMPTS, seed=3, **kwargs)
    assert gen.last_stats["preempted"] > 0
    assert first == gen.generate(PROMPTS, seed=3, **kwargs)
    assert first != gen.generate(PROMPTS, seed=4, **kwargs)


def test_a_pool_too_small_for_three_widest_extents_is_refused(model) -> None:
    gen = RefillGenerator(model, tokenizer(None), max_batch_size=4, kv_growth=True, kv_chunk=1, kv_pool=100)
    with pytest.raises(ValueError, match="kv_pool: 100 cache rows"):
        gen.generate(PROMPTS, n=1, temperature=0.0, top_p=1.0, max_new_tokens=40, seed=0)


def test_flash_path_reads_extents_in_any_order(model, monkeypatch) -> None:
    """The growing pool's extents lie out of slot order: the flash path's starts (``cu_k``) against the
    reference kernel, and the self-check asks the kernel for exactly that."""
    from rlpipe.eval import refill

    asked: list[bool] = []
    monkeypatch.setattr(
        refill, "flash_available", lambda *a, any_order=False: asked.append(any_order) or True
    )
    monkeypatch.setattr(refill, "_flash", _reference_kernel)
    gen = RefillGenerator(
        model, tokenizer(None), max_batch_size=8, check_every=2, kv_growth=True, kv_chunk=1, kv_pool=3 * 72
    )
    out = gen.generate(
        PROMPTS, n=1, temperature=0.0, top_p=1.0, max_new_tokens=40, seed=0, max_new_per_prompt=LIMITS
    )
    assert asked and all(asked) and gen.last_stats["flash"] and gen.last_stats["moved"] > 0
    for prompt, limit, samples in zip(PROMPTS, LIMITS, out, strict=True):
        assert samples == [reference(model, prompt, limit, None)]


def test_kv_chunk_must_be_a_power_of_two(model) -> None:
    with pytest.raises(ValueError, match="kv_chunk must be a power of two"):
        RefillGenerator(model, tokenizer(None), kv_chunk=48)
