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

import logging
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from rlpipe.tracking.logs import Progress
from rlpipe.tracking.metrics import append_metrics, metrics_row
from rlpipe.train import core_algos as algos
from rlpipe.train import distributed as dp
from rlpipe.train.checkpoints import (
    finished_step,
    latest_trainer_checkpoint,
    live_metrics,
    publish_metrics,
    recover_state,
    trim_metrics,
)
from rlpipe.train.methods.base import check_pcgrad_domains
from rlpipe.train.ppo_rollout import PPORollouts, Rollout
from rlpipe.train.ppo_state import PPOCheckpointState
from rlpipe.train.ppo_update import PPOUpdates
from rlpipe.train.schedule import early_stopping_min_step, save_steps
from rlpipe.train.signals import StopRequest, TrainingInterrupted

if TYPE_CHECKING:
    from rlpipe.train.methods.base import Spec

__all__ = ["PPOTrainer", "Rollout", "SeparateCritic", "ValueHead", "ppo_mask_probe", "train_ppo"]

log = logging.getLogger(__name__)


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


class PPOTrainer(PPORollouts, PPOUpdates, PPOCheckpointState):
    """PPO on one run spec; ``train()`` runs (or resumes) it to ``run["steps"]`` steps.

    Built from three parts: ``PPORollouts`` (data order, sampling, advantages), ``PPOUpdates``
    (losses, gradients, optimizer steps) and ``PPOCheckpointState`` (save, resume, export); this class
    builds the models and runs the loop. ``rollout``, ``update`` and ``losses`` are public so tests,
    diagnostics and pre-flight can drive single iterations.
    """

    def __init__(
        self,
        policy_dir: str,
        rows: list[dict[str, Any]],
        *,
        spec: Spec,
        checkpoints_dir: str | os.PathLike[str],
        state_dir: str | os.PathLike[str],
        metrics_path: str | os.PathLike[str],
        validation_rows: list[dict[str, Any]] | None = None,
    ) -> None:
        from transformers import AutoTokenizer

        from rlpipe.models import resolve_model_dir

        if not rows:
            raise ValueError("PPO needs at least one training row")
        self.spec = spec
        self.run = run = spec.run
        self.hp = spec.settings  # PPOSettings
        self.rows = rows
        self.state_dir = Path(state_dir)
        self.checkpoints_dir = Path(checkpoints_dir)
        self.metrics_path = Path(metrics_path)
        self.src = resolve_model_dir(policy_dir)
        # One process, or one rank of an ``accelerate launch`` (joins the process group here).
        self.device = dp.init_from_env()
        self.world, self.rank = dp.world_size(), dp.rank()
        self.is_main = self.rank == 0
        # the processes actually launched (the spec checked resources.gpus): each takes equal shares
        self.hp.check_processes(self.world)
        # Sequences per forward/backward on this process (default: its whole share of a minibatch).
        self.local_minibatch = self.hp.minibatch_size // self.world
        self.micro_batch = self.hp.micro_batch_size or self.local_minibatch
        self.tokenizer = AutoTokenizer.from_pretrained(self.src)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.pcgrad = bool(run.get("pcgrad", False))
        self.pcgrad_critic = self.hp.pcgrad_critic
        self.domains = sorted({r["domain"] for r in rows})
        if self.pcgrad:
            check_pcgrad_domains(self.domains)
        # Steps exported for evaluation: the schedule, plus every validation step with early stopping.
        self.schedule = set(save_steps(run))
        self.early = self._early_stopping(validation_rows)
        # Resumable counters (overwritten by a checkpoint).
        self.step = 0
        self.optimizer_steps = 0
        self.data_epoch, self.data_pos = 0, 0
        self.elapsed_s = 0.0
        self.pcgrad_gen = torch.Generator().manual_seed(int(run["seed"]))

        if self.is_main:  # one process repairs the shared state (checkpoints.py), the others wait
            recover_state(
                self.state_dir, out_dir=self.checkpoints_dir, tokenizer=self.tokenizer, schedule=self.schedule
            )
        dp.barrier()
        self.finished_at = finished_step(self.state_dir)
        if self.finished_at is not None:  # nothing to build: train() returns at once
            return
        resume = latest_trainer_checkpoint(self.state_dir, hashes=False)  # recover_state verified it
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
        self.use_ref = hp.uses_reference
        if self.use_ref and not lora:
            self.ref = load_pretrained(AutoModelForCausalLM, self.src).to(self.device).eval()
            self.ref.requires_grad_(False)
        hidden = self.policy.config.hidden_size
        if hp.critic == "shared":
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
        if hp.gradient_checkpointing:
            enable_gradient_checkpointing(self.policy, lora=bool(lora))
            if hp.critic == "separate":
                enable_gradient_checkpointing(self.critic.backbone, lora=bool(lora))
        policy_params = [p for p in self.policy.parameters() if p.requires_grad]
        critic_params = [p for p in self.critic.parameters() if p.requires_grad]
        self.param_groups = {"policy": policy_params, "critic": critic_params}
        self.optimizer = torch.optim.Adam(
            [
                {"params": policy_params, "lr": hp.learning_rate},
                {"params": critic_params, "lr": hp.critic_learning_rate},
            ]
        )
        if hp.kl_target is None:
            self.kl_ctl: Any = algos.FixedKLController(hp.kl_coef)
        else:
            self.kl_ctl = algos.AdaptiveKLController(hp.kl_coef, hp.kl_target, hp.kl_horizon)
        gen = self.policy.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos_ids = sorted({int(e) for e in (eos if isinstance(eos, list) else [eos])})
        self.fast_rollout = None
        from rlpipe.train.rollout import TrainingRollout, rollout_engine, rollout_max_batch

        engine = rollout_engine(self.run)
        if engine != "hf":  # CPU default stays HF generate
            self.fast_rollout = TrainingRollout(
                self.policy,
                self.tokenizer,
                self.eos_ids,
                max_batch_size=rollout_max_batch(self.run),
                steps=self.run["steps"],
                engine=engine,
            )
        n_policy = sum(p.numel() for p in policy_params)
        n_critic = sum(p.numel() for p in critic_params)
        log.info(
            "PPO %s: %s policy (%d trainable params), %s critic (%d trainable), reference: %s, device %s",
            self.run["name"],
            "LoRA" if lora else "full",
            n_policy,
            hp.critic,
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
            min_step=early_stopping_min_step(self.spec, len(self.rows)),
            max_new_tokens=self.hp.max_new_tokens,
        )

    # ----------------------------------------------------------- checkpoints
    # ------------------------------------------------------------------ data
    # --------------------------------------------------------------- forward
    # --------------------------------------------------------------- rollout
    # ---------------------------------------------------------------- update
    # ----------------------------------------------------------------- train
    def _metrics(self, ro: Rollout, upd: dict[str, float], step_s: float, rollout_s: float) -> dict[str, Any]:
        """The step's metrics row, over the global batch: per-sample values are gathered from the ranks
        (in rank order, i.e. the one-process order); ``upd`` and ``ro.stats`` are already global."""
        k = self.hp.samples_per_prompt
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
        row["learning_rate"] = self.hp.learning_rate
        row["optimizer_steps"] = self.optimizer_steps
        row["time/rollout_s"] = rollout_s
        row["time/step_s"] = step_s
        return row

    def train(self) -> None:
        """Run to ``run["steps"]`` or an early stop; on SIGTERM/SIGUSR1 save after this step and raise."""
        total = self.run["steps"]
        if self.finished_at is not None:
            log.info(
                "run %s finished before (step %d): its steps are published",
                self.run["name"],
                self.finished_at,
            )
            return
        if self.is_main:  # the file is shared by the ranks: one writer
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
                    append_metrics(self.metrics_path, metrics_row(row))
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
    spec: Spec,
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
        spec=spec,
        checkpoints_dir=checkpoints_dir,
        state_dir=state_dir,
        metrics_path=live_metrics(state_dir),
        validation_rows=validation_rows,
    )
    trainer.train()
    publish_metrics(state_dir, metrics_path)  # the main process only


