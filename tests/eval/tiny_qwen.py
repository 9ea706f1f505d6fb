"""The tiny random Qwen2 the generation-engine tests run on CPU, and the reference they are held to:
unpadded greedy ``generate`` for one prompt."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

VOCAB, PAD = 101, 0


def tiny_qwen() -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=PAD,
        eos_token_id=VOCAB - 1,
        initializer_range=0.5,  # a peaked distribution, so greedy choices are not near-ties
    )
    return Qwen2ForCausalLM(config).eval()


def tokenizer(eos: int | None) -> SimpleNamespace:
    """What the engines read from a tokenizer: its eos and pad ids."""
    return SimpleNamespace(eos_token_id=eos, pad_token_id=PAD)


def reference(model: Qwen2ForCausalLM, prompt: list[int], max_new: int, eos: int | None) -> list[int]:
    """Unpadded greedy ``generate`` for one prompt, cut before eos as the interface requires."""
    gen = model.generate(
        input_ids=torch.tensor([prompt]),
        attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
        do_sample=False,
        max_new_tokens=max_new,
        eos_token_id=eos,
        pad_token_id=PAD,
    )[0, len(prompt) :].tolist()
    return gen[: gen.index(eos)] if eos is not None and eos in gen else gen
