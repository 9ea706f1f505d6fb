"""A slot-refill generation engine: rows that finish hand their slot to the next prompt at once.

Why (issue 14): ``FastHFGenerator`` decodes static batches, so on real, long-tailed completion lengths
(median ~600 tokens, tail to 8k) every batch runs until its longest row ends while the slots of the rows
that finished early decode nothing; and its attention reads the whole static cache (prompt + 8k slots
per row) every step. This engine keeps the model's own forward and the same sampler, and changes the
schedule and the cache:

* **A KV pool with one extent per row.** One buffer per layer of ``[pool + 1, kv_heads, head_dim]``
  (the last row is scratch: what finished slots write). Each decoding row's keys and values sit in one
  contiguous extent of the pool from position 0 (no padding); each slot carries the extent's ``start``,
  its own position (``pos``: where its current input token is written at ``start + pos``), generated
  count, length limit and done flag, all device tensors. By default (``kv_growth=False``) slot ``s``
  owns the extent ``s * cache_len`` of ``cache_len`` = longest prompt + ``max_new_tokens`` rows, so the
  pool is ``slots * cache_len`` and the slot count is what fits at that width. With ``kv_growth`` an
  extent starts at the prompt plus a few chunks and grows (in place, or moved to a larger free extent;
  ``rlpipe.eval.extents`` allocates) as the row decodes: the pool is sized from free memory, not from
  the widest budget, so a suite with 28k-token budgets and ~1k-token completions keeps hundreds of
  slots instead of the tens that fit at full width. When the pool runs out, the rows in the cheapest
  window (fewest tokens generated) are preempted: their extents freed, their jobs queued again at the
  front and restarted.
* **Attention reads only what each slot holds.** On CUDA in bf16/fp16, decode attention is
  FlashAttention-2's variable-length kernel (``aten._flash_attention_forward``) with ``cu_seqlens_k`` =
  each slot's extent start and ``seqused_k`` = its length, so a step reads each slot's real keys and
  values, not the cache's full width; grouped-query heads are handled by the kernel (with ``seqused_k``
  the kernel reads only ``cu_seqlens_k[i]``, so extents may lie in any order: ``flash_available``
  checks exactly that). Elsewhere (CPU, fp32) it is a masked grouped matmul over each slot's extent.
* **Refill.** Every ``check_every`` decode steps the host reads the done flags and counts (one small
  sync), copies the finished rows' tokens out, grows the extents that need room for the next steps
  (``kv_growth``) and, when enough slots are free, prefills the next prompts into them: one packed
  forward of all admitted prompts (no padding; block-diagonal causal attention, flash varlen on CUDA),
  each prompt's keys written straight into its extent, the first token sampled from each prompt's last
  position. The other slots keep their state and resume decoding after it. ``_Schedule`` keeps this
  host side; ``_Slots`` the device side.
* **One CUDA graph per step.** Slot count and cache width are fixed for a call, and positions, lengths
  and cache write indices are tensors, so the decode step (forward, sampling, bookkeeping) is captured
  once and replayed, optionally through ``torch.compile`` first, as in ``FastHFGenerator``.
* **The tail is compacted.** Once no prompt waits, whenever the rows still decoding fit in three
  quarters of the slots (rounded up to a multiple of 8), their state (not their cache: a slot points at
  its extent) moves to a narrower session over the same pool, so a few long completions do not keep the
  full batch width busy until the longest ends (compacting can repeat every time the tail shrinks by a
  quarter). Finished slots attend to one key, not their context.
* **Slots from free memory.** Unless given, the slot count is what fits in 65% of free GPU memory at
  ``cache_len`` per slot (at most 512; with ``kv_growth``: 512, the pool taking the rest), and never
  more than there are jobs (rounded up to a power of two).

Not done: chunked prefill (a prompt is prefilled in one piece); a block table (FlashAttention-2 in
PyTorch takes none: PyTorch's paged varlen path needs the FlashAttention-3 package).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from rlpipe.eval.extents import Extents
from rlpipe.eval.fast_generate import (
    DecodeEngine,
    _next_pow2,
    _round_up,
    _sample,
    free_cuda_bytes,
    row_bytes,
)
from rlpipe.eval.fused import FusedProjections
from rlpipe.tracking.logs import Progress

log = logging.getLogger(__name__)

_ATTN_NAME = "rlpipe_refill"
_STATE_KW = "rlpipe_refill_state"
_PREFILL_TOKENS = 16384  # prompt tokens per packed prefill forward
_MAX_AUTO_SLOTS = 512
_MEMORY_FRACTION = 0.65
_TAIL_MIN_SLOTS = 4  # the narrowest session the tail is compacted into
_TAIL_ROUND = 8  # a compacted session's width is a multiple of this
_TAIL_SHRINK = 0.75  # compact once the decoding rows fit in this share of the slots


def _refill_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The attention interface entry: cache write and attention are the session's (see ``_Slots.attend``)."""
    state = kwargs.get(_STATE_KW)
    if state is None:  # a forward outside this engine while the implementation is set: plain SDPA
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    return state.attend(module.layer_idx, query, key, value, scale), None


def _register_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(_ATTN_NAME, _refill_attention)


