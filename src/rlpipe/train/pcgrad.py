"""PCGrad: gradient surgery for multi-task (here: multi-domain) RL (Yu et al. 2020).

When the gradients of two domains (say, arithmetic and code rewards) point in conflicting
directions -- negative dot product -- a plain sum lets the larger one cancel part of the smaller
one's progress. PCGrad removes, from each domain's gradient, its component along every *other*
domain's original gradient that it conflicts with::

    for each domain i:
        g_i' = g_i
        for each other domain j (in random order):
            if g_i' . g_j < 0:
                g_i' = g_i' - (g_i' . g_j / ||g_j||^2) * g_j
    update direction = sum_i g_i'

The conflict test uses the partially projected ``g_i'`` and the *original* ``g_j``, as in the
paper's Algorithm 1. Random order matters with three or more domains (the projections do not
commute); a ``torch.Generator`` makes it reproducible.

Rules for using it on a real model (why the helpers below look the way they do):

* The projection must act on the **full** gradient of each domain over **all** trainable
  parameters: per-layer or per-shard surgery is a different (non-equivalent) algorithm.
* **Distributed**: ``torch.autograd.grad`` bypasses DDP's gradient all-reduce, so each rank only
  holds its local per-domain gradient. Each domain's flat gradient must be all-reduced (mean over
  ranks, full and unsharded) *before* projection -- projecting local gradients and averaging
  afterwards is not PCGrad of the global gradients. ``allreduce_flat_`` does this and is called by
  ``pcgrad_backward``/``PCGradAccumulator`` for every domain. Every rank must therefore pass the
  same set of domain names (use a zero loss, or ``PCGradAccumulator``'s fixed domain list, for a
  domain absent from a rank's batch) or the collectives deadlock. Run the forward pass under
  ``ddp_model.no_sync()`` (or on the unwrapped module) so DDP's reducer does not wait for a
  ``backward`` that never happens. rlpipe's data-parallel PPO (``rlpipe.train.ppo``) uses plain
  modules, weights each rank's domain losses by its share of the global minibatch's tokens (so
  the mean over ranks is the whole minibatch's gradient) and passes every domain present on any
  rank, a constant zero for one it lacks. Sharded parameters (FSDP / ZeRO-3) are not supported: the
  gradient would have to be gathered in full first.
* **Gradient accumulation**: the projection of summed micro-batch gradients is not the sum of
  per-micro-batch projections. Accumulate each domain's gradient over the micro-batches first
  (``PCGradAccumulator``), then project once, then let the optimizer (and gradient clipping) run.
* **Parameters kept out of the projection** (``PCGradAccumulator``'s ``other_params``, e.g. PPO's
  critic): "all trainable parameters" above means all parameters of *one* projection. Putting a
  second model's parameters into the same flat vector lets a conflict between *its* gradients
  change the first model's update: with policy parts ``[1, 0]`` and ``[0, 1]`` (orthogonal, nothing
  to project) and critic parts ``5`` and ``-2``, the joint projection moves the policy by
  ``[1.385, 3.0]`` instead of ``[1, 1]``. Such parameters get the plain sum of their per-domain
  gradients, or a projection of their own (``other="project"``); their per-domain gradients are
  still computed in the same ``autograd.grad`` call and all-reduced in the same buffer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class PCGradStats:
    """What one projection did, for logging.

    ``cosine[i, j]`` is the cosine similarity of the *original* gradients of domains i and j (0
    when either is zero); ``grad_norms[i]`` the norm of domain i's original gradient;
    ``num_projections`` how many projections were applied in total (at most ``K * (K - 1)``).
    """

    cosine: Tensor
    grad_norms: Tensor
    num_projections: int
    domains: list[str] = field(default_factory=list)

    def as_metrics(self) -> dict[str, float]:
        """The per-step metrics both PCGrad trainers log (GRPO and PPO, so ``metrics.jsonl`` reads the
        same): ``pcgrad/projections``, ``pcgrad/grad_norm/<d>`` and ``pcgrad/cos/<a>__<b>``."""
        names = self.domains or [str(i) for i in range(len(self.grad_norms))]
        out: dict[str, float] = {"pcgrad/projections": float(self.num_projections)}
        for i, a in enumerate(names):
            out[f"pcgrad/grad_norm/{a}"] = float(self.grad_norms[i])
            for j in range(i + 1, len(names)):
                out[f"pcgrad/cos/{a}__{names[j]}"] = float(self.cosine[i, j])
        return out


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dot products of millions of bf16/fp16 entries are too lossy: project in float32 at least."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def project_conflicting(grads: Sequence[Tensor], generator: torch.Generator) -> tuple[Tensor, PCGradStats]:
    """PCGrad on flat per-domain gradients; returns ``(sum of projected gradients, stats)``.

    ``grads`` are 1-D tensors of equal length (one per domain, each the *full* gradient over all
    trainable parameters). Each is projected onto the normal plane of every other domain's
    original gradient it conflicts with (negative dot product), visiting the others in an order
    drawn from ``generator`` (one independent permutation per domain). A zero gradient never
    conflicts and is never projected onto. With a single domain the result is that gradient.
    The sum has the dtype of ``grads[0]``; the arithmetic is done in float32 (or float64).
    """
    if not grads:
        raise ValueError("project_conflicting needs at least one gradient")
    shape = grads[0].shape
    if any(g.ndim != 1 or g.shape != shape for g in grads):
        raise ValueError("project_conflicting expects flat (1-D) gradients of equal length")
    out_dtype = grads[0].dtype
    # No stacked copy: converting to the working dtype is free when the input already has it, and
    # the inputs are only read. Peak extra memory is two flat vectors, not K of them.
    work = [g.detach().to(_work_dtype(out_dtype)) for g in grads]
    k = len(work)
    gram = torch.empty(k, k, dtype=work[0].dtype, device=work[0].device)
    for i in range(k):
        for j in range(i, k):
            gram[i, j] = gram[j, i] = torch.dot(work[i], work[j])
    sq_norms = gram.diagonal().clone()
    norms = sq_norms.clamp_min(0).sqrt()
    denom = torch.outer(norms, norms)
    cosine = torch.where(denom > 0, gram / denom.clamp_min(torch.finfo(gram.dtype).tiny), 0.0)

    summed = torch.zeros_like(work[0])
    num_projections = 0
    for i in range(k):
        g_i = work[i].clone()
        order = [int(j) for j in torch.randperm(k, generator=generator) if int(j) != i]
        for j in order:
            if sq_norms[j] <= 0:
                continue
            dot = torch.dot(g_i, work[j])
            if dot < 0:
                g_i -= (dot / sq_norms[j]) * work[j]
                num_projections += 1
        summed += g_i
    summed = summed.to(out_dtype)
    stats = PCGradStats(cosine=cosine, grad_norms=norms, num_projections=num_projections)
    return summed, stats


def flatten_grads(params: Iterable[torch.nn.Parameter]) -> Tensor:
    """All ``.grad`` of ``params`` concatenated into one flat tensor (zeros where ``.grad`` is None)."""
    pieces = [
        p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
        for p in params
    ]
    if not pieces:
        raise ValueError("flatten_grads got no parameters")
    return torch.cat(pieces)


def assign_flat_grad(params: Iterable[torch.nn.Parameter], flat: Tensor, accumulate: bool = False) -> None:
    """Write ``flat`` (laid out as by ``flatten_grads``) into the parameters' ``.grad``.

    Overwrites existing gradients unless ``accumulate`` (then adds). Raises if the sizes disagree,
    since a silent misalignment would train every layer with another layer's gradient.
    """
    params = list(params)
    total = sum(p.numel() for p in params)
    if flat.ndim != 1 or flat.numel() != total:
        raise ValueError(f"flat gradient has {flat.numel()} elements, parameters have {total}")
    offset = 0
    for p in params:
        piece = flat[offset : offset + p.numel()].view_as(p).to(p.dtype)
        offset += p.numel()
        if accumulate and p.grad is not None:
            p.grad.add_(piece)
        else:
            p.grad = piece.clone()


def allreduce_flat_(flat: Tensor) -> Tensor:
    """In place, the mean of ``flat`` over all ranks when torch.distributed is initialised; else no-op.

    The mean (not the sum) matches DDP's gradient averaging, so PCGrad under data parallelism sees
    the same per-domain gradients a single process with the whole global batch would. Returns
    ``flat`` for chaining.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
        flat.div_(torch.distributed.get_world_size())
    return flat


