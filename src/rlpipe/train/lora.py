"""LoRA: the PEFT config of a run, and the check that its ``target_modules`` match layers of the model.

PEFT's own error for targets that match nothing comes only when the adapter is attached (on the
GPU node, after the model loaded) and does not list what would have matched. rlpipe checks twice:
at config validation on a model skeleton built on the meta device (no weights: tiny models, local
models and hub models whose config.json is cached), and again at train start on the real model.
"""

from __future__ import annotations

import re
from typing import Any


def lora_config(lora: dict[str, Any] | None) -> Any:
    """A PEFT ``LoraConfig`` from the run's ``lora`` section, or None for full fine-tuning."""
    if not lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora.get("dropout", 0.0),
        target_modules=lora.get("target_modules", "all-linear"),
        task_type="CAUSAL_LM",
    )


def adaptable_modules(model: Any) -> list[str]:
    """Full names of the layers LoRA can wrap (linear, embedding, conv, GPT-2's Conv1D), in model order."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    kinds = (nn.Linear, nn.Embedding, nn.Conv1d, nn.Conv2d, Conv1D)
    return [n for n, m in model.named_modules() if isinstance(m, kinds)]


def matched_modules(names: list[str], targets: str | list[str]) -> list[str]:
    """The names PEFT would wrap for ``target_modules=targets``, following PEFT's rules.

    ``"all-linear"``: every layer but the output head; another string: a regular expression
    matched against the full name; a list: a name equal to an entry or ending in ``.<entry>``.
    """
    if targets == "all-linear":
        return [n for n in names if not n.endswith("lm_head")]
    if isinstance(targets, str):
        return [n for n in names if re.fullmatch(targets, n)]
    return [n for n in names if any(n == t or n.endswith("." + t) for t in targets)]


def lora_target_problem(names: list[str], lora: dict[str, Any] | None, where: str) -> str | None:
    """Why ``lora.target_modules`` cannot work on a model with layers ``names`` (None when it can)."""
    if not lora:
        return None
    targets = lora.get("target_modules", "all-linear")
    if matched_modules(names, targets):
        return None
    leaves = sorted({n.rsplit(".", 1)[-1] for n in names})
    return (
        f"lora.target_modules {targets!r} matches no layer of {where}; its layers are named "
        f"{', '.join(leaves)}"
    )


def check_lora_targets(model: Any, lora: dict[str, Any] | None, where: str = "the model") -> None:
    """Fail at train start, naming the model's layers, when ``lora.target_modules`` matches none."""
    problem = lora_target_problem(adaptable_modules(model), lora, where)
    if problem:
        raise ValueError(problem)


def skeleton_modules(config: Any) -> list[str]:
    """Adaptable layer names of a causal LM built from its ``config`` on the meta device (no weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return adaptable_modules(model)
