"""GRPO with PCGrad: per-domain gradients of the accumulated batch are projected before each step.

How it hooks into TRL 1.16's ``GRPOTrainer`` (read from its source):

* **Domain labels.** ``_generate_and_score_completions`` receives the local generation batch as a
  list of dataset rows (extra columns such as ``domain`` included) but returns only tensors for
  the loss. The override adds ``pcgrad_domain`` (an index into the sorted domain list, one per
  completion); TRL's ``shuffle_sequence_dict`` / ``split_tensor_dict`` permute and split every
  1-D tensor of that dict in unison, so each micro-batch carries the labels of its own rows.
* **Per-domain losses from one forward pass per domain.** ``_compute_loss`` gets the policy's
  per-token log-probs (and entropies) from ``_get_per_token_logps_and_entropies``. The override
  runs the forward pass once per domain of the micro-batch (on that domain's rows, so each
  domain's backward pass walks only its own graph and the domain backward passes together cost
  one full one), assembles the batch's log-probs, and evaluates TRL's loss once per domain, each
  time on log-probs that are *detached outside that domain's rows*. Every evaluation has the same value
  (TRL's own normalisation, whatever ``loss_type``) but its gradient is exactly the part of the
  total gradient that comes from that domain's completions, so the domain gradients sum to the
  plain GRPO gradient: without a conflict, the update equals the baseline's.
* **Accumulation.** The domain gradients are added to a ``PCGradAccumulator`` (``.grad`` is not
  touched) for every micro-batch; after the last micro-batch of an optimizer step they are
  projected once and written to ``.grad``. The Trainer then clips and steps as usual (its own
  ``backward`` only ever sees a detached stand-in of the loss, so it adds nothing).
* **Metrics.** ``pcgrad/cos/<a>__<b>`` (cosine of the two domains' accumulated gradients),
  ``pcgrad/projections`` (projections applied) and ``pcgrad/grad_norm/<d>`` are logged per step
  through TRL's metric buffer, next to its own metrics.

Single process only: under DDP/FSDP/DeepSpeed the forward pass would need ``no_sync`` and
unsharded gradients (see ``rlpipe.train.pcgrad``); the trainer refuses rather than silently
projecting local gradients, and ``rlpipe.train.launch.single_process_only`` refuses such a run when
the config loads. Why it is not data-parallel yet: accelerate wraps TRL's model itself (FSDP by
default, sharded gradients; DDP's reducer expects a ``backward`` through the wrapped module each step,
which the detached stand-in loss never gives), and every per-domain ``torch.autograd.grad`` would have
to bypass both; ``PCGradAccumulator.step`` already all-reduces each domain's gradient, so a DDP-only
path would be the place to start. PCGrad on several GPUs is rlpipe's PPO (``rlpipe.train.ppo``), whose
replicas and explicit all-reduces need none of that.
"""

from __future__ import annotations

from typing import Any

import torch
from trl import GRPOTrainer

from rlpipe.train.pcgrad import PCGradAccumulator

DOMAIN_KEY = "pcgrad_domain"


class PCGradGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose optimizer steps use PCGrad over the domains of ``train_dataset``."""

    def __init__(self, *args: Any, domains: list[str] | None = None, pcgrad_seed: int = 0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.accelerator.num_processes > 1:
            raise NotImplementedError(
                "PCGrad with GRPO runs in a single process only (per-domain gradients would have to be "
                "all-reduced unsharded before projection); use one GPU or pcgrad: false"
            )
        if self.aux_loss_enabled:
            raise NotImplementedError("PCGrad with a router auxiliary loss (MoE) is not supported")
        if domains is None:
            domains = sorted(set(self.train_dataset["domain"]))
        if len(domains) < 2:
            raise ValueError(f"PCGrad needs at least two domains in the training data, got {domains}")
        self.pcgrad_domains = list(domains)
        self._pcgrad_gen = torch.Generator().manual_seed(pcgrad_seed)
        self._pcgrad_acc: PCGradAccumulator | None = None
        self._pcgrad_view: tuple[Any, ...] | None = None
        self._pcgrad_rows: torch.Tensor | None = None
        self._pcgrad_labels: torch.Tensor | None = None

    # ---- domain labels travel with the generation batch
    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        index = {d: i for i, d in enumerate(self.pcgrad_domains)}
        unknown = sorted({x["domain"] for x in inputs} - set(index))
        if unknown:
            raise KeyError(f"rows of unknown domains {unknown}; declared {self.pcgrad_domains}")
        output[DOMAIN_KEY] = torch.tensor(
            [index[x["domain"]] for x in inputs], device=output["completion_ids"].device
        )
        return output

    # ---- one forward pass per domain, per-domain views of the batch's log-probs
    def _get_per_token_logps_and_entropies(
        self,
        model: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        rows = self._pcgrad_rows
        if rows is None:  # generation-time scoring, evaluation: plain behaviour
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, *args, **kwargs
            )
        if self._pcgrad_view is None:
            self._pcgrad_view = self._domain_forwards(
                model, input_ids, attention_mask, logits_to_keep, *args, **kwargs
            )
        return self._domain_view(0, rows), self._domain_view(1, rows), None

    def _domain_forwards(
        self,
        model: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        *args: Any,
        **kwargs: Any,
    ) -> list[tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]]:
        """(rows, log-probs, entropies) of one forward pass per domain of the micro-batch.

        Separate graphs make each domain's backward pass walk its own rows only, so the three
        backward passes cost one full one. Multimodal inputs (not sliceable by row in general)
        fall back to one full-batch forward, rows ``None``.
        """
        labels = self._pcgrad_labels
        if args or any(
            v is not None for k, v in kwargs.items() if k not in ("batch_size", "compute_entropy")
        ):
            logps, entropies, _ = super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, *args, **kwargs
            )
            return [(None, logps, entropies)]
        parts = []
        for d in sorted(set(labels.tolist())):
            idx = (labels == d).nonzero(as_tuple=True)[0]
            logps, entropies, _ = super()._get_per_token_logps_and_entropies(
                model, input_ids[idx], attention_mask[idx], logits_to_keep, **kwargs
            )
            parts.append((idx, logps, entropies))
        return parts

    def _domain_view(self, which: int, keep: torch.Tensor) -> torch.Tensor | None:
        """The batch's log-probs (``which`` 0) or entropies (1), differentiable only on rows ``keep``."""
        parts = self._pcgrad_view
        if parts[0][0] is None:  # one full-batch graph: detach outside the rows
            x = parts[0][1 + which]
            return None if x is None else torch.where(keep[:, None], x, x.detach())
        out = None
        for idx, *tensors in parts:
            x = tensors[which]
            if x is None:
                return None
            value = x if bool(keep[idx].all()) else x.detach()
            if out is None:
                out = x.new_zeros((keep.shape[0], *x.shape[1:]))
            out = out.index_put((idx,), value)
        return out

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> torch.Tensor:
        if not model.training:  # evaluation: no projection
            inputs = {k: v for k, v in inputs.items() if k != DOMAIN_KEY}
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs[DOMAIN_KEY]
        loss_inputs = {k: v for k, v in inputs.items() if k != DOMAIN_KEY}
        if self._pcgrad_acc is None:
            self._pcgrad_acc = PCGradAccumulator(model.parameters(), self.pcgrad_domains, self._pcgrad_gen)
        # Trainer.backward divides by the accelerator's accumulation steps (1 unless configured).
        scale = 1.0 / self.accelerator.gradient_accumulation_steps
        metrics = self._metrics["train"]
        losses: dict[str, torch.Tensor] = {}
        loss_value = None
        self._pcgrad_view = None
        self._pcgrad_labels = labels
        try:
            for d in sorted(set(labels.tolist())):
                before = {k: len(v) for k, v in metrics.items()}
                self._pcgrad_rows = labels == d
                loss = super().compute_loss(model, loss_inputs, return_outputs, num_items_in_batch)
                if loss_value is None:
                    loss_value = loss.detach()
                else:  # same values again: keep TRL's per-micro-batch metrics logged once
                    for key, n in before.items():
                        del metrics[key][n:]
                    for key in [k for k in metrics if k not in before]:
                        del metrics[key]
                losses[self.pcgrad_domains[d]] = loss * scale
            self._pcgrad_acc.add(losses)
        finally:
            self._pcgrad_rows = None
            self._pcgrad_view = None
            self._pcgrad_labels = None
        # The Trainer backpropagates what is returned: a leaf stand-in with the loss value, so its
        # backward reaches no parameter (the gradients are in the accumulator).
        return loss_value.clone().requires_grad_(True)

    def training_step(
        self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        out = super().training_step(model, inputs, num_items_in_batch)
        # GRPOTrainer counts micro-batches in ``_step``; the last of an accumulation window ends here.
        if self._step % self.current_gradient_accumulation_steps == 0 and self._pcgrad_acc is not None:
            for key, value in self._pcgrad_acc.step().as_metrics().items():
                self._metrics["train"][key].append(value)
        return out