def _domain_grad(loss: Tensor, params: list[torch.nn.Parameter], retain_graph: bool) -> Tensor:
    """The flat gradient of ``loss`` over ``params`` (zeros for parameters it does not reach)."""
    if not loss.requires_grad:  # e.g. a constant zero loss for a domain absent from this batch
        return torch.cat([torch.zeros(p.numel(), dtype=p.dtype, device=p.device) for p in params])
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    return torch.cat(
        [
            g.reshape(-1) if g is not None else torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
            for g, p in zip(grads, params, strict=True)
        ]
    )


def _trainable(params: Iterable[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    """The parameters that receive gradients; frozen ones (e.g. outside a LoRA adapter) are skipped."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters")
    return params


def pcgrad_backward(
    model_params: Iterable[torch.nn.Parameter],
    per_domain_losses: Mapping[str, Tensor],
    generator: torch.Generator,
    accumulate: bool = False,
) -> PCGradStats:
    """Replace ``loss.backward()`` for a batch with several domains: write the PCGrad update to ``.grad``.

    For each domain (sorted by name, so that every rank issues its all-reduces in the same order)
    the full gradient over all trainable parameters is computed with ``torch.autograd.grad``
    (keeping the shared graph until the last domain), all-reduced across ranks
    (``allreduce_flat_``), then the gradients are projected (``project_conflicting``), summed and
    written to ``.grad`` (overwriting, or adding with ``accumulate``). The caller then clips and
    steps the optimizer as usual. Returns the projection statistics with domain names. This is
    ``PCGradAccumulator`` with a single micro-batch.
    """
    if not per_domain_losses:
        raise ValueError("pcgrad_backward needs at least one domain loss")
    acc = PCGradAccumulator(model_params, sorted(per_domain_losses), generator)
    acc.add(per_domain_losses)
    return acc.step(accumulate=accumulate)


class PCGradAccumulator:
    """PCGrad with gradient accumulation: sum each domain's gradient over micro-batches, project once.

    Usage per optimizer step::

        acc = PCGradAccumulator(model.parameters(), ["arith", "code"], generator)
        for micro_batch in batches:
            losses = {...}                    # per-domain losses of this micro-batch, scaled
            acc.add(losses)                   #   by 1 / accumulation steps as usual
        stats = acc.step()                    # all-reduce, project, write .grad
        clip_grad_norm_(...); optimizer.step(); optimizer.zero_grad()

    The domain list is fixed up front so every rank all-reduces the same buffers in the same
    order even when a micro-batch (or a whole rank) has no sample of some domain. Buffers are kept
    in float32 (float64 for float64 models): one full-size copy per domain.

    ``other_params`` (default none) are trainable parameters kept *out of* the projection of
    ``params`` (PPO passes the critic's): each domain's gradient over them is accumulated and
    all-reduced with its gradient over ``params`` (one buffer, one collective per domain, as
    without them), and ``step`` writes to them the plain sum over the domains (``other="sum"``)
    or the PCGrad projection of their per-domain gradients among themselves (``other="project"``,
    a separate problem: it never touches the update of ``params``). The returned statistics are
    those of the projection of ``params`` only. A parameter may not be in both lists.
    """

    OTHER_MODES = ("sum", "project")

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        domains: Sequence[str],
        generator: torch.Generator,
        *,
        other_params: Iterable[torch.nn.Parameter] = (),
        other: str = "sum",
    ) -> None:
        self.params = _trainable(params)
        self.other_params = [p for p in other_params if p.requires_grad]
        if {id(p) for p in self.params} & {id(p) for p in self.other_params}:
            raise ValueError("a parameter is both projected (params) and kept out of it (other_params)")
        if other not in self.OTHER_MODES:
            raise ValueError(f"other must be one of {self.OTHER_MODES}, got {other!r}")
        if not domains or len(set(domains)) != len(domains):
            raise ValueError("PCGradAccumulator needs a non-empty list of distinct domain names")
        self.domains = list(domains)
        self.generator = generator
        self.other = other
        self._buffers: dict[str, Tensor] = {}

    def add(self, per_domain_losses: Mapping[str, Tensor]) -> None:
        """Add this micro-batch's per-domain gradients to the buffers (``.grad`` is not touched)."""
        unknown = set(per_domain_losses) - set(self.domains)
        if unknown:
            raise KeyError(f"unknown domains {sorted(unknown)}; declared {self.domains}")
        names = [n for n in self.domains if n in per_domain_losses]
        params = self.params + self.other_params
        for index, name in enumerate(names):
            flat = _domain_grad(per_domain_losses[name], params, retain_graph=index < len(names) - 1)
            flat = flat.to(_work_dtype(flat.dtype))
            if name in self._buffers:
                self._buffers[name].add_(flat)
            else:
                self._buffers[name] = flat

    def step(self, accumulate: bool = False) -> PCGradStats:
        """All-reduce each domain's accumulated gradient, project, write ``.grad``; reset buffers.

        ``params`` get the projected sum; ``other_params`` the plain sum (or their own projection).
        """
        n_projected = sum(p.numel() for p in self.params)
        numel = n_projected + sum(p.numel() for p in self.other_params)
        ref = self.params[0]
        dtype = _work_dtype(ref.dtype)
        flats = []
        for name in self.domains:
            buf = self._buffers.get(name)
            if buf is None:
                buf = torch.zeros(numel, dtype=dtype, device=ref.device)
            flats.append(allreduce_flat_(buf))
        summed, stats = project_conflicting([f[:n_projected] for f in flats], self.generator)
        assign_flat_grad(self.params, summed, accumulate=accumulate)
        if self.other_params:
            rest = [f[n_projected:] for f in flats]
            if self.other == "project":
                rest_sum, _ = project_conflicting(rest, self.generator)
            else:  # in place: the buffers are dropped below (no K-fold stacked copy)
                rest_sum = rest[0]
                for r in rest[1:]:
                    rest_sum.add_(r)
            assign_flat_grad(self.other_params, rest_sum, accumulate=accumulate)
        stats.domains = list(self.domains)
        self._buffers = {}
        return stats
