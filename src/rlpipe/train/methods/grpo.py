"""GRPO and its loss variants (``loss_type``: grpo, dr_grpo, dapo, bnpo, cispo, sapo) through TRL.

The loss variants are GRPO settings, not methods: they share GRPO's rollouts, data and trainer.
``GRPOSettings`` mirrors the ``GRPOConfig`` fields a run may set, with TRL 1.16's defaults
(tests/train/test_methods.py keeps them equal), so what a run leaves unset trains exactly as TRL's
default would while rlpipe can still read every value (sampling, schedules, checks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlpipe.train.methods.base import Method, Settings, Spec, SpecError, trainer_paths


@dataclass(frozen=True)
class GRPOSettings(Settings):
    """A run's ``grpo`` section: ``GRPOConfig`` options under TRL's own names and defaults."""

    loss_type: str = "dapo"
    scale_rewards: str = "group"
    beta: float = 0.0
    num_generations: int = 8
    epsilon: float = 0.2
    epsilon_high: float | None = None
    mask_truncated_completions: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    learning_rate: float = 1e-6
    max_grad_norm: float = 1.0
    max_completion_length: int = 512
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    num_iterations: int = 1
    steps_per_generation: int | None = None
    lr_scheduler_type: str = "linear"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    # TRL's default: recompute activations in the backward pass; off is faster for small models
    gradient_checkpointing: bool = True
    # token: one importance ratio per token (GRPO); sequence: one per completion (GSPO)
    importance_sampling_level: str = "token"

    def __post_init__(self) -> None:
        if self.importance_sampling_level not in ("token", "sequence"):
            raise SpecError(
                f"grpo.importance_sampling_level: {self.importance_sampling_level!r} is not one of "
                "token, sequence"
            )

    def trl_kwargs(self) -> dict[str, Any]:
        """The ``GRPOConfig`` keyword arguments these settings set (all of them, under TRL's names)."""
        return self.as_dict()


class GRPO(Method):
    """GRPO through TRL's ``GRPOTrainer`` (rlpipe.train.grpo), PCGrad over domains optional."""

    name = "grpo"
    section = "grpo"
    settings_cls: type[GRPOSettings] = GRPOSettings
    accelerate_default = "fsdp"
    preflight_irrelevant = frozenset(
        {"learning_rate", "lr_scheduler_type", "warmup_steps", "weight_decay", "max_grad_norm"}
    )

    def check(self, spec: Spec) -> None:
        """TRL groups a generation round's completions by ``num_generations`` across processes."""
        hp: GRPOSettings = spec.settings
        batch = hp.per_device_train_batch_size * (hp.steps_per_generation or 1) * spec.processes
        if batch % hp.num_generations:
            raise SpecError(
                f"grpo.per_device_train_batch_size x steps_per_generation x resources.gpus ({batch}) "
                f"must be divisible by grpo.num_generations ({hp.num_generations}); change one of them"
            )

    def prompts_per_step(self, settings: GRPOSettings) -> float:
        """An optimizer step takes ``per_device_train_batch_size * gradient_accumulation_steps``
        completions, ``num_generations`` per prompt, each generated batch reused ``num_iterations``
        times (one process)."""
        completions = settings.per_device_train_batch_size * settings.gradient_accumulation_steps
        return completions / settings.num_generations / settings.num_iterations

    def sampling(self, spec: Spec) -> dict[str, Any]:
        hp: GRPOSettings = spec.settings
        return {
            "k": hp.num_generations,
            "temperature": hp.temperature,
            "top_p": hp.top_p,
            "max_new_tokens": hp.max_completion_length,
        }

    def single_process_reason(self, spec: Spec, distributed_type: str) -> str | None:
        """TRL's trainer is wrapped by accelerate (FSDP/ZeRO-3 shard the parameters, DDP averages
        gradients in its own backward hooks); PCGrad's per-domain ``torch.autograd.grad`` passes
        bypass those hooks and would see sharded or local gradients only."""
        if spec.run.get("pcgrad"):
            return (
                "PCGrad with GRPO runs in one process (TRL's trainer shards or wraps the model through "
                "accelerate, and the per-domain gradients would bypass that); use method: ppo for PCGrad "
                "on several GPUs"
            )
        return None

    def train(self, spec: Spec, paths: Mapping[str, Any]) -> None:
        from rlpipe.tracking.io import read_jsonl
        from rlpipe.train.grpo import train_grpo

        train_grpo(paths["policy"], read_jsonl(paths["train"]), spec=spec, **trainer_paths(paths))

    def mask_probe(self, policy_dir: str, rows: Sequence[Mapping[str, Any]], spec: Spec) -> dict[str, Any]:
        from rlpipe.train.grpo import grpo_mask_probe

        return grpo_mask_probe(policy_dir, rows, spec)
