"""Data parallelism for rlpipe's own PPO trainer: the process group, collectives, global statistics.

Under ``accelerate launch`` (config ``config/accelerate/ddp.yaml``, torchrun underneath) every
process holds a full copy of the policy and critic, rolls out its own share of each step's prompts
and computes gradients on it; the gradients are then averaged over the processes with explicit
all-reduces (``allreduce_grads_``), so one optimizer step on every rank sees the same gradient and
leaves identical parameters everywhere. That is what DDP does, written out, and chosen over wrapping
the models in accelerate's DDP because:

* PCGrad computes one gradient per domain with ``torch.autograd.grad``, which bypasses DDP's
  reducer hooks (a DDP-wrapped model would need ``no_sync`` tricks, and its reducer would still
  expect a ``backward`` every step); with explicit collectives the plain and the PCGrad update use
  the same reduction (``rlpipe.train.pcgrad.allreduce_flat_``, per domain);
* the policy is also used for sampling (``generate``), for the reference (LoRA adapter disabled)
  and, with ``critic: shared``, under the value head: plain modules keep all of that unchanged;
* the same code runs on NCCL (GPUs) and gloo (CPU, the tests).

Sharded training (FSDP / ZeRO-3) is not implemented for PPO: ``rlpipe.train.launch`` refuses those
accelerate configs for PPO runs.

Every function here is a no-op (or the single-process computation) when no process group is
initialised, so the single-process trainer is unchanged.
"""

from __future__ import annotations

import datetime
import os
import random
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from rlpipe.train import core_algos as algos

# Ranks wait for each other in collectives while one of them generates longer completions or the
# main process scores the validation split: the default 10 minutes is too short for a 7B rollout.
TIMEOUT = datetime.timedelta(hours=2)
# All-reduce gradients in buckets of this many elements (one flat copy of the whole model would
# double the gradient memory; one collective per tensor is slow on NCCL).
BUCKET_NUMEL = 64 * 1024 * 1024


def initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if initialized() else 1


def rank() -> int:
    return dist.get_rank() if initialized() else 0


def is_main() -> bool:
    return rank() == 0


def init_from_env() -> torch.device:
    """Join the process group that ``accelerate launch`` / torchrun describe in the environment.

    With ``WORLD_SIZE`` > 1 (and no group yet) the group is initialised from the ``env://``
    variables: NCCL when CUDA is available, else gloo. Returns this process's device: GPU
    ``LOCAL_RANK`` (made the current device, which NCCL's object collectives rely on) or the CPU.
    """
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not initialized():
        if cuda:  # bound to its GPU up front, so barriers and object collectives use that one
            dist.init_process_group("nccl", timeout=TIMEOUT, device_id=device)
        else:
            dist.init_process_group("gloo", timeout=TIMEOUT)
    return device


def shutdown() -> None:
    """Leave the process group (all ranks), if there is one."""
    if initialized():
        dist.barrier()
        dist.destroy_process_group()


def seed_rank(seed: int) -> None:
    """Give this rank its own sampling streams: rank 0 keeps ``seed``, rank r gets a derived seed.

    Every process starts from ``init_job(threads, seed)``; without this all ranks would draw the
    same random numbers for their (different) prompts. Rank 0 is left alone so a one-process run
    draws exactly what it always did.
    """
    r = rank()
    if r == 0:
        return
    derived = int(seed) * 1_000_003 + 7_919 * r
    random.seed(derived)
    np.random.seed(derived % 2**32)
    torch.manual_seed(derived)


# --------------------------------------------------------------------------------------------------
# Collectives (no-ops in one process)


def all_reduce_(t: Tensor, op: str = "sum") -> Tensor:
    """In place, the ``sum``, ``mean`` or ``max`` of ``t`` over the ranks; returns ``t``."""
    if world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        if op == "mean":
            t.div_(world_size())
    return t


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def all_gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order (``[obj]`` in one process)."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def mean_over_ranks(values: Mapping[str, float]) -> dict[str, float]:
    """Each value averaged over the ranks; every rank must pass the same keys."""
    if world_size() == 1:
        return dict(values)
    keys = sorted(values)
    gathered = all_gather_objects(keys)
    if any(k != keys for k in gathered):
        raise RuntimeError(f"ranks disagree on the metric names: {gathered}")
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_device())
    all_reduce_(t, "mean")
    return dict(zip(keys, t.tolist(), strict=True))