def _flash(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_q: torch.Tensor,
    cu_k: torch.Tensor,
    max_q: int,
    max_k: int,
    causal: bool,
    scale: float,
    seqused_k: torch.Tensor | None = None,
) -> torch.Tensor:
    """FlashAttention-2 varlen forward (``[tokens, heads, dim]`` layout, GQA native)."""
    return torch.ops.aten._flash_attention_forward(
        q, k, v, cu_q, cu_k, max_q, max_k, 0.0, causal, False, scale=scale, seqused_k=seqused_k
    )[0]


def varlen_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_q: torch.Tensor,
    cu_k: torch.Tensor,
    causal: bool,
    scale: float,
    seqused_k: torch.Tensor | None = None,
) -> torch.Tensor:
    """What ``_flash`` computes, written plainly (fp32, one sequence at a time, any device): the reference
    the kernel is checked against (``flash_available``), and its stand-in on CPU in tests and the bench.

    Packed ``[tokens, heads, dim]`` sequences bounded by ``cu_q`` / ``cu_k``; grouped-query heads (query
    head ``h`` reads kv head ``h // group``); ``seqused_k`` keeps each sequence's first keys only; a
    causal mask is aligned bottom-right, as FlashAttention's.
    """
    out = torch.zeros_like(q)
    group = q.shape[1] // k.shape[1]
    for i in range(len(cu_q) - 1):
        qa, qb, ka = int(cu_q[i]), int(cu_q[i + 1]), int(cu_k[i])
        kb = ka + int(seqused_k[i]) if seqused_k is not None else int(cu_k[i + 1])
        keys, values = (x[ka:kb].float().repeat_interleave(group, dim=1).transpose(0, 1) for x in (k, v))
        scores = (q[qa:qb].float().transpose(0, 1) @ keys.transpose(1, 2)) * scale  # [heads, Lq, Lk]
        if causal:
            lq, lk = qb - qa, kb - ka
            keep = (
                torch.arange(lk, device=q.device)[None, :]
                <= torch.arange(lq, device=q.device)[:, None] + lk - lq
            )
            scores = scores.masked_fill(~keep, float("-inf"))
        out[qa:qb] = (scores.softmax(-1) @ values).transpose(0, 1).to(q.dtype)
    return out


def flash_available(device: torch.device, dtype: torch.dtype, head_dim: int, any_order: bool = False) -> bool:
    """Whether the varlen flash kernel with ``seqused_k`` runs here (CUDA, bf16/fp16), checked by a call.

    ``any_order``: also with sequences whose keys lie out of order in the buffer (``cu_k`` not
    increasing: the growing pool's extents), which only a kernel that reads ``cu_k[i]`` alone allows.
    """
    if (
        device.type != "cuda"
        or dtype not in (torch.bfloat16, torch.float16)
        or head_dim % 8
        or head_dim > 256
    ):
        return False
    try:
        q = torch.randn(2, 4, head_dim, device=device, dtype=dtype)
        kv = torch.randn(2 * 16, 2, head_dim, device=device, dtype=dtype)
        cu_q = torch.arange(3, device=device, dtype=torch.int32)
        cu_k = (torch.tensor([1, 0, 2]) if any_order else cu_q.cpu()).to(device, torch.int32) * 16
        used = torch.tensor([3, 16], device=device, dtype=torch.int32)
        out = _flash(q, kv, kv, cu_q, cu_k, 1, 16, False, head_dim**-0.5, used)
        ref = varlen_attention(q, kv, kv, cu_q, cu_k, False, head_dim**-0.5, used)  # slot 0: 3 keys only
        ok = torch.allclose(out.float(), ref.float(), atol=2e-2, rtol=2e-2)
        if not ok:
            log.warning("flash varlen with seqused_k gave wrong values; using masked attention")
        return bool(ok)
    except Exception as exc:  # an older torch or a GPU without the kernel: the masked path still works
        log.warning(
            "flash varlen attention unavailable (%s: %s); using masked attention", type(exc).__name__, exc
        )
        return False


