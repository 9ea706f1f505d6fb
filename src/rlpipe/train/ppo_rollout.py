"""PPO's rollout part: the data order, sampling and scoring, and the no-grad pass that turns a sampled
batch into advantages (old and reference log-probs, values, KL shaping, GAE).

A mixin of ``rlpipe.train.ppo.PPOTrainer`` (which builds the models this part reads: ``policy``,
``ref``, ``critic``, ``value_head``, ``tokenizer``, ``eos_ids``, ``fast_rollout``); the maths is
``rlpipe.train.core_algos``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from rlpipe.rewards import score
from rlpipe.train import core_algos as algos
from rlpipe.train import distributed as dp


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


class PPORollouts:
    """Where a step's prompts come from and how they become a scored, advantage-carrying ``Rollout``."""

    # ------------------------------------------------------------------ data
    def _epoch_order(self, epoch: int) -> list[int]:
        """Row order of data epoch ``epoch``: a permutation that depends only on (seed, epoch)."""
        gen = torch.Generator().manual_seed(int(self.run["seed"]) * 1_000_003 + epoch)
        return torch.randperm(len(self.rows), generator=gen).tolist()

    def next_rows(self) -> list[dict[str, Any]]:
        """The next ``rollout_batch_size`` prompts; the position is part of the checkpoint."""
        batch: list[dict[str, Any]] = []
        while len(batch) < self.hp.rollout_batch_size:
            order = self._epoch_order(self.data_epoch)
            take = order[self.data_pos : self.data_pos + self.hp.rollout_batch_size - len(batch)]
            batch += [self.rows[i] for i in take]
            self.data_pos += len(take)
            if self.data_pos >= len(order):
                self.data_epoch, self.data_pos = self.data_epoch + 1, 0
        return batch

    def local_share(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """This rank's contiguous share of the step's prompts (all of them in one process)."""
        n = len(rows) // self.world
        return rows[self.rank * n : (self.rank + 1) * n]

    def _forward(
        self, ro: Rollout, idx: Tensor | slice, *, entropy: bool = False, values: bool = True
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Policy log-probs of the sampled tokens (and entropies, critic values) for rows ``idx``."""
        ids, attn, pos = ro.input_ids[idx], ro.attention_mask[idx], ro.position_ids[idx]
        p, t = ro.prompt_len, ro.mask.shape[1]
        shared = values and self.hp.critic == "shared"
        out = self.policy(
            input_ids=ids,
            attention_mask=attn,
            position_ids=pos,
            output_hidden_states=shared,
            logits_to_keep=t + 1,
            use_cache=False,
        )
        logits = out.logits[:, :-1].float() / self.hp.temperature
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
        logits = logits[:, :-1].float() / self.hp.temperature
        return torch.log_softmax(logits, dim=-1).gather(-1, ids[:, p:, None]).squeeze(-1)

    def rollout(self, rows: list[dict[str, Any]]) -> Rollout:
        """Sample, score, and compute old log-probs, reference log-probs, values, GAE advantages.

        ``rows`` are this process's prompts (``local_share`` of the step's batch when distributed).
        """
        return self.prepare(self.sample(rows))

    @torch.no_grad()
    def sample(self, rows: list[dict[str, Any]]) -> Rollout:
        """Sample ``samples_per_prompt`` completions per prompt and score each with its row's scorer."""
        hp, tok = self.hp, self.tokenizer
        k = hp.samples_per_prompt
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
                temperature=hp.temperature,
                max_new_tokens=hp.max_new_tokens,
                # one seed per step and rank (rank 0 of one process: the one-process seed)
                seed=(int(self.run["seed"]) * 1_000_003 + self.step) * self.world + self.rank,
                pad_token_id=tok.pad_token_id,
            )
        else:
            seqs = self.policy.generate(
                input_ids=prompt_ids,
                attention_mask=prompt_mask,
                do_sample=True,
                temperature=hp.temperature,
                top_p=1.0,
                top_k=0,
                max_new_tokens=hp.max_new_tokens,
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
        chunk = hp.micro_batch_size or hp.minibatch_size
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
            kl = algos.kl_penalty(ro.old_logprobs, ro.ref_logprobs, hp.kl_estimator)
            mean_kl = float(dp.masked_mean(kl, mask))
            ro.stats["kl"] = mean_kl
            if hp.kl_mode == "reward":
                token_rewards = algos.kl_reward_shaping(token_rewards, kl, self.kl_ctl.value, mask)
        advantages, returns = algos.compute_gae(token_rewards, ro.old_values, mask, hp.gamma, hp.lam)
        ro.stats["advantages/mean"] = float(dp.masked_mean(advantages, mask))
        ro.stats["advantages/std"] = float(dp.masked_var(advantages, mask).sqrt())
        ro.stats["explained_variance"] = float(dp.explained_variance(ro.old_values, returns, mask))
        ro.stats["values/mean"] = float(dp.masked_mean(ro.old_values, mask))
        ro.stats["returns/mean"] = float(dp.masked_mean(returns, mask))
        ro.advantages = dp.masked_whiten(advantages, mask) if hp.whiten_advantages else advantages
        ro.returns = returns
        return ro
