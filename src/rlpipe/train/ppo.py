"""PPO with a learned critic for LLMs on rule-based rewards (the verl / OpenRLHF design).

TRL 1.16 has no PPO trainer, so this is rlpipe's own, written with torch + transformers (+ PEFT
for LoRA). One training *step* is one rollout-and-update iteration:

1. **Rollout.** ``rollout_batch_size`` prompts (in a seeded, resumable data order) are rendered
   with the chat template; each is sampled ``samples_per_prompt`` times with HF ``generate`` at
   ``temperature``. Every completion is scored by its row's own scorer (``rlpipe.rewards.score``);
   the score is the reward of the completion's last token (EOS, or the last token when truncated).
2. **Scoring the rollout** (no gradient): log-probs of the sampled tokens under the policy (the
   "old" policy of the PPO ratio), under the frozen reference policy (for KL), and the critic's
   values. With ``kl_mode: reward`` the per-token KL estimate times the coefficient is subtracted
   from the token rewards (InstructGPT); token-level GAE(gamma, lam) gives advantages and value
   targets; advantages are whitened over the batch.
3. **Update.** ``ppo_epochs`` passes over the rollout in shuffled minibatches of ``minibatch_size``
   sequences; each minibatch is one Adam step on ``clipped policy loss + vf_coef * clipped value
   loss - entropy_coef * entropy (+ kl_coef * KL with kl_mode: loss)``, gradients clipped per
   parameter group (policy, critic). With ``pcgrad`` the loss is split by domain (the shares sum
   to the same loss) and the conflicting domain gradients *of the policy* are projected first
   (PCGrad); the critic gets the plain sum of its per-domain gradients (``ppo.pcgrad_critic: sum``,
   the default) or a projection of its own (``project``), never a share of the policy's.

**PCGrad and the critic.** "The policy's parameters" are ``param_groups["policy"]``: every
trainable parameter of the policy model, i.e. whatever the policy loss reaches (backbone and LM
head, or the LoRA adapter). Each domain's gradient over them, the whole of it, is projected: with
``critic: shared`` that includes what the domain's value loss contributes to the shared backbone
(it is part of that domain's gradient on those parameters and cannot be told apart from it). The
critic's parameters, ``param_groups["critic"]`` (the value head with ``critic: shared``; the whole
critic model with ``critic: separate``), which only the value loss reaches, are kept out of that
projection: projecting one flat vector of both would let a conflict between the critic gradients
change the policy update (``rlpipe.train.pcgrad``). The ``pcgrad/*`` metrics describe the
policy's projection (cosines, norms and projection count of the per-domain policy gradients).

**Memory** (the update stays the same): ``micro_batch_size`` splits each process's share of a
minibatch into micro-batches that are forwarded and back-propagated one at a time (the scoring pass
of step 2 runs in chunks of that size too). Each micro-batch's loss is weighted by its share of the
minibatch's tokens, so the accumulated gradient is exactly the gradient of the minibatch's token-mean
loss; with PCGrad each domain's gradient is accumulated over all micro-batches and projected once
(``PCGradAccumulator``). Still one optimizer step per minibatch. ``gradient_checkpointing``
recomputes the policy's (and a separate critic's) activations in the backward pass instead of
keeping them (non-reentrant ``torch.utils.checkpoint``, which ``torch.autograd.grad`` and so PCGrad
can use; with LoRA the embedding outputs require grad, PEFT's ``enable_input_require_grads``).

The value function is either a linear head on the policy's last hidden state (``critic: shared``)
or a separate transformer initialised from the policy with its own head (``critic: separate``).
The reference policy is the initial policy: a frozen copy, or for LoRA the base model with the
adapter disabled (no copy at all).

Checkpoints follow ``rlpipe.train.checkpoints``: ``state_dir/checkpoint-N`` (written atomically)
holds the policy in HF/PEFT format, the critic, the optimizer, every RNG state, the step, the
data-order position and the KL controller; scheduled steps are exported to
``state_dir/exported/step_N`` and hard-linked into ``checkpoints/step_N``. SIGTERM/SIGUSR1 make the
trainer save at the end of the current step and exit non-zero; a rerun resumes exactly there.

**Several processes** (``accelerate launch`` with ``config/accelerate/ddp.yaml``, see
``rlpipe.train.launch`` and ``rlpipe.train.distributed``): every rank holds the whole policy and
critic. Each step's ``rollout_batch_size`` prompts (the same seeded data order as in one process)
are split into contiguous, disjoint shares, one per rank, so the union over the ranks is the
one-process batch; each rank samples and scores its share. Advantages are whitened with the global
mean and variance (all-reduced over the masked tokens of every rank). An update minibatch is
``minibatch_size / ranks`` sequences per rank; each rank's loss is weighted by its share of the
global minibatch's tokens, so that the mean of the ranks' gradients (all-reduced explicitly, per
domain for PCGrad) is exactly the gradient of the token-mean loss over the global minibatch. Every
rank then clips and steps identically, and the replicas stay equal. Metrics are global (reduced
or gathered) and written by rank 0 only; checkpoints and exports are written by rank 0 (each
rank's RNG state included); a stop signal received by any rank stops all of them after the same
step. Validation for early stopping runs on rank 0 and its decision is broadcast.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rlpipe.config import PPO_DEFAULTS, early_stopping_min_step, save_steps
from rlpipe.rewards import score
from rlpipe.tracking.io import atomic_path
from rlpipe.tracking.logs import Progress
from rlpipe.train import core_algos as algos
from rlpipe.train import distributed as dp
from rlpipe.train.checkpoints import (
    export_checkpoint,
    latest_trainer_checkpoint,
    link_tree,
    live_metrics,
    publish_metrics,
    trim_metrics,
)
from rlpipe.train.pcgrad import PCGradAccumulator
from rlpipe.train.signals import StopRequest, TrainingInterrupted

log = logging.getLogger(__name__)

CRITIC_DIR = "critic"  # a sub-directory: ``export_checkpoint`` copies files only, so it stays private


class ValueHead(nn.Module):
    """A linear map from a hidden state to a scalar value, kept in float32.

    Zero-initialised: the critic starts by predicting 0 for every state (rewards are in [0, 1]),
    and the first value-loss gradients come from the data, not from a random projection.
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden_size, 1, dtype=torch.float32)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.proj(hidden.float()).squeeze(-1)


