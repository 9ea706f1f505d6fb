"""Training rollouts through the evaluation engine (``FastHFGenerator``): one decoder for both.

Why: a GRPO or PPO step on a 0.5B-7B model is bound by its rollout, and stock ``model.generate`` is
bound by the host (issue 7: 13x slower than ``FastHFGenerator`` at 1.5B on an H200). The generator
decodes with the trainer's own weights, no copy: the CUDA graph it captures reads the parameter
tensors that the optimizer updates in place, so each rollout samples from the current policy.

The engine is chosen per run with ``rollout: {engine: auto|fast|refill|hf}``: ``auto`` (the default)
is ``fast`` on CUDA and ``hf`` (stock ``generate``) on CPU, so CPU runs and tests behave exactly as
before. ``fast`` on CPU runs the same decode loop eagerly (what the tests exercise). ``refill`` is
``rlpipe.eval.refill.RefillGenerator`` (slot refill, issue 14): for long, uneven completions, where a
static batch waits for its longest row.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from rlpipe.eval.fast_generate import FastHFGenerator
from rlpipe.eval.refill import RefillGenerator
from rlpipe.models import unwrap_peft

log = logging.getLogger(__name__)

ENGINES = ("auto", "fast", "refill", "hf")
# The rlpipe engines a rollout can go through (same constructor arguments, same ``generate``).
GENERATORS: dict[str, type] = {"fast": FastHFGenerator, "refill": RefillGenerator}


def rollout_engine(run: dict[str, Any]) -> str:
    """``"fast"``, ``"refill"`` or ``"hf"``: ``run.rollout.engine``, where ``auto`` follows the device."""
    engine = (run.get("rollout") or {}).get("engine", "auto")
    if engine not in ENGINES:
        raise ValueError(f"rollout.engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if engine == "auto":
        return "fast" if torch.cuda.is_available() else "hf"
    return engine


def rollout_max_batch(run: dict[str, Any]) -> int | None:
    """``run.rollout.max_batch_size``: the rows decoded together (None: from free memory)."""
    return (run.get("rollout") or {}).get("max_batch_size")


class TrainingRollout:
    """An rlpipe engine (``engine``: ``fast`` or ``refill``) bound to a model under training, with shapes
    that stay put across steps.

    The batch size is fixed at the first call (``max_batch_size``, else what fits in free memory
    then): the free memory moves as the optimizer allocates its state, and a new batch size would
    mean a new cache, a new compile and a new graph capture every step.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        eos_token_ids: list[int],
        *,
        max_batch_size: int | None = None,
        steps: int = 1,
        engine: str = "fast",
    ) -> None:
        if engine not in GENERATORS:
            raise ValueError(f"rollout.engine must be one of {sorted(GENERATORS)} here, not {engine!r}")
        self.model, self.engine = model, engine
        self.eos = int(eos_token_ids[0])
        # A PEFT model decodes through its base module: PEFT's forward hooks would be traced by
        # torch.compile too.
        base = unwrap_peft(model)
        self.generator = GENERATORS[engine](
            base,
            tokenizer,
            max_batch_size=max_batch_size,
            compile=None,  # compiled when the run's ``steps`` rollouts repay it; never off CUDA
            expected_calls=steps,
            eos_token_ids=list(eos_token_ids),
        )

    def sample(
        self, prompts: list[list[int]], *, temperature: float, top_p: float, max_new_tokens: int, seed: int
    ) -> list[list[int]]:
        """One completion per prompt; a completion that stopped keeps its eos token, as ``generate``'s.

        (Trainers train on the eos token; ``FastHFGenerator`` drops it for evaluation.)
        """
        gen = self.generator
        if gen.max_batch_size is None and prompts:
            longest = max(len(p) for p in prompts)
            gen.max_batch_size = gen._auto_batch(gen.cache_width(longest, max_new_tokens))
            log.info("%s rollouts: batch size fixed at %d rows", self.engine, gen.max_batch_size)
        was_training = self.model.training
        self.model.eval()
        try:
            out = gen.generate(
                prompts, n=1, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed
            )
        finally:
            self.model.train(was_training)
        return [c[0] + ([self.eos] if len(c[0]) < max_new_tokens else []) for c in out]

    def sequences(
        self,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        *,
        temperature: float,
        max_new_tokens: int,
        seed: int,
        pad_token_id: int,
    ) -> torch.Tensor:
        """What ``model.generate`` returns for left-padded prompts: ``[N, P + T]``, completions padded.

        ``T`` is the longest completion (``generate`` also stops when every row is done); rows that
        stopped early carry their eos, then ``pad_token_id``. Pure sampling (top-p 1, no top-k).
        """
        prompts = [ids[m.bool()].tolist() for ids, m in zip(prompt_ids, prompt_mask, strict=True)]
        completions = self.sample(
            prompts, temperature=temperature, top_p=1.0, max_new_tokens=max_new_tokens, seed=seed
        )
        width = max(1, max(len(c) for c in completions))
        out = torch.full((len(completions), width), pad_token_id, dtype=prompt_ids.dtype)
        for row, c in enumerate(completions):
            out[row, : len(c)] = torch.tensor(c, dtype=prompt_ids.dtype)
        return torch.cat([prompt_ids, out.to(prompt_ids.device)], dim=1)