class _Slots:
    """The KV pool and per-slot state for one (slots, pool, cache_len, max_new, mode, compile), and its
    step graph."""

    def __init__(
        self,
        gen: RefillGenerator,
        slots: int,
        pool: int,
        cache_len: int,
        max_new: int,
        mode: str,
        compile: bool,
        share: _Slots | None = None,
    ) -> None:
        """``pool``: cache rows (extents live in it; one scratch row follows); ``cache_len``: the widest
        extent. ``share``: decode over that session's pool (tail compaction)."""
        model, device = gen.model, gen.device
        cfg = model.config.get_text_config(decoder=True)
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        self.heads = cfg.num_attention_heads
        dtype = next(model.parameters()).dtype
        self.gen, self.slots, self.cache_len, self.max_new, self.mode = gen, slots, cache_len, max_new, mode
        self.pool, self.device, self.compiled = pool, device, compile
        if share is not None:  # the kernel was checked for this device, dtype and layout already
            self.flash = share.flash
        else:
            self.flash = gen.use_flash and flash_available(
                device, dtype, self.head_dim, any_order=gen.kv_growth
            )
        # One tensor per layer, not views of one: torch.compile mutates a graph input in place, but a
        # write into a view of one would be functionalised into a copy of the whole base every step.
        shape = (pool + 1, self.kv_heads, self.head_dim)
        if share is not None:  # the same tensors (uncompiled, so they are written in place)
            assert not compile and share.pool == pool and share.cache_len == cache_len
            self.k, self.v = share.k, share.v
        else:
            self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(cfg.num_hidden_layers)]
            self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(cfg.num_hidden_layers)]
        if compile:
            for t in (*self.k, *self.v):
                torch._dynamo.mark_static_address(t)
        long = dict(dtype=torch.long, device=device)
        self.tok = torch.zeros(slots, **long)  # input token of the next decode step
        self.pos = torch.zeros(slots, **long)  # its position = the cache row it is written to
        self.count = torch.zeros(slots, **long)  # tokens generated so far (first token included)
        self.limit = torch.ones(slots, **long)
        self.done = torch.ones(slots, dtype=torch.bool, device=device)  # an empty slot is done
        self.out = torch.zeros(slots, max_new + 1, **long)  # last column: writes of rows not decoding
        # The flash kernel's ``cu_seqlens_k``: each slot's extent start (an empty slot's: the scratch row),
        # then one bound past the pool. ``start`` is a view of it, the one copy the host writes.
        self.cu_k = torch.full((slots + 1,), pool, dtype=torch.int32, device=device)
        self.cu_k[-1] = pool + 1
        self.start = self.cu_k[:-1]
        self.write = torch.zeros(slots, **long)
        self.used = torch.ones(slots, dtype=torch.int32, device=device)
        # Query rows per slot in a flash decode call: 1, or the query heads of a kv head (group swap).
        self.group = self.heads // self.kv_heads if gen.decode_group_swap else 1
        self.cu_group = torch.arange(slots + 1, dtype=torch.int32, device=device) * self.group
        self.cols = torch.arange(cache_len, **long)
        self.eos = torch.tensor(sorted(gen.eos_ids) or [-1], **long)
        self.temperature = torch.ones(1, dtype=torch.float32, device=device)
        self.top_p = torch.ones(1, dtype=torch.float32, device=device)
        types = sorted(set(getattr(cfg, "layer_types", None) or ["full_attention"]))
        self.masks: dict[str, None] = dict.fromkeys(types)
        self.prefilling = False
        self.p_write = self.p_cu = torch.zeros(1, **long)
        self.p_max, self.p_bounds = 0, [(0, 0)]
        self.graph: torch.cuda.CUDAGraph | None = None
        self.no_graph = False
        self.forward_fn: Callable[[], torch.Tensor] = self._forward
        self.sample_fn: Callable[[torch.Tensor], None] = self._sample_next
        if compile:
            self.forward_fn = torch.compile(self._forward, dynamic=False)
            if not (mode == "top_p" and gen.top_p_method == "sort"):
                self.sample_fn = torch.compile(self._sample_next, dynamic=False)

    def reset(self) -> None:
        self.start.fill_(self.pool)
        self.done.fill_(True)
        self.count.zero_()
        self.limit.fill_(1)
        self.pos.zero_()
        self.tok.zero_()

    # --- attention: called by every layer through the attention interface ---

    def attend(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float
    ) -> torch.Tensor:
        kc, vc = self.k[layer], self.v[layer]
        if self.prefilling:  # q: [1, heads, T, dim] of the packed prompts; k, v: [1, kv_heads, T, dim]
            kn, vn = k[0].transpose(0, 1), v[0].transpose(0, 1)
            kc.index_copy_(0, self.p_write, kn)
            vc.index_copy_(0, self.p_write, vn)
            if self.flash:
                qn = q[0].transpose(0, 1).contiguous()
                out = _flash(
                    qn,
                    kn.contiguous(),
                    vn.contiguous(),
                    self.p_cu,
                    self.p_cu,
                    self.p_max,
                    self.p_max,
                    True,
                    scale,
                )
                return out[None]
            group = self.heads // self.kv_heads
            parts = []
            for a, b in self.p_bounds:
                parts.append(
                    torch.nn.functional.scaled_dot_product_attention(
                        q[:, :, a:b],
                        k[:, :, a:b].repeat_interleave(group, dim=1),
                        v[:, :, a:b].repeat_interleave(group, dim=1),
                        is_causal=True,
                        scale=scale,
                    )
                )
            return torch.cat(parts, dim=2).transpose(1, 2)
        # Decode: q [slots, heads, 1, dim]; k, v [slots, kv_heads, 1, dim].
        kc.index_copy_(0, self.write, k[:, :, 0])
        vc.index_copy_(0, self.write, v[:, :, 0])
        s, d = self.slots, self.head_dim
        if self.flash:
            # One query row per slot (``group`` 1), or with ``decode_group_swap`` the ``group`` query heads
            # that share a kv head as ``group`` rows of one sequence (non-causal: all see the slot's keys),
            # so each kv head's keys are read once, not per query head (FlashAttention's decode swap).
            g = self.group
            h = self.heads // g
            rows = q.reshape(s, h, g, d).transpose(1, 2).reshape(s * g, h, d)
            out = _flash(rows, kc, vc, self.cu_group, self.cu_k, g, self.cache_len, False, scale, self.used)
            return out.view(s, g, h, d).transpose(1, 2).reshape(s, 1, self.heads, d)
        grouped = q.reshape(s, self.kv_heads, self.heads // self.kv_heads, d)
        rows = (self.start[:, None] + self.cols).clamp_(max=self.pool)  # each slot's extent, [s, L]
        keys = kc[rows].permute(0, 2, 3, 1)  # [s, kv, d, L]
        values = vc[rows].transpose(1, 2)  # [s, kv, L, d]
        scores = torch.matmul(grouped, keys).float() * scale  # [s, kv, group, L]
        visible = (self.cols[None, :] <= self.pos[:, None])[:, None, None, :]
        probs = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1).to(values.dtype)
        return torch.matmul(probs, values).reshape(s, 1, self.heads, d)

    # --- decode step: device work only, graph-capturable ---

    def _forward(self) -> torch.Tensor:
        # A finished slot writes to the scratch row (its extent may already be another row's) and
        # attends to one key only: its stale context would cost reads for nothing.
        self.write.copy_(torch.where(self.done, self.pool, self.start + self.pos))
        self.used.copy_(torch.where(self.done, 1, self.pos + 1))
        logits = self.gen.model(
            input_ids=self.tok[:, None],
            position_ids=self.pos[:, None],
            attention_mask=self.masks,
            use_cache=False,
            logits_to_keep=1,
            **{_STATE_KW: self},
        ).logits[:, -1, :]
        return logits.float()

    def _sample_next(self, logits: torch.Tensor) -> None:
        gen = self.gen
        nxt = _sample(logits, self.temperature, self.top_p, self.mode, gen.top_p_method, gen.top_k)
        active = ~self.done
        col = torch.where(active, self.count, self.max_new)
        self.out.scatter_(1, col[:, None], nxt[:, None])
        self.count.add_(active.long())
        stop = torch.isin(nxt, self.eos) | (self.count >= self.limit)
        self.done.logical_or_(active & stop)
        self.pos.add_((~self.done).long())  # a row still decoding feeds its new token one position on
        self.tok.copy_(nxt)

    def _step(self) -> None:
        self.sample_fn(self.forward_fn())

    def _state(self) -> list[torch.Tensor]:
        return [
            self.tok,
            self.pos,
            self.count,
            self.limit,
            self.done,
            self.out,
            self.write,
            self.used,
        ]

    def capture(self) -> None:
        """Warm up (compiles) and capture the step on a side stream, leaving all state as it was.

        The warm-up steps run with every slot marked done, so that their cache writes go to the scratch
        row: a decoding row's next positions may lie past its extent (in another row's) until the host
        grows it before the real steps.
        """
        saved = [t.clone() for t in self._state()]
        rng = torch.cuda.get_rng_state(self.device)
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))

        def warm_up() -> None:
            self.done.fill_(True)
            for _ in range(3):
                self._step()

        with torch.cuda.stream(stream):
            try:
                warm_up()
            except Exception as exc:  # a compiler bug must cost speed, not the evaluation
                log.warning("torch.compile failed (%s: %s); decoding eagerly", type(exc).__name__, exc)
                self.forward_fn, self.sample_fn = self._forward, self._sample_next
                warm_up()
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step()
        for dst, src in zip(self._state(), saved, strict=True):
            dst.copy_(src)
        torch.cuda.set_rng_state(rng, self.device)
        self.graph = graph

    def ensure_graph(self) -> None:
        """Capture the step graph once (CUDA with graphs on); a failed capture decodes eagerly."""
        if self.gen.cuda_graphs and self.device.type == "cuda" and self.graph is None and not self.no_graph:
            try:
                self.capture()
            except Exception as exc:  # a kernel that cannot be captured must cost speed, not the call
                log.warning(
                    "CUDA graph capture failed (%s: %s); decoding without a graph", type(exc).__name__, exc
                )
                self.no_graph = True
                torch.cuda.synchronize(self.device)

    def decode(self, steps: int) -> None:
        self.ensure_graph()
        for _ in range(steps):
            if self.graph is not None:
                self.graph.replay()
            else:
                self._step()

    def take_over(self, other: _Slots, moved: list[int]) -> None:
        """Continue slots ``moved`` of ``other`` (same pool) in this session's slots 0..len-1: their state
        is copied, their keys and values stay where they are (each slot points at its extent)."""
        n = len(moved)
        src = torch.tensor(moved, dtype=torch.long, device=self.device)
        for name in ("tok", "pos", "count", "limit", "done", "out", "start"):
            getattr(self, name)[:n] = getattr(other, name).index_select(0, src)
        self.temperature.copy_(other.temperature)
        self.top_p.copy_(other.top_p)

    # --- prefill: eager, packed ---

    def move(self, moves: list[tuple[int, int, int, int]]) -> None:
        """Move rows' caches to new extents: ``(slot, old start, new start, rows)`` each, the first
        ``rows`` cache rows copied. One gather and one scatter per layer for all of them: every source
        is read before any destination is written, so a destination may be another move's source."""
        if not moves:
            return
        dev, long = self.device, torch.long
        src = torch.cat([torch.arange(a, a + n, dtype=long) for _, a, _, n in moves]).to(dev)
        dst = torch.cat([torch.arange(b, b + n, dtype=long) for _, _, b, n in moves]).to(dev)
        for t in (*self.k, *self.v):
            t.index_copy_(0, dst, t.index_select(0, src))
        slots = torch.tensor([m[0] for m in moves], dtype=long, device=dev)
        self.start[slots] = torch.tensor([m[2] for m in moves], dtype=self.start.dtype, device=dev)

    def admit(self, slots: list[int], starts: list[int], prompts: list[list[int]], limits: list[int]) -> None:
        """Prefill ``prompts`` into ``slots`` with their extents at ``starts`` (one packed forward) and
        sample each one's first token."""
        lens = [len(p) for p in prompts]
        dev, long = self.device, torch.long
        ids = torch.tensor([t for p in prompts for t in p], dtype=long)
        positions = torch.cat([torch.arange(n, dtype=long) for n in lens])
        write = torch.cat([torch.arange(n, dtype=long) + a for a, n in zip(starts, lens, strict=True)])
        ends = torch.tensor(lens, dtype=long).cumsum(0)
        self.p_write = write.to(dev)
        self.p_cu = torch.cat([torch.zeros(1, dtype=long), ends]).to(dev, torch.int32)
        self.p_max = max(lens)
        bounds = [0, *ends.tolist()]
        self.p_bounds = list(zip(bounds[:-1], bounds[1:], strict=True))
        self.prefilling = True
        try:
            logits = self.gen.model(
                input_ids=ids[None].to(dev),
                position_ids=positions[None].to(dev),
                attention_mask=self.masks,
                use_cache=False,
                logits_to_keep=(ends - 1).to(dev),
                **{_STATE_KW: self},
            ).logits[0]
        finally:
            self.prefilling = False
        gen = self.gen
        first = _sample(logits.float(), self.temperature, self.top_p, self.mode, gen.top_p_method, gen.top_k)
        idx = torch.tensor(slots, dtype=long, device=dev)
        lim = torch.tensor(limits, dtype=long, device=dev)
        self.start[idx] = torch.tensor(starts, dtype=self.start.dtype, device=dev)
        self.tok[idx] = first
        self.pos[idx] = torch.tensor(lens, dtype=long, device=dev)
        self.count[idx] = 1
        self.limit[idx] = lim
        self.out[idx, 0] = first
        self.done[idx] = torch.isin(first, self.eos) | (lim <= 1)