class SeparateCritic(nn.Module):
    """A transformer backbone (initialised from the policy) with a value head: ``critic: separate``."""

    def __init__(self, backbone: nn.Module, hidden_size: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = ValueHead(hidden_size)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor) -> Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)
        return self.head(out.last_hidden_state)


@dataclass
class Rollout:
    """One rollout batch: N sequences = prompts (left-padded to P) + completions (right-padded to T)."""

    input_ids: Tensor  # [N, P + T]
    attention_mask: Tensor  # [N, P + T]
    position_ids: Tensor  # [N, P + T]
    prompt_len: int
    mask: Tensor  # [N, T] float, 1 on completion tokens up to and including EOS
    scores: Tensor  # [N]
    domains: list[str]
    texts: list[str]
    clipped: Tensor  # [N] bool: no EOS within max_new_tokens
    old_logprobs: Tensor | None = None
    ref_logprobs: Tensor | None = None
    old_values: Tensor | None = None
    advantages: Tensor | None = None
    returns: Tensor | None = None
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def completion_ids(self) -> Tensor:
        return self.input_ids[:, self.prompt_len :]

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def ppo_settings(run: dict[str, Any]) -> dict[str, Any]:
    """The run's ``ppo`` section over the defaults (config expansion already merges them)."""
    return {**PPO_DEFAULTS, **run.get("ppo", {})}


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _rng_file(rank: int) -> str:
    """Rank 0's RNG file keeps the one-process name; rank r's is ``rng_state_<r>.pth`` (as HF's Trainer)."""
    return "rng_state.pth" if rank == 0 else f"rng_state_{rank}.pth"