class FastRolloutMixin:
    """Mixed into a TRL ``GRPOTrainer`` (sub)class: its rollouts go through ``TrainingRollout``.

    Only TRL's plain ``transformers.generate`` path is replaced, and only for what the fast engine
    samples exactly (temperature, top-p); vLLM, continuous batching, multimodal inputs, top-k /
    min-p / repetition penalty, and sharded (FSDP / DeepSpeed) models keep TRL's own path.
    """

    fast_rollout_max_batch_size: int | None = None
    fast_rollout_engine: str = "fast"
    _fast_rollout: TrainingRollout | None = None
    _fast_rollout_refused: str | None = None

    def _fast_rollout_unsupported(self) -> str | None:
        cfg = self.generation_config  # type: ignore[attr-defined]
        args = self.args  # type: ignore[attr-defined]
        if self.use_vllm or getattr(self, "use_transformers_continuous_batching", False):  # type: ignore[attr-defined]
            return "vLLM / continuous batching is configured"
        if (cfg.top_k or 0) > 0 or getattr(cfg, "min_p", None) or (cfg.repetition_penalty or 1.0) != 1.0:
            return "top_k / min_p / repetition_penalty are set"
        if getattr(cfg, "suppress_tokens", None):
            return "the generation config suppresses tokens (a multimodal processor)"
        if args.generation_kwargs:
            return "generation_kwargs are set"
        if self.accelerator.distributed_type.value in ("FSDP", "DEEPSPEED"):  # type: ignore[attr-defined]
            return "the model is sharded (FSDP / DeepSpeed)"
        return None

    def _generate_single_turn(
        self,
        prompt_ids: list[list[int]],
        images: Any,
        multimodal_fields: Any,
        num_generations: int,
        **kwargs: Any,
    ) -> tuple[list[list[int]], None]:
        if self._fast_rollout is None and self._fast_rollout_refused is None:
            self._fast_rollout_refused = self._fast_rollout_unsupported()
            if self._fast_rollout_refused:
                log.warning(
                    "rollout.engine %s: using TRL's generate, since %s",
                    self.fast_rollout_engine,
                    self._fast_rollout_refused,
                )
        if images or multimodal_fields or self._fast_rollout_refused:
            return super()._generate_single_turn(  # type: ignore[misc]
                prompt_ids, images, multimodal_fields, num_generations, **kwargs
            )
        if self._fast_rollout is None:
            model = self.accelerator.unwrap_model(self.model_wrapped)  # type: ignore[attr-defined]
            self._fast_rollout = TrainingRollout(
                model,
                self._tokenizer,  # type: ignore[attr-defined]
                list(self.eos_token_ids),  # type: ignore[attr-defined]
                max_batch_size=self.fast_rollout_max_batch_size,
                steps=self.args.max_steps,  # type: ignore[attr-defined]
                engine=self.fast_rollout_engine,
            )
        cfg = self.generation_config  # type: ignore[attr-defined]
        completions = self._fast_rollout.sample(
            prompt_ids,
            temperature=cfg.temperature if cfg.do_sample else 0.0,
            top_p=cfg.top_p if cfg.top_p is not None else 1.0,
            max_new_tokens=cfg.max_new_tokens,
            # One seed per generation call (``_step`` counts micro-steps): reproducible, never reused.
            seed=self.args.seed * 1_000_003 + self._step,  # type: ignore[attr-defined]
        )
        return completions, None


def with_fast_rollouts(trainer_cls: type, max_batch_size: int | None = None, engine: str = "fast") -> type:
    """``trainer_cls`` (``GRPOTrainer`` or a subclass, e.g. PCGrad's) with ``FastRolloutMixin`` first."""
    return type(
        f"FastRollout{trainer_cls.__name__}",
        (FastRolloutMixin, trainer_cls),
        {"fast_rollout_max_batch_size": max_batch_size, "fast_rollout_engine": engine},
    )