@dataclass
class _Held:
    """What a slot holds: its job, the prompt's length, the job's limit and its cache extent."""

    job: int
    plen: int
    limit: int
    start: int
    rows: int


class _Schedule:
    """The host side of one call: which job each slot holds, the queue, and (``kv_growth``) the pool's
    extents; it decides admissions, growth and preemptions and has the session do the device work."""

    def __init__(
        self,
        gen: RefillGenerator,
        session: _Slots,
        prompts: list[list[int]],
        jobs: list[tuple[int, int]],
        limits: list[int],
    ) -> None:
        self.gen, self.session, self.prompts, self.jobs, self.limits = gen, session, prompts, jobs, limits
        self.held: list[_Held | None] = [None] * session.slots
        self.pending = deque(range(len(jobs)))
        self.refill_min = gen.refill_min or max(1, session.slots // 16)
        self.width, self.chunk = session.cache_len, gen.kv_chunk
        self.pool = Extents(session.pool, self.chunk) if gen.kv_growth else None
        # After a preemption no job is admitted until a row ends: the victims would be admitted again
        # into the room the growing row left, and preempted again at their next growth (thrashing).
        self.crowded = False
        self.produced = 0  # tokens of the finished rows
        self.stats: dict[str, Any] = dict(
            slots=session.slots,
            cache_len=self.width,
            pool_rows=session.pool,
            kv_growth=gen.kv_growth,
            decode_steps=0,
            slot_steps=0,
            prefills=0,
            flash=session.flash,
            tail_slots=[],
            extended=0,
            moved=0,
            preempted=0,
        )
        widest = max(self.full(self._held(j)) for j in range(len(jobs)))
        if self.pool is not None and self.pool.size < 3 * widest:
            raise ValueError(
                f"kv_pool: {session.pool} cache rows cannot hold three of this call's widest extents "
                f"({widest} rows each), which a growing row may need to find room"
            )

    def _held(self, job: int) -> _Held:
        return _Held(job, len(self.prompts[self.jobs[job][0]]), self.limits[job], 0, 0)

    def full(self, h: _Held) -> int:
        """The rows a job can ever need: its prompt and limit (the last token is never written)."""
        return min(self.width, _round_up(h.plen + h.limit, self.chunk))

    def place(self, slot: int, job: int, decoding: int) -> _Held | None:
        """The job's row in ``slot`` with its first extent, or None when the pool cannot take it yet."""
        h = self._held(job)
        if self.pool is None:  # one full-width extent per slot (admissions happen in the full session only)
            h.start, h.rows = slot * self.width, self.width
            return h
        first = h.plen + max(4 * self.chunk, self.gen.check_every + 1)
        h.rows = min(self.full(h), _round_up(first, self.chunk))
        if self.pool.free_rows - h.rows < decoding * self.chunk:  # keep a chunk of room per decoding row
            return None
        start = self.pool.alloc(h.rows)
        if start is None:
            return None
        h.start = start
        return h

    def release(self, slot: int) -> None:
        h = self.held[slot]
        assert h is not None
        if self.pool is not None:
            self.pool.free(h.start, h.rows)
        self.held[slot] = None

    def collect(self, done: list[int], counts: list[int], out: list[list[list[int]]]) -> int:
        """Copy the finished rows' tokens out (cut before the first eos), free their slots: how many."""
        finished = [s for s, h in enumerate(self.held) if h is not None and done[s]]
        if not finished:
            return 0
        idx = torch.tensor(finished, device=self.session.device)
        rows = self.session.out[idx, : max(counts[s] for s in finished)].tolist()
        for s, row in zip(finished, rows, strict=True):
            i, k = self.jobs[self.held[s].job]  # type: ignore[union-attr]
            row = row[: counts[s]]
            cut = next((t for t, tok in enumerate(row) if tok in self.gen.eos_ids), len(row))
            out[i][k] = row[:cut]
            self.produced += counts[s]
            self.release(s)
        self.crowded = False
        return len(finished)

    def refill(self) -> int:
        """Admit waiting jobs into free slots when enough are free (``refill_min``), nothing else decodes
        or the queue fits, unless crowded; the rows decoding after it."""
        free = [s for s, h in enumerate(self.held) if h is None]
        decoding = len(self.held) - len(free)
        ready = len(free) >= self.refill_min or decoding == 0 or len(self.pending) <= len(free)
        if self.pending and free and ready and not (self.crowded and decoding):
            decoding = self.admit(free, decoding)
        return decoding

    def admit(self, free: list[int], decoding: int) -> int:
        """Prefill waiting jobs into ``free`` slots (``decoding`` rows hold the others), packed up to
        ``_PREFILL_TOKENS`` prompt tokens per forward, until the slots, the queue or the pool's room runs
        out; the rows decoding after it."""
        pending = self.pending
        while free and pending:
            group: list[int] = []
            tokens = 0
            while (
                len(group) < len(free)
                and pending
                and (not group or tokens + len(self.prompts[self.jobs[pending[0]][0]]) <= _PREFILL_TOKENS)
            ):
                h = self.place(free[len(group)], pending[0], decoding + len(group))
                if h is None:  # the pool is full: the rest waits for rows to end
                    break
                self.held[free[len(group)]] = h
                group.append(pending.popleft())
                tokens += h.plen
            if not group:
                break
            targets, free[:] = free[: len(group)], free[len(group) :]
            self.session.admit(
                targets,
                [self.held[s].start for s in targets],  # type: ignore[union-attr]
                [self.prompts[self.jobs[j][0]] for j in group],
                [self.limits[j] for j in group],
            )
            self.stats["prefills"] += 1
            decoding += len(group)
        return decoding

    def grow(self, counts: list[int]) -> None:
        """Give every decoding row room for the next ``check_every`` steps: extend its extent in place, or
        move it to a free one twice as large; preempt the cheapest rows where none is free."""
        pool, held, stats = self.pool, self.held, self.stats
        assert pool is not None
        moves: list[tuple[int, int, int, int]] = []
        order = sorted((s for s, h in enumerate(held) if h is not None), key=lambda s: -counts[s])
        for s in order:  # the rows with most tokens first: they keep their room
            h = held[s]
            if h is None:  # preempted for a row before it
                continue
            pos = h.plen + counts[s] - 1  # the rows before it are written
            need = min(self.full(h), pos + self.gen.check_every + 1)
            if need <= h.rows:
                continue
            rows = min(self.full(h), _round_up(max(need, 2 * h.rows), self.chunk))
            if pool.extend(h.start, h.rows, rows):
                h.rows = rows
                stats["extended"] += 1
                continue
            start = pool.alloc(rows)
            if start is None:
                live = {r: (g.start, g.rows, counts[r]) for r, g in enumerate(held) if g is not None}
                for victim in pool.cheapest_window(rows, live, keep=s):
                    # A victim moved earlier in this pass: its copy must not land in its freed extent,
                    # which this row may take (all copies run together, after the pass).
                    moves = [m for m in moves if m[0] != victim]
                    self.pending.appendleft(held[victim].job)  # type: ignore[union-attr]
                    self.release(victim)
                    self.session.done[victim] = True
                    stats["preempted"] += 1
                self.crowded = True
                start = pool.alloc(rows)
                assert start is not None, "a window was freed"
            moves.append((s, h.start, start, pos))
            pool.free(h.start, h.rows)
            h.start, h.rows = start, rows
        self.session.move(moves)
        stats["moved"] += len(moves)

    def tokens_so_far(self) -> int:
        """Tokens of the finished rows and of the rows decoding now (one read of the counts)."""
        now = self.session.count.tolist()
        return self.produced + sum(now[s] for s, h in enumerate(self.held) if h is not None)


class RefillGenerator(DecodeEngine):
    """The ``Generator`` interface of ``rlpipe.eval.generate`` over slot refill (see the module doc).

    ``per_prompt_budgets``: ``generate`` takes a length limit and a sample count per prompt.

    Options: ``DecodeEngine``'s (``max_batch_size`` caps the slots: default 512, on CUDA never more
    than fit in free GPU memory, 64 on CPU), and ``check_every``, the decode steps between host checks
    for finished rows; ``refill_min``: a refill waits until that many slots are free (default 1/16 of
    the slots) unless nothing else is left to decode; ``use_flash`` allows the flash kernels;
    ``fuse_projections`` decodes with q/k/v and gate/up fused into one matmul each
    (``rlpipe.eval.fused``; a copy of those weights, refreshed from the model at every call);
    ``decode_group_swap`` runs the flash decode attention with a kv head's query heads as rows of one
    sequence (keys read once per kv head; CPU-tested against a reference kernel, not yet measured on a
    GPU, hence off by default). ``kv_growth``: each row's cache extent grows as it decodes, in
    ``kv_chunk``-row steps, from a pool of ``kv_pool`` rows (default: 65% of free GPU memory, on CPU
    ``slots * cache_len``, and at least three full-width extents; a pool must hold three of a call's
    widest extents, so that a growing row always finds room once others are preempted). CPU-tested
    against a reference kernel, not yet measured on a GPU, hence off by default.
    Sampling is seeded through the global torch RNG: a fixed ``seed`` gives the same completions for
    the same inputs and slot count. ``last_stats`` describes the last call (slots, decode steps, ...;
    ``drain_s`` / ``drain_tokens``: seconds and tokens until no job waited, the full-width phase whose
    rate a call with many more jobs than slots keeps, the rest being one tail per call).
    """

    per_prompt_budgets = True
    cache_round = 256

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        check_every: int = 8,
        refill_min: int | None = None,
        use_flash: bool = True,
        fuse_projections: bool = True,
        decode_group_swap: bool = False,
        kv_growth: bool = False,
        kv_chunk: int = 64,
        kv_pool: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(model, tokenizer, **options)
        if not (1 <= kv_chunk <= self.cache_round and kv_chunk & (kv_chunk - 1) == 0):  # divides widths
            raise ValueError(f"kv_chunk must be a power of two from 1 to {self.cache_round}, not {kv_chunk}")
        self.check_every, self.refill_min, self.use_flash = max(1, check_every), refill_min, use_flash
        self.fuse_projections, self.decode_group_swap = fuse_projections, decode_group_swap
        self.kv_growth, self.kv_chunk, self.kv_pool = kv_growth, kv_chunk, kv_pool
        self._fused: FusedProjections | None = None
        self._auto_slots: dict[int, int] = {}
        self.last_stats: dict[str, Any] = {}
        _register_attention()

    def _auto_batch(self, cache_len: int) -> int:
        """Slots: ``max_batch_size`` (default 512) or fewer, as many as fit in 65% of free GPU memory
        at ``cache_len`` each (with ``kv_growth``: ``max_batch_size``, default 512, the pool taking the
        memory).

        Decided once per cache width, with this generator's cached session released first (a new width
        means a new session anyway): measured beside it, the free memory would exclude that session's
        cache and give a smaller count. On CPU: ``max_batch_size``, default 64.
        """
        if self.device.type != "cuda":
            return self.max_batch_size or 64
        if self.kv_growth:
            return self.max_batch_size or _MAX_AUTO_SLOTS
        if cache_len not in self._auto_slots:
            self._auto_slots[cache_len] = self._slots_that_fit(cache_len)
        return self._auto_slots[cache_len]

    def _fusion(self) -> FusedProjections | None:
        """The fused projections (built at first use: before the slots are sized, as they take memory)."""
        if self.fuse_projections and self._fused is None:
            self._fused = FusedProjections(self.model)
            log.info(
                "fused q/k/v and gate/up projections in %d layers (%.2f GiB)",
                self._fused.layers,
                self._fused.nbytes / 2**30,
            )
        return self._fused

    def _slots_that_fit(self, cache_len: int) -> int:
        self._release_session()
        self._fusion()
        fits = int(_MEMORY_FRACTION * free_cuda_bytes(self.device) // row_bytes(self.model, cache_len))
        fits = max(1, fits if fits < 16 else fits // 8 * 8)
        cap = self.max_batch_size or _MAX_AUTO_SLOTS
        if fits < cap:
            log.info("refill slots: %d fit in free memory at %d cache rows (cap %d)", fits, cache_len, cap)
        return min(cap, fits)

    def _pool_rows(self, slots: int, cache_len: int) -> int:
        """Cache rows of a new session's pool (its predecessor already released): ``slots * cache_len``;
        with ``kv_growth`` ``kv_pool``, or 65% of free GPU memory after the slots' sampling buffers."""
        if not self.kv_growth:
            return slots * cache_len
        if self.kv_pool is not None:
            return self.kv_pool // self.kv_chunk * self.kv_chunk
        if self.device.type == "cuda":
            per_slot = row_bytes(self.model, 0)  # sampling temporaries
            per_row = row_bytes(self.model, 1) - per_slot
            rows = int((_MEMORY_FRACTION * free_cuda_bytes(self.device) - slots * per_slot) // per_row)
        else:
            rows = slots * cache_len
        return max(rows // self.kv_chunk * self.kv_chunk, 3 * cache_len)

    def _session_for(self, slots: int, cache_len: int, max_new: int, mode: str, compile: bool) -> _Slots:
        s = self._session
        key = (slots, cache_len, max_new, mode, compile)
        if s is None or (s.slots, s.cache_len, s.max_new, s.mode, s.compiled) != key:
            self._release_session()
            pool = self._pool_rows(slots, cache_len)
            s = self._session = _Slots(self, slots, pool, cache_len, max_new, mode, compile)
            log.info(
                "refill session: %d slots, %d cache rows (%s, widest extent %d), %s, compile %s, flash %s",
                slots,
                pool,
                "growing extents" if self.kv_growth else "one extent per slot",
                cache_len,
                mode,
                compile,
                s.flash,
            )
        return s

    def generate(
        self,
        prompts: list[list[int]],
        *,
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int,
        max_new_per_prompt: list[int] | None = None,
        n_per_prompt: list[int] | None = None,
    ) -> list[list[list[int]]]:
        """Per prompt, ``n`` completions as token ids, each cut before its first eos (eos excluded).

        ``max_new_per_prompt`` optionally lowers the limit per prompt and ``n_per_prompt`` sets the
        number of completions per prompt instead of ``n``: prompts of several tasks then share one call,
        so one task's longest completions decode beside the next task's prompts instead of alone
        (``generate_for_suite``; the bench forces each row's length this way). ``max_new_tokens`` stays
        the cap and sizes the widest extent.
        """
        counts = n_per_prompt or [n] * len(prompts)
        if len(counts) != len(prompts) or (max_new_per_prompt and len(max_new_per_prompt) != len(prompts)):
            raise ValueError("n_per_prompt and max_new_per_prompt need one entry per prompt")
        out: list[list[list[int]]] = [[[] for _ in range(c)] for c in counts]
        jobs = [(i, s) for i, c in enumerate(counts) for s in range(c)]
        if not jobs or max_new_tokens <= 0:
            return out
        if any(not p for p in prompts):
            raise ValueError("every prompt needs at least one token")
        caps = max_new_per_prompt or [max_new_tokens] * len(prompts)
        limits = [max(1, min(max_new_tokens, caps[i])) for i, _ in jobs]
        mode = "greedy" if temperature <= 0 else ("top_p" if top_p < 1.0 else "sample")
        cache_len = self.cache_width(max(len(p) for p in prompts), max_new_tokens)
        config = self.model.config
        previous_attn = config._attn_implementation
        config._attn_implementation = _ATTN_NAME
        fused = None
        try:
            with torch.inference_mode():
                fused = self._fusion()
                if fused is not None:
                    fused.enter()
                limit = self._auto_batch(cache_len)
                slots = min(limit, _next_pow2(len(jobs)))
                compile = self.should_compile(math.ceil(sum(limits) / slots))
                session = self._session_for(slots, cache_len, max_new_tokens, mode, compile)
                session.temperature.fill_(max(temperature, 1e-6))
                session.top_p.fill_(top_p)
                # Compile and capture before seeding: the warm-up steps draw random numbers, and the
                # first call of a session must sample what every later call with the seed samples.
                session.ensure_graph()
                torch.manual_seed(seed)
                self._run(session, prompts, jobs, limits, out)
        finally:
            config._attn_implementation = previous_attn
            if fused is not None:
                fused.exit()
        return out

    def _run(
        self,
        session: _Slots,
        prompts: list[list[int]],
        jobs: list[tuple[int, int]],
        limits: list[int],
        out: list[list[list[int]]],
    ) -> None:
        """Decode every job: refill freed slots, grow extents, compact the tail (``_Schedule``)."""
        session.reset()
        schedule = _Schedule(self, session, prompts, jobs, limits)
        progress = Progress(log, "refill generate", len(jobs))
        t0 = time.perf_counter()
        schedule.admit(list(range(session.slots)), 0)
        while True:
            done, counts = torch.stack((session.done.long(), session.count)).tolist()
            progress.update(schedule.collect(done, counts, out))
            if schedule.pool is not None:
                schedule.grow(counts)
            decoding = schedule.refill()
            stats = schedule.stats
            if not schedule.pending and "drain_s" not in stats:  # the queue is empty: the tail from here
                stats["drain_s"] = time.perf_counter() - t0
                stats["drain_tokens"] = schedule.tokens_so_far()
            if decoding == 0:
                if not schedule.pending:
                    break
                raise RuntimeError(f"no row fits the KV pool of {session.pool} rows")  # cannot happen
            if not schedule.pending and _tail_width(decoding) <= _TAIL_SHRINK * session.slots:
                session, schedule.held = self._compact(session, schedule.held)
                schedule.session = session
                stats["tail_slots"].append(session.slots)
            session.decode(self.check_every)
            stats["decode_steps"] += self.check_every
            stats["slot_steps"] += self.check_every * session.slots
        schedule.stats.update(seconds=time.perf_counter() - t0, tokens=schedule.produced)
        self.last_stats = schedule.stats

    def _compact(self, session: _Slots, held: list[_Held | None]) -> tuple[_Slots, list[_Held | None]]:
        """The tail: continue the rows still decoding in a narrower session's front slots.

        Once no prompt waits, a few long rows would otherwise keep every slot's sampling, bookkeeping
        and batch width busy until the longest ends. The narrower session decodes over the same pool
        (its slots point at the rows' extents: nothing is copied but the slots' state, so it can shrink
        again and again); it is captured without ``torch.compile`` (a recompile per width would cost
        more than the tail) and dropped after the call; the full-width session stays cached for the
        next call.
        """
        moved = [s for s, h in enumerate(held) if h is not None]
        width = _tail_width(len(moved))
        small = _Slots(
            self, width, session.pool, session.cache_len, session.max_new, session.mode, False, share=session
        )
        small.take_over(session, moved)
        log.info("refill tail: %d rows left, %d -> %d slots", len(moved), session.slots, width)
        return small, [held[s] for s in moved] + [None] * (width - len(moved))


def _tail_width(rows: int) -> int:
    """The width of the session a tail of ``rows`` decoding rows is compacted into."""
    return _TAIL_MIN_SLOTS if rows <= _TAIL_MIN_SLOTS else _round_up(rows, _TAIL_ROUND)
