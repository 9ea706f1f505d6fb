"""Backend selection and the vLLM adapter's contract (vLLM itself is not installable here)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from rlpipe.eval.generate import HFGenerator, VLLMGenerator, fast_engine_supported, make_generator, strip_eos
from rlpipe.models import build_char_tokenizer


def _tiny() -> Qwen2ForCausalLM:
    cfg = Qwen2Config(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32,
    )  # fmt: skip
    return Qwen2ForCausalLM(cfg)


def test_cpu_model_uses_transformers_generate():
    model = _tiny()
    assert not fast_engine_supported(model)  # the fast engine is CUDA-only
    gen = make_generator("hf", model, build_char_tokenizer(), batch_size=8)
    assert isinstance(gen, HFGenerator) and gen.batch_size == 8


def test_cpu_model_takes_the_static_engine_nowhere():
    """``hf-static`` is CUDA-only: on CPU it falls back to ``generate``, never to another engine."""
    gen = make_generator("hf-static", _tiny(), build_char_tokenizer(), batch_size=8)
    assert type(gen) is HFGenerator


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_qwen2_uses_the_refill_engine_and_static_on_request():
    from rlpipe.eval.fast_generate import FastHFGenerator
    from rlpipe.eval.refill import RefillGenerator

    model = _tiny().cuda()
    assert isinstance(make_generator("hf", model, build_char_tokenizer()), RefillGenerator)
    assert isinstance(make_generator("hf-static", model, build_char_tokenizer()), FastHFGenerator)


def test_make_generator_refuses_other_backends():
    with pytest.raises(ValueError, match="VLLMGenerator"):
        make_generator("vllm", _tiny(), build_char_tokenizer())


def test_strip_eos_cuts_at_the_first_eos():
    assert strip_eos([5, 6, 2, 7, 2], {2}) == [5, 6]
    assert strip_eos([5, 6], {2}) == [5, 6]
    assert strip_eos([3, 5], {2, 3}) == []


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_backend_without_vllm_says_how_to_install():
    with pytest.raises(ImportError, match=r"rlpipe\[vllm\]"):
        VLLMGenerator("/nonexistent")