def enable_gradient_checkpointing(model: nn.Module, lora: bool) -> None:
    """Recompute ``model``'s decoder-layer activations in the backward pass instead of storing them.

    Non-reentrant checkpointing: the reentrant kind cannot be differentiated with
    ``torch.autograd.grad`` (PCGrad's per-domain gradients) nor through a graph kept with
    ``retain_graph``. Transformers only checkpoints in training mode, so the no-grad scoring pass and
    generation are unaffected. With LoRA the frozen embeddings' output must require grad for the
    gradient to reach the adapters through a recomputed layer (PEFT's ``enable_input_require_grads``;
    newer transformers register that hook themselves, so it is added only once).
    """
    enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5.x
    if enable is not None:
        enable({"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora and not getattr(model, "_require_grads_hooks", None):
        model.enable_input_require_grads()


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    """Drop non-finite floats: metrics.jsonl stays strict JSON (``NaN`` is not JSON)."""
    return {k: v for k, v in row.items() if not isinstance(v, float) or math.isfinite(v)}


class PPOTrainer:
    """PPO on one run spec; ``train()`` runs (or resumes) it to ``run["steps"]`` steps.

    ``rollout`` and ``update`` are public so tests (and diagnostics) can drive single iterations.
    """

    def __init__(
        self,
        policy_dir: str,
        rows: list[dict[str, Any]],
        *,
        run: dict[str, Any],
        checkpoints_dir: str | os.PathLike[str],
        state_dir: str | os.PathLike[str],
        metrics_path: str | os.PathLike[str],
        validation_rows: list[dict[str, Any]] | None = None,
    ) -> None:
        from transformers import AutoTokenizer

        from rlpipe.models import resolve_model_dir

        if not rows:
            raise ValueError("PPO needs at least one training row")
        self.run = run
        self.hp = ppo_settings(run)
        self.rows = rows
        self.state_dir = Path(state_dir)
        self.checkpoints_dir = Path(checkpoints_dir)
        self.metrics_path = Path(metrics_path)
        self.src = resolve_model_dir(policy_dir)
        # One process, or one rank of an ``accelerate launch`` (joins the process group here).
        self.device = dp.init_from_env()
        self.world, self.rank = dp.world_size(), dp.rank()
        self.is_main = self.rank == 0
        for key in ("rollout_batch_size", "minibatch_size"):
            if self.hp[key] % self.world:
                raise ValueError(
                    f"run {run['name']}: ppo.{key} ({self.hp[key]}) must be divisible by the "
                    f"{self.world} processes (resources.gpus)"
                )
        # Sequences per forward/backward on this process (default: its whole share of a minibatch).
        self.local_minibatch = self.hp["minibatch_size"] // self.world
        self.micro_batch = self.hp["micro_batch_size"] or self.local_minibatch
        if self.local_minibatch % self.micro_batch:
            raise ValueError(
                f"run {run['name']}: ppo.micro_batch_size ({self.micro_batch}) must divide "
                f"ppo.minibatch_size / processes ({self.hp['minibatch_size']} / {self.world})"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(self.src)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.pcgrad = bool(run.get("pcgrad", False))
        # Not in rlpipe.config.PPO_DEFAULTS (yet): an unset key means the plain sum.
        self.pcgrad_critic = self.hp.get("pcgrad_critic", "sum")
        if self.pcgrad_critic not in PCGradAccumulator.OTHER_MODES:
            raise ValueError(
                f"run {run['name']}: ppo.pcgrad_critic must be one of {PCGradAccumulator.OTHER_MODES}, "
                f"got {self.pcgrad_critic!r}"
            )
        self.domains = sorted({r["domain"] for r in rows})
        if self.pcgrad and len(self.domains) < 2:
            raise ValueError(f"pcgrad needs rows of at least two domains; the data has {self.domains}")
        # Steps exported for evaluation: the schedule, plus every validation step with early stopping.
        self.schedule = set(save_steps(run))
        self.early = self._early_stopping(validation_rows)
        # Resumable counters (overwritten by a checkpoint).
        self.step = 0
        self.optimizer_steps = 0
        self.data_epoch, self.data_pos = 0, 0
        self.elapsed_s = 0.0
        self.pcgrad_gen = torch.Generator().manual_seed(int(run["seed"]))

        resume = latest_trainer_checkpoint(self.state_dir)
        self._build(resume)
        # Replicas start equal (a LoRA adapter is initialised randomly); then each rank samples
        # with its own random streams (a resume restores each rank's saved ones).
        dp.broadcast_params_(self.policy, self.critic)
        dp.seed_rank(int(run["seed"]))
        if resume is not None:
            self._load_state(resume)

    # ------------------------------------------------------------------ models
    def _build(self, resume: Path | None) -> None:
        from transformers import AutoModel, AutoModelForCausalLM

        from rlpipe.models import load_pretrained
        from rlpipe.train.lora import check_lora_targets, lora_config

        lora = self.run.get("lora")
        hp = self.hp
        if lora:
            from peft import PeftModel, get_peft_model

            base = load_pretrained(AutoModelForCausalLM, self.src)
            check_lora_targets(base, lora, self.src)
            if resume is not None:
                self.policy = PeftModel.from_pretrained(base, str(resume), is_trainable=True)
            else:
                self.policy = get_peft_model(base, lora_config(lora))
            self.ref = None  # the base with the adapter disabled is the reference
        else:
            self.policy = load_pretrained(AutoModelForCausalLM, str(resume) if resume else self.src)
            self.ref = None
        self.policy.to(self.device)
        self.use_ref = hp["kl_coef"] > 0 or hp["kl_target"] is not None
        if self.use_ref and not lora:
            self.ref = load_pretrained(AutoModelForCausalLM, self.src).to(self.device).eval()
            self.ref.requires_grad_(False)
        hidden = self.policy.config.hidden_size
        if hp["critic"] == "shared":
            self.value_head = ValueHead(hidden).to(self.device)
            self.critic: nn.Module = self.value_head
        else:
            backbone = load_pretrained(AutoModel, self.src)
            if lora:
                from peft import get_peft_model

                config = lora_config(lora)
                config.task_type = "FEATURE_EXTRACTION"
                backbone = get_peft_model(backbone, config)
            self.critic = SeparateCritic(backbone, hidden).to(self.device)
        if hp["gradient_checkpointing"]:
            enable_gradient_checkpointing(self.policy, lora=bool(lora))
            if hp["critic"] == "separate":
                enable_gradient_checkpointing(self.critic.backbone, lora=bool(lora))
        policy_params = [p for p in self.policy.parameters() if p.requires_grad]
        critic_params = [p for p in self.critic.parameters() if p.requires_grad]
        self.param_groups = {"policy": policy_params, "critic": critic_params}
        self.optimizer = torch.optim.Adam(
            [
                {"params": policy_params, "lr": hp["learning_rate"]},
                {"params": critic_params, "lr": hp["critic_learning_rate"]},
            ]
        )
        if hp["kl_target"] is None:
            self.kl_ctl: Any = algos.FixedKLController(hp["kl_coef"])
        else:
            self.kl_ctl = algos.AdaptiveKLController(hp["kl_coef"], hp["kl_target"], hp["kl_horizon"])
        gen = self.policy.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos_ids = sorted({int(e) for e in (eos if isinstance(eos, list) else [eos])})
        self.fast_rollout = None
        from rlpipe.train.rollout import TrainingRollout, rollout_engine

        if rollout_engine(self.run) == "fast":  # CPU default stays HF generate
            max_batch = (self.run.get("rollout") or {}).get("max_batch_size")
            self.fast_rollout = TrainingRollout(
                self.policy, self.tokenizer, self.eos_ids, max_batch_size=max_batch, steps=self.run["steps"]
            )
        n_policy = sum(p.numel() for p in policy_params)
        n_critic = sum(p.numel() for p in critic_params)
        log.info(
            "PPO %s: %s policy (%d trainable params), %s critic (%d trainable), reference: %s, device %s",
            self.run["name"],
            "LoRA" if lora else "full",
            n_policy,
            hp["critic"],
            n_critic,
            ("adapter disabled" if lora else "frozen copy") if self.use_ref else "none (kl_coef 0)",
            self.device,
        )

    def _early_stopping(self, validation_rows: list[dict[str, Any]] | None) -> Any:
        """The run's validation-based stop rule, or None without an ``early_stopping`` section."""
        settings = self.run.get("early_stopping")
        if not settings:
            return None
        from rlpipe.train.validation import ValidationEarlyStopping

        if not validation_rows:
            raise ValueError(f"run {self.run['name']}: early_stopping needs validation rows")
        return ValidationEarlyStopping(
            settings,
            validation_rows,
            self.tokenizer,
            min_step=early_stopping_min_step(self.run, len(self.rows)),
            max_new_tokens=self.hp["max_new_tokens"],
        )

    def _critic_state(self) -> dict[str, Tensor]:
        """Trainable critic tensors only (LoRA: adapter + head, not the frozen backbone)."""
        trainable = {n for n, p in self.critic.named_parameters() if p.requires_grad}
        return {k: v.detach().cpu() for k, v in self.critic.state_dict().items() if k in trainable}

    # ----------------------------------------------------------- checkpoints
    def _load_state(self, ckpt: Path) -> None:
        state = json.loads((ckpt / "trainer_state.json").read_text())
        critic = torch.load(ckpt / CRITIC_DIR / "critic.pt", map_location=self.device, weights_only=True)
        missing = set(self._critic_state()) - set(critic)
        if missing:
            raise ValueError(
                f"{ckpt}: critic state lacks {sorted(missing)[:5]} (a different critic setting?)"
            )
        self.critic.load_state_dict(critic, strict=False)
        self.optimizer.load_state_dict(
            torch.load(ckpt / "optimizer.pt", map_location=self.device, weights_only=True)
        )
        rng = ckpt / _rng_file(self.rank)
        if rng.exists():
            _set_rng_state(torch.load(rng, weights_only=False))
        else:  # resumed with more processes than it was saved with: fresh, seeded streams
            log.warning("%s: no %s; rank %d samples from freshly seeded streams", ckpt, rng.name, self.rank)
        self.step = int(state["global_step"])
        self.optimizer_steps = int(state["optimizer_steps"])
        self.data_epoch, self.data_pos = int(state["data"]["epoch"]), int(state["data"]["pos"])
        self.elapsed_s = float(state["elapsed_s"])
        self.kl_ctl.load_state_dict(state["kl_controller"])
        self.pcgrad_gen.set_state(torch.tensor(state["pcgrad_generator"], dtype=torch.uint8))
        if self.early is not None:
            if "early_stopping" not in state:
                raise ValueError(f"{ckpt}: no early-stopping state in this checkpoint (made without it?)")
            self.early.load_state_dict(state["early_stopping"])
        log.info("resumed from %s (step %d, %d optimizer steps)", ckpt, self.step, self.optimizer_steps)

    def save(self) -> Path:
        """Write ``state_dir/checkpoint-<step>`` atomically, drop older ones, export scheduled steps.

        Called on every rank: the ranks' RNG states are gathered, rank 0 writes (the models and the
        optimizer are replicas), and all ranks wait until the checkpoint is complete.
        """
        path = self.state_dir / f"checkpoint-{self.step}"
        rng_states = dp.all_gather_objects(_rng_state())
        if self.is_main:
            self._write_checkpoint(path, rng_states)
        dp.barrier()
        return path

    def _write_checkpoint(self, path: Path, rng_states: list[dict[str, Any]]) -> None:
        with atomic_path(path, directory=True) as tmp:
            self.policy.save_pretrained(tmp)
            (tmp / CRITIC_DIR).mkdir()
            torch.save(self._critic_state(), tmp / CRITIC_DIR / "critic.pt")
            torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
            for r, rng in enumerate(rng_states):
                torch.save(rng, tmp / _rng_file(r))
            state = {
                "global_step": self.step,
                "max_steps": self.run["steps"],
                "optimizer_steps": self.optimizer_steps,
                "data": {"epoch": self.data_epoch, "pos": self.data_pos},
                "elapsed_s": self.elapsed_s,
                "kl_controller": self.kl_ctl.state_dict(),
                "pcgrad_generator": self.pcgrad_gen.get_state().tolist(),
                **({"early_stopping": self.early.state_dict()} if self.early is not None else {}),
                "method": "ppo",
                "run": self.run["name"],
            }
            (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1))
        for old in self.state_dir.glob("checkpoint-*"):
            if old != path and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        if self.step in self.schedule:
            name = f"step_{self.step}"
            exported = self.state_dir / "exported" / name
            export_checkpoint(path, exported, self.tokenizer)
            link_tree(exported, self.checkpoints_dir / name)

    def _restore_exports(self) -> None:
        """Re-publish steps exported before an interruption (Snakemake deleted the declared outputs)."""
        exported = self.state_dir / "exported"
        if exported.is_dir():
            for path in sorted(exported.iterdir()):
                if path.name.startswith("step_") and not (self.checkpoints_dir / path.name).exists():
                    link_tree(path, self.checkpoints_dir / path.name)

    # ------------------------------------------------------------------ data
    def _epoch_order(self, epoch: int) -> list[int]:
        """Row order of data epoch ``epoch``: a permutation that depends only on (seed, epoch)."""
        gen = torch.Generator().manual_seed(int(self.run["seed"]) * 1_000_003 + epoch)
        return torch.randperm(len(self.rows), generator=gen).tolist()

    def next_rows(self) -> list[dict[str, Any]]:
        """The next ``rollout_batch_size`` prompts; the position is part of the checkpoint."""
        batch: list[dict[str, Any]] = []
        while len(batch) < self.hp["rollout_batch_size"]:
            order = self._epoch_order(self.data_epoch)
            take = order[self.data_pos : self.data_pos + self.hp["rollout_batch_size"] - len(batch)]
            batch += [self.rows[i] for i in take]
            self.data_pos += len(take)
            if self.data_pos >= len(order):
                self.data_epoch, self.data_pos = self.data_epoch + 1, 0
        return batch

    def local_share(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """This rank's contiguous share of the step's prompts (all of them in one process)."""
        n = len(rows) // self.world
        return rows[self.rank * n : (self.rank + 1) * n]

    # --------------------------------------------------------------- forward
    def _forward(
        self, ro: Rollout, idx: Tensor | slice, *, entropy: bool = False, values: bool = True
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Policy log-probs of the sampled tokens (and entropies, critic values) for rows ``idx``."""
        ids, attn, pos = ro.input_ids[idx], ro.attention_mask[idx], ro.position_ids[idx]
        p, t = ro.prompt_len, ro.mask.shape[1]
        shared = values and self.hp["critic"] == "shared"
        out = self.policy(
            input_ids=ids,
            attention_mask=attn,
            position_ids=pos,
            output_hidden_states=shared,
            logits_to_keep=t + 1,
            use_cache=False,
        )
        logits = out.logits[:, :-1].float() / self.hp["temperature"]
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, p:, None]).squeeze(-1)
        ent = algos.entropy_from_logits(logits) if entropy else None
        vals = None
        if shared:
            vals = self.value_head(out.hidden_states[-1][:, p - 1 : p + t - 1])
        elif values:
            vals = self.critic(ids, attn, pos)[:, p - 1 : p + t - 1]
        return logprobs, ent, vals

    @torch.no_grad()
    def _ref_logprobs(self, ro: Rollout, idx: Tensor | slice) -> Tensor:
        ids, attn, pos = ro.input_ids[idx], ro.attention_mask[idx], ro.position_ids[idx]
        p, t = ro.prompt_len, ro.mask.shape[1]
        kwargs = {"input_ids": ids, "attention_mask": attn, "position_ids": pos, "logits_to_keep": t + 1}
        if self.ref is None:  # LoRA: the base model is the reference
            with self.policy.disable_adapter():
                logits = self.policy(**kwargs, use_cache=False).logits
        else:
            logits = self.ref(**kwargs, use_cache=False).logits
        logits = logits[:, :-1].float() / self.hp["temperature"]
        return torch.log_softmax(logits, dim=-1).gather(-1, ids[:, p:, None]).squeeze(-1)

    # --------------------------------------------------------------- rollout
    def rollout(self, rows: list[dict[str, Any]]) -> Rollout:
        """Sample, score, and compute old log-probs, reference log-probs, values, GAE advantages.

        ``rows`` are this process's prompts (``local_share`` of the step's batch when distributed).
        """
        return self.prepare(self.sample(rows))

    @torch.no_grad()
    def sample(self, rows: list[dict[str, Any]]) -> Rollout:
        """Sample ``samples_per_prompt`` completions per prompt and score each with its row's scorer."""
        hp, tok = self.hp, self.tokenizer
        k = hp["samples_per_prompt"]
        expanded = [r for r in rows for _ in range(k)]  # the k samples of a prompt are contiguous
        texts = [
            tok.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False) for r in rows
        ]
        enc = tok(
            [t for t in texts for _ in range(k)], return_tensors="pt", padding=True, add_special_tokens=False
        )
        prompt_ids, prompt_mask = enc.input_ids.to(self.device), enc.attention_mask.to(self.device)
        self.policy.eval()
        self.critic.eval()
        if self.fast_rollout is not None:  # rollout.engine fast (the CUDA default)
            seqs = self.fast_rollout.sequences(
                prompt_ids,
                prompt_mask,
                temperature=hp["temperature"],
                max_new_tokens=hp["max_new_tokens"],
                # one seed per step and rank (rank 0 of one process: the one-process seed)
                seed=(int(self.run["seed"]) * 1_000_003 + self.step) * self.world + self.rank,
                pad_token_id=tok.pad_token_id,
            )
        else:
            seqs = self.policy.generate(
                input_ids=prompt_ids,
                attention_mask=prompt_mask,
                do_sample=True,
                temperature=hp["temperature"],
                top_p=1.0,
                top_k=0,
                max_new_tokens=hp["max_new_tokens"],
                pad_token_id=tok.pad_token_id,
                eos_token_id=self.eos_ids,
            )
        p = prompt_ids.shape[1]
        completion = seqs[:, p:]
        is_eos = torch.isin(completion, torch.tensor(self.eos_ids, device=completion.device))
        # 1 up to and including the first EOS; everything after it is padding written by generate.
        after_eos = (is_eos.cumsum(dim=1) - is_eos.long()) > 0
        mask = (~after_eos).float()
        clipped = ~is_eos.any(dim=1)
        attn = torch.cat([prompt_mask, mask.long()], dim=1)
        pos = (attn.cumsum(dim=1) - 1).clamp(min=0)
        decoded = [
            tok.decode(c[: int(m.sum())], skip_special_tokens=True)
            for c, m in zip(completion.tolist(), mask, strict=True)
        ]
        scores = torch.tensor(
            [
                score(r["scorer"], t, r["ground_truth"], r.get("extra_info"))
                for r, t in zip(expanded, decoded, strict=True)
            ],
            dtype=torch.float32,
            device=self.device,
        )
        return Rollout(
            input_ids=seqs,
            attention_mask=attn,
            position_ids=pos,
            prompt_len=p,
            mask=mask,
            scores=scores,
            domains=[r["domain"] for r in expanded],
            texts=decoded,
            clipped=clipped,
        )

    @torch.no_grad()
    def prepare(self, ro: Rollout) -> Rollout:
        """Old and reference log-probs, values, KL shaping and GAE advantages of a sampled rollout.

        Advantages are whitened, and the logged statistics computed, over the global batch (every
        rank's tokens): ``rlpipe.train.distributed`` reduces them, a no-op in one process.
        """
        hp = self.hp
        self.policy.eval()
        self.critic.eval()
        scores, mask = ro.scores, ro.mask
        # Old log-probs, reference log-probs and values, in chunks to bound memory: micro-batches
        # (the full-vocabulary log-softmax of a whole minibatch is what does not fit at 7B).
        chunk = hp["micro_batch_size"] or hp["minibatch_size"]
        old_lp, ref_lp, vals = [], [], []
        for start in range(0, len(ro), chunk):
            idx = slice(start, start + chunk)
            lp, _, v = self._forward(ro, idx)
            old_lp.append(lp)
            vals.append(v)
            if self.use_ref:
                ref_lp.append(self._ref_logprobs(ro, idx))
        ro.old_logprobs = torch.cat(old_lp)
        ro.old_values = torch.cat(vals)
        token_rewards = algos.place_terminal_reward(scores, mask)
        if self.use_ref:
            ro.ref_logprobs = torch.cat(ref_lp)
            kl = algos.kl_penalty(ro.old_logprobs, ro.ref_logprobs, hp["kl_estimator"])
            mean_kl = float(dp.masked_mean(kl, mask))
            ro.stats["kl"] = mean_kl
            if hp["kl_mode"] == "reward":
                token_rewards = algos.kl_reward_shaping(token_rewards, kl, self.kl_ctl.value, mask)
        advantages, returns = algos.compute_gae(token_rewards, ro.old_values, mask, hp["gamma"], hp["lam"])
        ro.stats["advantages/mean"] = float(dp.masked_mean(advantages, mask))
        ro.stats["advantages/std"] = float(dp.masked_var(advantages, mask).sqrt())
        ro.stats["explained_variance"] = float(dp.explained_variance(ro.old_values, returns, mask))
        ro.stats["values/mean"] = float(dp.masked_mean(ro.old_values, mask))
        ro.stats["returns/mean"] = float(dp.masked_mean(returns, mask))
        ro.advantages = dp.masked_whiten(advantages, mask) if hp["whiten_advantages"] else advantages
        ro.returns = returns
        return ro

    # ---------------------------------------------------------------- update
    def _losses(
        self,
        ro: Rollout,
        idx: Tensor,
        *,
        minibatch_tokens: Tensor | None = None,
        domains: list[str] | None = None,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The weighted loss of rows ``idx``, split into per-domain shares, and detached statistics.

        ``idx`` is one micro-batch of a minibatch whose completion tokens over all ranks number
        ``minibatch_tokens`` (default: ``idx`` is the whole minibatch of this rank, and the count is
        its tokens summed over the ranks). The token-mean loss of ``idx`` (and each statistic) is
        weighted by ``ranks * tokens of idx / minibatch_tokens``: summed over a rank's micro-batches
        (gradient accumulation) and averaged over the ranks (the gradient all-reduce), that is exactly
        the token-mean loss of the global minibatch. In one process with one micro-batch the weight
        is exactly 1.

        With PCGrad each share is the loss over one domain's tokens times that domain's fraction of
        ``idx``'s tokens, times the weight, so the shares sum to the weighted loss: PCGrad without a
        conflict reproduces the plain update. The shares cover ``domains`` (default: every domain of
        the global minibatch, ``_minibatch_domains``, in sorted order, the same on all ranks); a
        domain absent from ``idx`` gets a constant zero share (zero gradient), and its gradient over
        the minibatch is still the token-weighted sum over the micro-batches and ranks that have it.
        """
        hp = self.hp
        logprobs, ent, values = self._forward(ro, idx, entropy=True)
        mask = ro.mask[idx]
        old_lp, adv = ro.old_logprobs[idx], ro.advantages[idx]
        old_v, ret = ro.old_values[idx], ro.returns[idx]
        ref_lp = ro.ref_logprobs[idx] if ro.ref_logprobs is not None else None
        kl_coef = self.kl_ctl.value
        local_tokens = mask.sum()
        if minibatch_tokens is None:
            minibatch_tokens = dp.all_reduce_(local_tokens.detach().clone(), "sum")
        weight = self.world * local_tokens / minibatch_tokens.clamp_min(1.0)

        def total(m: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
            pg, clipfrac, approx_kl = algos.ppo_policy_loss(logprobs, old_lp, adv, m, hp["clip_eps"])
            vf, vf_clipfrac = algos.ppo_value_loss(values, old_v, ret, m, hp["value_clip"])
            entropy = algos.masked_mean(ent, m)
            loss = pg + hp["vf_coef"] * vf - hp["entropy_coef"] * entropy
            stats = {
                "policy_loss": pg.detach(),
                "value_loss": vf.detach(),
                "entropy": entropy.detach(),
                "clip_ratio": clipfrac,
                "value_clip_ratio": vf_clipfrac,
                "approx_kl": approx_kl,
            }
            if hp["kl_mode"] == "loss" and ref_lp is not None:
                kl_loss = algos.masked_mean(algos.kl_penalty(logprobs, ref_lp, hp["kl_estimator"]), m)
                loss = loss + kl_coef * kl_loss
                stats["kl_loss"] = kl_loss.detach()
            return loss, stats

        loss, stats = total(mask)
        stats = {k: v * weight for k, v in stats.items()}
        if not self.pcgrad:
            return {"all": loss * weight}, stats
        n_tokens = local_tokens.clamp_min(1.0)
        here = [ro.domains[i] for i in idx.tolist()]
        shares = {}
        for d in self._minibatch_domains(here) if domains is None else domains:
            if d not in here:
                shares[d] = torch.zeros((), device=mask.device)
                continue
            rows = torch.tensor([x == d for x in here], device=mask.device)
            m_d = mask * rows[:, None].to(mask.dtype)
            loss_d, _ = total(m_d)
            shares[d] = loss_d * (m_d.sum() / n_tokens) * weight
        return shares, stats

    def _minibatch_domains(self, local: list[str]) -> list[str]:
        """The domains of the global minibatch (any rank's rows), sorted: identical on every rank."""
        if self.world == 1:
            return sorted(set(local))
        present = torch.tensor([float(d in local) for d in self.domains], device=self.device)
        present = dp.all_reduce_(present, "max").cpu()
        return [d for d, flag in zip(self.domains, present.tolist(), strict=True) if flag > 0]

    def _minibatch_gradient(
        self, ro: Rollout, idx: Tensor, sums: dict[str, list[float]]
    ) -> dict[str, Tensor]:
        """Write the gradient of minibatch ``idx``'s loss to ``.grad``; returns its statistics.

        The rows are forwarded and back-propagated ``micro_batch_size`` at a time; the micro-batch
        losses are weighted by their share of the global minibatch's tokens (``_losses``), so the
        accumulated gradient, averaged over the ranks, is the global minibatch's. With PCGrad each
        domain's gradient is accumulated over all micro-batches first, then all-reduced and
        projected once (projecting per micro-batch would be a different algorithm). Only the
        policy's parameters are projected; the critic's get the sum of their per-domain gradients
        (or their own projection, ``ppo.pcgrad_critic: project``): see the module docstring.
        """
        all_params = self.param_groups["policy"] + self.param_groups["critic"]
        tokens = dp.all_reduce_(ro.mask[idx].sum(), "sum")  # the global minibatch's tokens
        domains = self._minibatch_domains([ro.domains[i] for i in idx.tolist()]) if self.pcgrad else None
        acc = None
        if domains is not None:
            acc = PCGradAccumulator(
                self.param_groups["policy"],
                domains,
                self.pcgrad_gen,
                other_params=self.param_groups["critic"],
                other=self.pcgrad_critic,
            )
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, Tensor] = {}
        for start in range(0, len(idx), self.micro_batch):
            part = idx[start : start + self.micro_batch]
            losses, stats = self._losses(ro, part, minibatch_tokens=tokens, domains=domains)
            if acc is not None:  # a domain absent from this micro-batch adds nothing
                acc.add({d: loss for d, loss in losses.items() if loss.requires_grad})
            else:
                losses["all"].backward()
            for key, value in stats.items():
                totals[key] = totals[key] + value if key in totals else value
        if acc is None:
            dp.allreduce_grads_(all_params)
            return totals
        # all-reduces each domain's accumulated flat gradient (policy and critic) before projecting
        pc = acc.step()  # statistics of the policy's projection
        for key, value in pc.as_metrics().items():
            sums[key].append(value)
        return totals

    def update(self, ro: Rollout) -> dict[str, float]:
        """``ppo_epochs`` passes of minibatch Adam steps over the rollout; returns mean statistics.

        Distributed, each rank shuffles its own rollout and takes ``minibatch_size / ranks``
        sequences per minibatch (the global minibatch is the union; a different random partition
        of the step's batch than one process would draw, equally valid), the gradients are
        averaged over the ranks before clipping, and the statistics are global. Micro-batches
        (``micro_batch_size``) change the memory, not the update: one optimizer step per minibatch.
        """
        hp = self.hp
        self.policy.train()
        self.critic.train()
        sums: dict[str, list[float]] = defaultdict(list)
        n = len(ro)
        for _ in range(hp["ppo_epochs"]):
            order = torch.randperm(n)
            for start in range(0, n, self.local_minibatch):
                idx = order[start : start + self.local_minibatch].to(self.device)
                stats = self._minibatch_gradient(ro, idx, sums)
                for group, params in self.param_groups.items():
                    if params:
                        norm = torch.nn.utils.clip_grad_norm_(params, hp["max_grad_norm"])
                        sums["grad_norm" if group == "policy" else "critic_grad_norm"].append(float(norm))
                self.optimizer.step()
                self.optimizer_steps += 1
                for key, value in stats.items():
                    sums[key].append(float(value))
        # Weighted statistics average to global token means; norms and PCGrad's are equal on all ranks.
        return dp.mean_over_ranks({k: sum(v) / len(v) for k, v in sums.items()})

    # ----------------------------------------------------------------- train
    def _metrics(self, ro: Rollout, upd: dict[str, float], step_s: float, rollout_s: float) -> dict[str, Any]:
        """The step's metrics row, over the global batch: per-sample values are gathered from the ranks
        (in rank order, i.e. the one-process order); ``upd`` and ``ro.stats`` are already global."""
        k = self.hp["samples_per_prompt"]
        per_rank = dp.all_gather_objects(
            (
                ro.scores.float().cpu().tolist(),
                ro.domains,
                ro.mask.sum(dim=1).cpu().tolist(),
                ro.clipped.cpu().tolist(),
            )
        )
        scores = torch.tensor([s for part in per_rank for s in part[0]])
        domains = [d for part in per_rank for d in part[1]]
        lengths = torch.tensor([n for part in per_rank for n in part[2]])
        clipped = torch.tensor([c for part in per_rank for c in part[3]], dtype=torch.float32)
        row: dict[str, Any] = {
            "step": self.step,
            "time_s": round(self.elapsed_s, 3),
            "run": self.run["name"],
            "reward": float(scores.mean()),
            "reward_std": float(scores.std()) if len(scores) > 1 else 0.0,
        }
        by_domain: dict[str, list[float]] = defaultdict(list)
        for d, s in zip(domains, scores.tolist(), strict=True):
            by_domain[d].append(s)
        for d, values in sorted(by_domain.items()):
            row[f"reward/{d}"] = sum(values) / len(values)
        if k > 1:
            groups = scores.view(-1, k)
            row["frac_reward_zero_std"] = float((groups.std(dim=1) == 0).float().mean())
        row.update(upd)
        row.update(ro.stats)
        row["kl_coef"] = self.kl_ctl.value
        row["completions/mean_length"] = float(lengths.mean())
        row["completions/clipped_ratio"] = float(clipped.mean())
        row["tokens_per_s"] = float(lengths.sum()) / step_s if step_s > 0 else 0.0
        row["learning_rate"] = self.hp["learning_rate"]
        row["optimizer_steps"] = self.optimizer_steps
        row["time/rollout_s"] = rollout_s
        row["time/step_s"] = step_s
        return _finite(row)

    def train(self) -> None:
        """Run to ``run["steps"]`` or an early stop; on SIGTERM/SIGUSR1 save after this step and raise."""
        total = self.run["steps"]
        if self.is_main:  # the files are shared by the ranks: one writer
            self._restore_exports()
            trim_metrics(self.metrics_path, self.step)
        if self.step >= total or (self.early is not None and self.early.stopped):
            log.info("run %s already finished (%d steps)", self.run["name"], self.step)
            return
        progress = Progress(log, f"ppo[{self.run['name']}] steps", total - self.step, every_s=10.0)
        with StopRequest() as stop:
            while self.step < total:
                t0 = time.monotonic()
                ro = self.rollout(self.local_share(self.next_rows()))
                rollout_s = time.monotonic() - t0
                upd = self.update(ro)
                if "kl" in ro.stats:  # the global mean KL over the global batch
                    self.kl_ctl.update(ro.stats["kl"], len(ro) * self.world)
                self.step += 1
                step_s = time.monotonic() - t0
                self.elapsed_s += step_s
                row = self._metrics(ro, upd, step_s, rollout_s)
                decision = None
                if self.early is not None and self.early.due(self.step):
                    validation, decision = self._validate()
                    row.update(validation)
                if self.is_main:
                    with open(self.metrics_path, "a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    progress.update()
                saved = self.step in self.schedule
                if saved:
                    self.save()
                if decision is not None and decision.stop and self.step < total:
                    log.info(
                        "early stop at step %d of %d: best %s %.4f at step %s",
                        self.step,
                        total,
                        self.early.stopper.metric,
                        decision.best_value if decision.best_value is not None else float("nan"),
                        decision.best_step,
                    )
                    return
                # any rank's signal stops every rank after this step (one tiny all-reduce)
                signum = dp.agree_on_signal(stop.requested)
                if signum is not None and self.step < total:
                    if not saved:
                        self.save()
                    raise TrainingInterrupted.logged(signum, self.step)

    def _validate(self) -> tuple[dict[str, float], Any]:
        """Validation metrics and stop decision: computed by rank 0, the same on every rank.

        Greedy decoding of identical replicas would agree anyway, but a rank that decided otherwise
        would hang the others; the other ranks take rank 0's stopper state instead.
        """
        result = self.early.evaluate(self.policy, self.step) if self.is_main else None
        if self.world == 1:
            return result
        metrics, decision, state = dp.broadcast_object(
            (*result, self.early.state_dict()) if result is not None else None
        )
        if not self.is_main:
            self.early.load_state_dict(state)
        return metrics, decision


def train_ppo(
    policy_dir: str,
    rows: list[dict[str, Any]],
    *,
    run: dict[str, Any],
    checkpoints_dir: str | os.PathLike[str],
    state_dir: str | os.PathLike[str],
    metrics_path: str | os.PathLike[str],
    validation_rows: list[dict[str, Any]] | None = None,
) -> None:
    """Train one PPO run; resumes from the latest complete checkpoint in ``state_dir``.

    With ``early_stopping`` the greedy validation reward is scored every ``eval_every`` steps
    (``rlpipe.train.validation``), each of those steps is checkpointed, and training ends at the
    step the stop rule says.
    """
    trainer = PPOTrainer(
        policy_dir,
        rows,
        run=run,
        checkpoints_dir=checkpoints_dir,
        state_dir=state_dir,
        metrics_path=live_metrics(state_dir),
        validation_rows=validation_rows,
    )
    trainer.train()
    publish_metrics(state_dir, metrics_path)  # the main process only
