"""Fused q/k/v and gate/up projections (``rlpipe.eval.fused``): same logits, fresh weights, clean exit."""

from __future__ import annotations

import pytest
import torch
from tiny_qwen import VOCAB, tiny_qwen
from transformers import LlamaConfig, LlamaForCausalLM

from rlpipe.eval.fused import FusedProjections

PROMPT_IDS = torch.randint(1, VOCAB - 1, (3, 11), generator=torch.Generator().manual_seed(2))


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=PROMPT_IDS).logits


def _tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)  # fmt: skip
    return LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("build", [tiny_qwen, _tiny_llama], ids=["qwen2-with-qkv-bias", "llama-no-bias"])
def test_fused_layers_give_the_same_logits_and_exit_restores_the_class_forward(build) -> None:
    model = build()
    before = _logits(model)
    fused = FusedProjections(model)
    assert fused.layers == model.config.num_hidden_layers and len(fused.groups) == 2 * fused.layers
    fused.enter()
    layer = model.model.layers[0]
    assert "forward" in layer.self_attn.__dict__ and "forward" in layer.mlp.__dict__
    torch.testing.assert_close(_logits(model), before, rtol=1e-5, atol=1e-5)
    fused.exit()
    assert "forward" not in layer.self_attn.__dict__ and "forward" not in layer.mlp.__dict__
    torch.testing.assert_close(_logits(model), before, rtol=0, atol=0)


def test_enter_refreshes_the_copies_after_the_weights_change() -> None:
    """A rollout engine decodes with the weights the optimizer just changed, not the first call's."""
    model = tiny_qwen()
    fused = FusedProjections(model)
    storage = [g.weight.data_ptr() for g in fused.groups]
    fused.enter()
    fused.exit()
    with torch.no_grad():  # an optimizer step, in place
        for name, p in model.named_parameters():
            if any(k in name for k in ("k_proj", "up_proj")):
                p.add_(0.3 * torch.randn_like(p))
    expected = _logits(model)
    fused.enter()
    try:
        torch.testing.assert_close(_logits(model), expected, rtol=1e-5, atol=1e-5)
    finally:
        fused.exit()
    assert [g.weight.data_ptr() for g in fused.groups] == storage  # same addresses: a graph stays valid


def test_lora_wrapped_projections_stay_unfused() -> None:
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_qwen(), LoraConfig(r=4, target_modules=["q_proj", "up_proj"]))
    base = model.get_base_model()
    with torch.no_grad():  # a trained adapter: B non-zero, so fusing its base weights alone would differ
        for name, p in base.named_parameters():
            if "lora_B" in name:
                p.normal_()
    before = _logits(base)
    fused = FusedProjections(base)
    assert fused.groups == [] and fused.layers == 0  # q_proj and up_proj are LoRA layers
    fused.enter()
    torch.testing.assert_close(_logits(base), before, rtol=0, atol=0)
    fused.exit()
