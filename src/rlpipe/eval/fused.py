"""Fused input projections for decoding: one matmul for q/k/v and one for gate/up in every layer.

Why (issue 14, item 4): a decode step multiplies a few hundred rows by every weight matrix once, so it is
bound by reading the weights. A grouped-query model's k and v projections are thin (512 outputs at 7B)
and, as separate kernels, read their weights well below the memory bandwidth; gate and up read the
same input twice. One concatenated weight per group turns five kernels per layer into two.

The fused weights are copies (about 8.5 GB at 7B, 1.7 GB at 1.5B) owned by the caller and filled
in place on each ``enter`` (a rollout engine decodes with the weights the optimizer just updated, and
a captured CUDA graph keeps reading the same addresses). Only layers whose projections are plain
``nn.Linear`` modules are fused, so a PEFT model (LoRA layers wrap the projections) decodes unfused.
The layers' ``forward`` is replaced per instance between ``enter`` and ``exit``, by functions that are
the same objects on every call (``torch.compile`` guards on them); the class's own forward is back
after ``exit``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch

# Attention classes whose forward ``_attention_forward`` reproduces (projections, rotary, attention
# interface, output projection): the decoder families rlpipe's engines run.
_ATTENTION = {"Qwen2Attention", "LlamaAttention", "MistralAttention"}


def _plain(*modules: Any) -> bool:
    """Plain ``nn.Linear`` modules with one dtype and device, all with or all without a bias."""
    if not all(type(m) is torch.nn.Linear for m in modules):
        return False
    first = modules[0].weight
    same = all(m.weight.dtype == first.dtype and m.weight.device == first.device for m in modules)
    return same and len({m.bias is None for m in modules}) == 1


class _Group:
    """One fused group: its source modules, the concatenated copy and the forward that uses it."""

    def __init__(self, owner: torch.nn.Module, sources: list[torch.nn.Linear], make: Callable) -> None:
        self.owner, self.sources = owner, sources
        self.sizes = [m.out_features for m in sources]
        like = dict(dtype=sources[0].weight.dtype, device=sources[0].weight.device)
        self.weight = torch.empty(sum(self.sizes), sources[0].in_features, **like)
        self.bias = None if sources[0].bias is None else torch.empty(sum(self.sizes), **like)
        self.forward = make(self)

    def refresh(self) -> None:
        """Copy the sources' current values into the fused tensors (same storage: graphs stay valid)."""
        torch.cat([m.weight.detach() for m in self.sources], out=self.weight)
        if self.bias is not None:
            torch.cat([m.bias.detach() for m in self.sources], out=self.bias)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.nn.functional.linear(x, self.weight, self.bias).split(self.sizes, dim=-1)


def _mlp_forward(group: _Group) -> Callable[[torch.Tensor], torch.Tensor]:
    mlp = group.owner

    def forward(x: torch.Tensor) -> torch.Tensor:
        gate, up = group.project(x)
        return mlp.down_proj(mlp.act_fn(gate) * up)

    return forward


def _attention_forward(group: _Group) -> Callable[..., tuple[torch.Tensor, Any]]:
    """The decoder families' attention forward (transformers 5.x) with q, k and v from one matmul."""
    attn = group.owner
    module = sys.modules[type(attn).__module__]
    rotary, default_attention = module.apply_rotary_pos_emb, module.eager_attention_forward
    interfaces = module.ALL_ATTENTION_FUNCTIONS
    extra = {"sliding_window": attn.sliding_window} if hasattr(attn, "sliding_window") else {}

    def forward(
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None,
        cache: Any = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, Any]:
        cache = kwargs.pop("past_key_values", cache)
        shape = (*hidden_states.shape[:-1], -1, attn.head_dim)
        q, k, v = (t.view(shape).transpose(1, 2) for t in group.project(hidden_states))
        cos, sin = position_embeddings
        q, k = rotary(q, k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, attn.layer_idx, kwargs=kwargs)
        attention = interfaces.get_interface(attn.config._attn_implementation, default_attention)
        out, weights = attention(
            attn,
            q,
            k,
            v,
            attention_mask,
            dropout=0.0 if not attn.training else attn.attention_dropout,
            scaling=attn.scaling,
            **extra,
            **kwargs,
        )
        out = out.reshape(*hidden_states.shape[:-1], -1).contiguous()
        return attn.o_proj(out), weights

    return forward


class FusedProjections:
    """The fusable groups of ``model``, built once; ``enter``/``exit`` bracket each use.

    ``layers`` is the number of decoder layers with at least one fused group (0: nothing to fuse, e.g.
    a PEFT model or an unknown attention class).
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.groups: list[_Group] = []
        layers = set()
        for name, module in model.named_modules():
            group = None
            if type(module).__name__ in _ATTENTION:
                sources = [module.q_proj, module.k_proj, module.v_proj]
                if _plain(*sources):
                    group = _Group(module, sources, _attention_forward)
            elif all(hasattr(module, a) for a in ("gate_proj", "up_proj", "down_proj", "act_fn")):
                sources = [module.gate_proj, module.up_proj]
                if _plain(*sources):
                    group = _Group(module, sources, _mlp_forward)
            if group is not None:
                self.groups.append(group)
                layers.add(name.rsplit(".", 1)[0])
        self.layers = len(layers)

    @property
    def nbytes(self) -> int:
        return sum(g.weight.nbytes + (g.bias.nbytes if g.bias is not None else 0) for g in self.groups)

    def enter(self) -> None:
        """Route the layers through the fused weights, refreshed from the model's current ones."""
        with torch.no_grad():
            for g in self.groups:
                g.refresh()
                g.owner.forward = g.forward

    def exit(self) -> None:
        for g in self.groups:
            g.owner.__dict__.pop("forward", None)
