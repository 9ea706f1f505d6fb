"""PPO's update part: minibatch losses (split by domain for PCGrad), gradient accumulation over
micro-batches and ranks, and the optimizer steps.

A mixin of ``rlpipe.train.ppo.PPOTrainer`` (the models, optimizer and settings are its attributes; the
forward pass is ``PPORollouts._forward``); the loss maths is ``rlpipe.train.core_algos``.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor

from rlpipe.train import core_algos as algos
from rlpipe.train import distributed as dp
from rlpipe.train.pcgrad import PCGradAccumulator
from rlpipe.train.ppo_rollout import Rollout


class PPOUpdates:
    """The PPO update of a prepared ``Rollout``. ``losses`` is public: pre-flight probes it."""

    def losses(
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
            pg, clipfrac, approx_kl = algos.ppo_policy_loss(logprobs, old_lp, adv, m, hp.clip_eps)
            vf, vf_clipfrac = algos.ppo_value_loss(values, old_v, ret, m, hp.value_clip)
            entropy = algos.masked_mean(ent, m)
            loss = pg + hp.vf_coef * vf - hp.entropy_coef * entropy
            stats = {
                "policy_loss": pg.detach(),
                "value_loss": vf.detach(),
                "entropy": entropy.detach(),
                "clip_ratio": clipfrac,
                "value_clip_ratio": vf_clipfrac,
                "approx_kl": approx_kl,
            }
            if hp.kl_mode == "loss" and ref_lp is not None:
                kl_loss = algos.masked_mean(algos.kl_penalty(logprobs, ref_lp, hp.kl_estimator), m)
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
            losses, stats = self.losses(ro, part, minibatch_tokens=tokens, domains=domains)
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
        for _ in range(hp.ppo_epochs):
            order = torch.randperm(n)
            for start in range(0, n, self.local_minibatch):
                idx = order[start : start + self.local_minibatch].to(self.device)
                stats = self._minibatch_gradient(ro, idx, sums)
                for group, params in self.param_groups.items():
                    if params:
                        norm = torch.nn.utils.clip_grad_norm_(params, hp.max_grad_norm)
                        sums["grad_norm" if group == "policy" else "critic_grad_norm"].append(float(norm))
                self.optimizer.step()
                self.optimizer_steps += 1
                for key, value in stats.items():
                    sums[key].append(float(value))
        # Weighted statistics average to global token means; norms and PCGrad's are equal on all ranks.
        return dp.mean_over_ranks({k: sum(v) / len(v) for k, v in sums.items()})