def ppo_mask_probe(policy_dir: str, rows: Sequence[Mapping[str, Any]], spec: Spec) -> dict[str, Any]:
    """Pre-flight's loss-mask probe through ``PPOTrainer.losses``: one real rollout of two prompts of
    different lengths, every other completion ended early, advantages of alternating sign."""
    from dataclasses import replace

    from rlpipe.train.mask_probe import end_early, mask_rows, probe_loss

    spec = replace(spec, run={**spec.run, "steps": 1, "save_every": 1})
    with tempfile.TemporaryDirectory(prefix="rlpipe-preflight-") as tmp:
        trainer = PPOTrainer(
            policy_dir,
            list(rows),
            spec=spec,
            checkpoints_dir=f"{tmp}/ck",
            state_dir=f"{tmp}/st",
            metrics_path=f"{tmp}/metrics.jsonl",
        )
        tok = trainer.tokenizer

        def length(row: Mapping[str, Any]) -> int:
            return len(tok.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True))

        ro = trainer.rollout(mask_rows(rows, length))
        p = ro.prompt_len
        ids, mask = ro.input_ids[:, p:].clone(), ro.mask.clone()
        end_early(ids, mask, range(0, len(ro), 2), trainer.eos_ids[0], tok.pad_token_id)
        ro.input_ids = torch.cat([ro.input_ids[:, :p], ids], dim=1)
        ro.mask = mask
        ro.attention_mask = torch.cat([ro.attention_mask[:, :p], mask.long()], dim=1)
        ro.position_ids = (ro.attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        with torch.no_grad():  # the "old" policy of the ratio is the policy itself, as on a fresh rollout
            ro.old_logprobs, _, ro.old_values = trainer._forward(ro, slice(None))
        signs = torch.tensor([1.0 if i % 2 else -1.0 for i in range(len(ro))], device=mask.device)
        ro.advantages = signs[:, None].expand_as(mask).clone()
        idx = torch.arange(len(ro), device=trainer.device)
        trainer.policy.train()
        result = probe_loss(
            trainer.policy,
            lambda: sum(trainer.losses(ro, idx)[0].values()),
            ro.attention_mask[:, :p],
            mask,
        )
    result["loss_path"] = "rlpipe.train.ppo.PPOTrainer.losses (clipped surrogate + value + entropy)"
    return result