def agree_on_signal(requested: int | None) -> int | None:
    """The stop signal any rank received this step (the largest number), or None on every rank.

    The processes of a run get a signal at slightly different moments; if one saved and exited at
    step N and another carried on to N+1, the collectives of the save would hang. One tiny
    all-reduce per step makes all of them stop after the same step.
    """
    if world_size() == 1:
        return requested
    t = torch.tensor([float(requested or 0)], device=_device())
    all_reduce_(t, "max")
    return int(t.item()) or None


def _device() -> torch.device:
    """Where NCCL collectives need their tensors (the current GPU); the CPU with gloo."""
    if torch.cuda.is_available() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _buckets(params: list[torch.nn.Parameter]) -> Iterable[list[torch.nn.Parameter]]:
    """Consecutive parameters of one dtype and device, at most ``BUCKET_NUMEL`` elements per bucket."""
    bucket: list[torch.nn.Parameter] = []
    size = 0
    for p in params:
        if bucket and (
            size + p.numel() > BUCKET_NUMEL or p.dtype != bucket[0].dtype or p.device != bucket[0].device
        ):
            yield bucket
            bucket, size = [], 0
        bucket.append(p)
        size += p.numel()
    if bucket:
        yield bucket


def allreduce_grads_(params: Iterable[torch.nn.Parameter]) -> None:
    """Replace every ``.grad`` by its mean over the ranks (DDP's averaging); a missing grad counts as 0.

    The parameters must be the same list, in the same order, on every rank.
    """
    if world_size() == 1:
        return
    for bucket in _buckets([p for p in params if p.requires_grad]):
        flat = torch.cat(
            [p.grad.reshape(-1) if p.grad is not None else torch.zeros_like(p).reshape(-1) for p in bucket]
        )
        all_reduce_(flat, "mean")
        offset = 0
        for p in bucket:
            piece = flat[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
            if p.grad is None:
                p.grad = piece.clone()
            else:
                p.grad.copy_(piece)


def broadcast_params_(*modules: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank (DDP does this when it wraps a model).

    Every rank loads the same weights, but anything initialised randomly (a LoRA adapter) or loaded
    differently must not make the replicas start apart: they would never meet again.
    """
    if world_size() == 1:
        return
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=src)


# --------------------------------------------------------------------------------------------------
# Masked statistics over the whole (global) batch: the single-process ``core_algos`` in one process


def _global_sums(*values: Tensor) -> list[Tensor]:
    """The given 0-d tensors summed over the ranks, in one collective."""
    t = torch.stack([v.to(torch.float64) for v in values])
    return list(all_reduce_(t, "sum").unbind())


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """``core_algos.masked_mean`` over the valid positions of every rank's batch."""
    if world_size() == 1:
        return algos.masked_mean(values, mask)
    total, count = _global_sums(algos.masked_sum(values.float(), mask), (mask > 0).sum())
    mean = total / count if count > 0 else torch.zeros_like(total)
    return mean.to(torch.float32)


def masked_var(values: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """``core_algos.masked_var`` (mean, squared deviations and count all global)."""
    if world_size() == 1:
        return algos.masked_var(values, mask, unbiased=unbiased)
    mean = masked_mean(values, mask)
    sq, count = _global_sums(algos.masked_sum((values.float() - mean) ** 2, mask), (mask > 0).sum())
    if count <= 0:
        return torch.zeros((), dtype=torch.float32, device=values.device)
    var = sq / count
    if unbiased:
        var = var * count / (count - 1) if count > 1 else torch.zeros_like(var)
    return var.to(torch.float32)


def masked_whiten(values: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """``core_algos.masked_whiten`` with the global mean and (unbiased) variance.

    Whitening PPO advantages with each rank's own statistics would give the ranks different
    advantage scales for the same update: the data-parallel step would no longer be the step of the
    whole batch.
    """
    if world_size() == 1:
        return algos.masked_whiten(values, mask)
    mean = masked_mean(values, mask).to(values.device)
    var = masked_var(values, mask, unbiased=True).to(values.device)
    whitened = (values - mean) * torch.rsqrt(var + eps)
    return torch.where(mask > 0, whitened, torch.zeros((), dtype=whitened.dtype, device=whitened.device))


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
    """``core_algos.explained_variance`` over the global batch (biased variances, ``nan`` if flat)."""
    if world_size() == 1:
        return algos.explained_variance(values, returns, mask)
    var_returns = masked_var(returns, mask, unbiased=False)
    var_resid = masked_var(returns - values, mask, unbiased=False)
    if var_returns <= 0:
        return torch.tensor(float("nan"))
    return (1.0 - var_resid / var_returns).detach()
