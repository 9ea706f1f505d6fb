"""PPO with a learned critic: rlpipe's own trainer (rlpipe.train.ppo), TRL 1.16 has none.

A run's ``ppo`` section is stored complete (``PPOSettings`` over what the run sets), so the run spec
records every value it trained with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlpipe.train.methods.base import Method, Settings, Spec, SpecError, trainer_paths

#: accelerate's distributed_type of a config PPO can run under (torchrun, one process per GPU).
DATA_PARALLEL = "MULTI_GPU"


@dataclass(frozen=True)
class PPOSettings(Settings):
    """A run's ``ppo`` section (see config.schema.yaml for what each key means)."""

    learning_rate: float = 1.0e-6
    critic_learning_rate: float = 1.0e-5
    critic: str = "separate"
    gamma: float = 1.0
    lam: float = 0.95
    clip_eps: float = 0.2
    value_clip: float | None = 0.2
    vf_coef: float = 0.5
    entropy_coef: float = 0.0
    kl_mode: str = "reward"
    kl_coef: float = 0.01
    kl_target: float | None = None
    kl_horizon: float = 10000
    kl_estimator: str = "k1"
    pcgrad_critic: str = "sum"
    ppo_epochs: int = 1
    minibatch_size: int = 32
    rollout_batch_size: int = 32
    samples_per_prompt: int = 4
    temperature: float = 1.0
    max_new_tokens: int = 256
    max_grad_norm: float = 1.0
    whiten_advantages: bool = True
    # Memory only (the update is the same): sequences per forward/backward on each process, the
    # minibatch's gradient accumulated over them (None: the whole per-process minibatch at once);
    # gradient checkpointing recomputes activations in the backward pass (policy and critic).
    micro_batch_size: int | None = None
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        """Refuse settings that are valid one by one but do not work together."""
        samples = self.rollout_batch_size * self.samples_per_prompt
        if samples % self.minibatch_size:
            raise SpecError(
                f"ppo.minibatch_size ({self.minibatch_size}) must divide ppo.rollout_batch_size * "
                f"ppo.samples_per_prompt ({self.rollout_batch_size} * {self.samples_per_prompt} = {samples})"
            )
        if self.kl_target is not None and self.kl_coef <= 0:
            raise SpecError(
                "ppo.kl_target needs ppo.kl_coef > 0 (the adaptive coefficient is multiplied, so it "
                "would stay 0)"
            )
        if self.kl_mode == "loss" and self.kl_estimator == "k1" and (self.kl_coef > 0 or self.kl_target):
            raise SpecError(
                "ppo.kl_estimator k1 as a loss term (kl_mode: loss) has zero expected gradient and does "
                "not keep the policy near the reference; use k3 (or k2), or kl_mode: reward"
            )
        if self.pcgrad_critic not in ("sum", "project"):
            raise SpecError(f"ppo.pcgrad_critic must be one of sum, project, got {self.pcgrad_critic!r}")

    @property
    def uses_reference(self) -> bool:
        """Whether a KL term needs the reference policy's log-probs."""
        return self.kl_coef > 0 or self.kl_target is not None

    def check_processes(self, processes: int) -> None:
        """Each of ``processes`` ranks takes an equal share of a step's prompts and of a minibatch,
        in micro-batches of ``micro_batch_size``."""
        for key in ("minibatch_size", "rollout_batch_size"):
            value = getattr(self, key)
            if value % processes:
                raise SpecError(
                    f"ppo.{key} ({value}) must be divisible by resources.gpus ({processes}): each "
                    "process takes an equal share"
                )
        local = self.minibatch_size // processes
        if self.micro_batch_size is not None and local % self.micro_batch_size:
            raise SpecError(
                f"ppo.micro_batch_size ({self.micro_batch_size}) must divide the sequences each process "
                f"takes per minibatch, ppo.minibatch_size / resources.gpus "
                f"({self.minibatch_size} / {processes})"
            )


class PPO(Method):
    """rlpipe's PPO (rlpipe.train.ppo): data-parallel replicas with explicit all-reduces."""

    name = "ppo"
    section = "ppo"
    settings_cls: type[PPOSettings] = PPOSettings
    # rlpipe's PPO replicates its models (rlpipe.train.distributed): plain data parallelism.
    accelerate_default = "ddp"
    preflight_irrelevant = frozenset(
        {
            "learning_rate",
            "critic_learning_rate",
            "max_grad_norm",
            "ppo_epochs",
            "micro_batch_size",
            "gradient_checkpointing",
        }
    )

    def section_of(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """Stored complete: PPO's defaults are rlpipe's, so the run spec records them (``spec`` checks)."""
        return {**PPOSettings().as_dict(), **(run.get(self.section) or {})}

    def check(self, spec: Spec) -> None:
        spec.settings.check_processes(spec.processes)

    def prompts_per_step(self, settings: PPOSettings) -> float:
        """One step is one rollout of ``rollout_batch_size`` prompts."""
        return float(settings.rollout_batch_size)

    def sampling(self, spec: Spec) -> dict[str, Any]:
        hp: PPOSettings = spec.settings
        return {
            "k": hp.samples_per_prompt,
            "temperature": hp.temperature,
            "top_p": 1.0,
            "max_new_tokens": hp.max_new_tokens,
        }

    def single_process_reason(self, spec: Spec, distributed_type: str) -> str | None:
        """Its replicas and explicit all-reduces do not shard: an FSDP/ZeRO-3 config would be ignored."""
        if distributed_type != DATA_PARALLEL:
            return (
                f"rlpipe's PPO trains data-parallel with a full copy of the policy and critic per GPU, "
                f"not sharded: accelerate: {spec.run.get('accelerate')} is {distributed_type}; use "
                f"accelerate: {self.accelerate_default} (or leave it unset)"
            )
        return None

    def train(self, spec: Spec, paths: Mapping[str, Any]) -> None:
        from rlpipe.tracking.io import read_jsonl
        from rlpipe.train.distributed import shutdown
        from rlpipe.train.ppo import train_ppo

        train_ppo(paths["policy"], read_jsonl(paths["train"]), spec=spec, **trainer_paths(paths))
        shutdown()  # a launched worker joined the process group in the trainer: leave it

    def mask_probe(self, policy_dir: str, rows: Sequence[Mapping[str, Any]], spec: Spec) -> dict[str, Any]:
        from rlpipe.train.ppo import ppo_mask_probe

        return ppo_mask_probe(policy_dir, rows, spec)
