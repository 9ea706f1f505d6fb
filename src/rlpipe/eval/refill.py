"""A slot-refill generation engine: rows that finish hand their slot to the next prompt at once.

Why (issue 14): ``FastHFGenerator`` decodes static batches, so on real, long-tailed completion lengths
(median ~600 tokens, tail to 8k) every batch runs until its longest row ends while the slots of the rows
that finished early decode nothing; and its attention reads the whole static cache (prompt + 8k slots
per row) every step. This engine keeps the model's own forward and the same sampler, and changes the
schedule and the cache:

* **Per-slot KV cache.** One buffer per layer of ``[slots * cache_len, kv_heads, head_dim]``: slot ``s``
  owns rows ``s * cache_len ... s * cache_len + cache_len - 1`` and holds one sequence from position 0
  (no padding). Each slot carries its own position (``pos``: where its current input token is written),
  generated count, length limit and done flag, all device tensors.
* **Attention reads only what each slot holds.** On CUDA in bf16/fp16, decode attention is
  FlashAttention-2's variable-length kernel (``aten._flash_attention_forward``) with ``seqused_k`` =
  each slot's length, so a step reads each slot's real keys and values, not the cache's full width;
  grouped-query heads are handled by the kernel. Elsewhere (CPU, fp32) it is a masked grouped matmul
  over the slot's buffer.
* **Refill.** Every ``check_every`` decode steps the host reads the done flags (one small sync), copies
  the finished rows' tokens out and, when enough slots are free, prefills the next prompts into them:
  one packed forward of all admitted prompts (no padding; block-diagonal causal attention, flash varlen
  on CUDA), each prompt's keys written straight into its slot, the first token sampled from each
  prompt's last position. The other slots keep their state and resume decoding after it.
* **One CUDA graph per step.** Slot count and cache width are fixed for a call, and positions, lengths
  and cache write indices are tensors, so the decode step (forward, sampling, bookkeeping) is captured
  once and replayed, optionally through ``torch.compile`` first, as in ``FastHFGenerator``.
* **The tail is compacted.** Once no prompt waits, whenever the rows still decoding fit in three
  quarters of the slots (rounded up to a multiple of 8), they move (cache and state) to the front of the
  same cache buffers and decode in a narrower session over those views, so a few long completions do not
  keep the full batch width busy until the longest ends (no new cache memory: compacting can repeat every
  time the tail shrinks by a quarter). Finished slots attend to one key, not their context.
* **Slots from free memory.** Unless given, the slot count is what fits in 65% of free GPU memory at
  ``cache_len`` per slot (at most 512), and never more than there are jobs (rounded up to a power of two).

Not done: a paged cache (a slot still reserves ``cache_len`` = longest prompt + ``max_new_tokens``, which
caps the slot count at 7B / 8k) and chunked prefill (a prompt is prefilled in one piece).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Any

import torch

from rlpipe.eval.fast_generate import DecodeEngine, _sample, free_cuda_bytes, row_bytes
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


def flash_available(device: torch.device, dtype: torch.dtype, head_dim: int) -> bool:
    """Whether the varlen flash kernel with ``seqused_k`` runs here (CUDA, bf16/fp16), checked by a call."""
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
        cu_k = cu_q * 16
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
    """Per-slot cache and state for one (slots, cache_len, max_new, mode, compile), and its step graph."""

    def __init__(
        self,
        gen: RefillGenerator,
        slots: int,
        cache_len: int,
        max_new: int,
        mode: str,
        compile: bool,
        share: _Slots | None = None,
    ) -> None:
        """``share``: use the front ``slots`` slots of that session's cache buffers (tail compaction)."""
        model, device = gen.model, gen.device
        cfg = model.config.get_text_config(decoder=True)
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        self.heads = cfg.num_attention_heads
        dtype = next(model.parameters()).dtype
        self.gen, self.slots, self.cache_len, self.max_new, self.mode = gen, slots, cache_len, max_new, mode
        self.device, self.compiled = device, compile
        self.flash = gen.use_flash and flash_available(device, dtype, self.head_dim)
        # One tensor per layer, not views of one: torch.compile mutates a graph input in place, but a
        # write into a view of one would be functionalised into a copy of the whole base every step.
        shape = (slots * cache_len, self.kv_heads, self.head_dim)
        if share is not None:  # views of the front slots (uncompiled, so a view is written in place)
            assert not compile and share.cache_len == cache_len and share.slots >= slots
            self.k = [t[: shape[0]] for t in share.k]
            self.v = [t[: shape[0]] for t in share.v]
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
        self.base = torch.arange(slots, **long) * cache_len
        self.write = torch.zeros(slots, **long)
        self.used = torch.ones(slots, dtype=torch.int32, device=device)
        bounds = torch.arange(slots + 1, dtype=torch.int32, device=device)
        self.cu_k = bounds * cache_len
        # Query rows per slot in a flash decode call: 1, or the query heads of a kv head (group swap).
        self.group = self.heads // self.kv_heads if gen.decode_group_swap else 1
        self.cu_group = bounds * self.group
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
        keys = kc.view(s, self.cache_len, self.kv_heads, d).permute(0, 2, 3, 1)  # [s, kv, d, L]
        values = vc.view(s, self.cache_len, self.kv_heads, d).transpose(1, 2)  # [s, kv, L, d]
        scores = torch.matmul(grouped, keys).float() * scale  # [s, kv, group, L]
        visible = (self.cols[None, :] <= self.pos[:, None])[:, None, None, :]
        probs = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1).to(values.dtype)
        return torch.matmul(probs, values).reshape(s, 1, self.heads, d)

    # --- decode step: device work only, graph-capturable ---

    def _forward(self) -> torch.Tensor:
        torch.add(self.base, self.pos, out=self.write)
        # A finished slot attends to one key only: its stale context would cost reads for nothing.
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
        return [self.tok, self.pos, self.count, self.limit, self.done, self.out, self.write, self.used]

    def capture(self) -> None:
        """Warm up (compiles) and capture the step on a side stream, leaving all state as it was.

        The warm-up steps also write keys/values at the positions after each slot's current one; those
        rows are not attended to before the real steps overwrite them.
        """
        saved = [t.clone() for t in self._state()]
        rng = torch.cuda.get_rng_state(self.device)
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            try:
                for _ in range(3):
                    self._step()
            except Exception as exc:  # a compiler bug must cost speed, not the evaluation
                log.warning("torch.compile failed (%s: %s); decoding eagerly", type(exc).__name__, exc)
                self.forward_fn, self.sample_fn = self._forward, self._sample_next
                for dst, src in zip(self._state(), saved, strict=True):
                    dst.copy_(src)
                for _ in range(3):
                    self._step()
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
        """Copy slots ``moved`` of ``other`` (cache and state) into this session's slots 0..len-1.

        The two may share cache buffers (this one's are views of the other's front slots): each layer's
        moved rows are gathered into a temporary first, so a target slot is never overwritten before it
        has been read.
        """
        n = len(moved)
        src = torch.tensor(moved, dtype=torch.long, device=self.device)
        view = (-1, self.cache_len, self.kv_heads, self.head_dim)
        for mine, theirs in zip((*self.k, *self.v), (*other.k, *other.v), strict=True):
            rows = theirs.view(view).index_select(0, src)
            mine.view(view)[:n] = rows
            del rows
        for name in ("tok", "pos", "count", "limit", "done", "out"):
            getattr(self, name)[:n] = getattr(other, name).index_select(0, src)
        self.temperature.copy_(other.temperature)
        self.top_p.copy_(other.top_p)

    # --- prefill: eager, packed ---

    def admit(self, slots: list[int], prompts: list[list[int]], limits: list[int]) -> None:
        """Prefill ``prompts`` into ``slots`` (one packed forward) and sample each one's first token."""
        lens = [len(p) for p in prompts]
        dev, long = self.device, torch.long
        ids = torch.tensor([t for p in prompts for t in p], dtype=long)
        positions = torch.cat([torch.arange(n, dtype=long) for n in lens])
        write = torch.cat(
            [torch.arange(n, dtype=long) + s * self.cache_len for s, n in zip(slots, lens, strict=True)]
        )
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
        self.tok[idx] = first
        self.pos[idx] = torch.tensor(lens, dtype=long, device=dev)
        self.count[idx] = 1
        self.limit[idx] = lim
        self.out[idx, 0] = first
        self.done[idx] = torch.isin(first, self.eos) | (lim <= 1)


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
    GPU, hence off by default).
    Sampling is seeded through the global torch RNG: a fixed ``seed`` gives the same completions for
    the same inputs and slot count. ``last_stats`` describes the last call (slots, decode steps, ...).
    """

    per_prompt_budgets = True

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
        **options: Any,
    ) -> None:
        super().__init__(model, tokenizer, **options)
        self.check_every, self.refill_min, self.use_flash = max(1, check_every), refill_min, use_flash
        self.fuse_projections, self.decode_group_swap = fuse_projections, decode_group_swap
        self._fused: FusedProjections | None = None
        self._session: _Slots | None = None
        self._auto_slots: dict[int, int] = {}
        self.last_stats: dict[str, Any] = {}
        _register_attention()

    def _auto_batch(self, cache_len: int) -> int:
        """Slots: ``max_batch_size`` (default 512) or fewer, as many as fit in 65% of free GPU memory.

        Decided once per cache width, with this generator's cached session released first (a new width
        means a new session anyway): measured beside it, the free memory would exclude that session's
        cache and give a smaller count. On CPU: ``max_batch_size``, default 64.
        """
        if self.device.type != "cuda":
            return self.max_batch_size or 64
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

    def _session_for(self, slots: int, cache_len: int, max_new: int, mode: str, compile: bool) -> _Slots:
        s = self._session
        key = (slots, cache_len, max_new, mode, compile)
        if s is None or (s.slots, s.cache_len, s.max_new, s.mode, s.compiled) != key:
            self._release_session()
            s = self._session = _Slots(self, slots, cache_len, max_new, mode, compile)
            log.info(
                "refill session: %d slots x %d cache rows, %s, compile %s, flash %s",
                slots,
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
        the cap and sizes the cache.
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
        cache_len = _round_up(max(len(p) for p in prompts) + max_new_tokens, 256)
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
        session.reset()
        owner = [-1] * session.slots  # job index held by each slot
        pending = deque(range(len(jobs)))
        refill_min = self.refill_min or max(1, session.slots // 16)
        stats: dict[str, Any] = dict(
            slots=session.slots,
            cache_len=session.cache_len,
            decode_steps=0,
            slot_steps=0,
            prefills=0,
            flash=session.flash,
            tail_slots=[],
        )

        def admit(free: list[int]) -> None:
            while free and pending:
                group: list[int] = []
                tokens = 0
                while (
                    len(group) < len(free)
                    and pending
                    and (not group or tokens + len(prompts[jobs[pending[0]][0]]) <= _PREFILL_TOKENS)
                ):
                    j = pending.popleft()
                    group.append(j)
                    tokens += len(prompts[jobs[j][0]])
                targets = [free.pop(0) for _ in group]
                for s, j in zip(targets, group, strict=True):
                    owner[s] = j
                session.admit(targets, [prompts[jobs[j][0]] for j in group], [limits[j] for j in group])
                stats["prefills"] += 1

        progress = Progress(log, "refill generate", len(jobs))
        admit(list(range(session.slots)))
        while True:
            done = session.done.tolist()
            finished = [s for s, o in enumerate(owner) if done[s] and o >= 0]
            if finished:
                idx = torch.tensor(finished, device=session.device)
                counts = session.count[idx].tolist()
                rows = session.out[idx, : max(counts)].tolist()
                for s, c, row in zip(finished, counts, rows, strict=True):
                    i, k = jobs[owner[s]]
                    row = row[:c]
                    cut = next((t for t, tok in enumerate(row) if tok in self.eos_ids), len(row))
                    out[i][k] = row[:cut]
                    owner[s] = -1
                progress.update(len(finished))
            free = [s for s, o in enumerate(owner) if o < 0]
            active = session.slots - len(free)
            if pending and free and (len(free) >= refill_min or active == 0 or len(pending) <= len(free)):
                admit(free)
                active = sum(o >= 0 for o in owner)
            if active == 0 and not pending:
                break
            if not pending and _tail_width(active) <= _TAIL_SHRINK * session.slots:
                narrower, owner = self._compact(session, owner)
                if narrower is not session:
                    session = narrower
                    stats["tail_slots"].append(session.slots)
            session.decode(self.check_every)
            stats["decode_steps"] += self.check_every
            stats["slot_steps"] += self.check_every * session.slots
        self.last_stats = stats

    def _compact(self, session: _Slots, owner: list[int]) -> tuple[_Slots, list[int]]:
        """The tail: move the rows still decoding to the front slots and decode them in a narrower session.

        Once no prompt waits, a few long rows would otherwise keep every slot's sampling, bookkeeping
        and batch width busy until the longest ends. The narrower session works on views of the same
        cache buffers (no new cache memory, so it can shrink again and again); it is captured without
        ``torch.compile`` (a recompile per width would cost more than the tail) and dropped after the
        call; the full-width session stays cached for the next call.
        """
        moved = [s for s, o in enumerate(owner) if o >= 0]
        width = _tail_width(len(moved))
        if self.device.type == "cuda":  # the gather of one layer's moved rows needs a temporary
            need = session.k[0].nbytes * len(moved) // session.slots
            if need > 0.9 * free_cuda_bytes(self.device):
                return session, owner
        small = _Slots(self, width, session.cache_len, session.max_new, session.mode, False, share=session)
        small.take_over(session, moved)
        log.info("refill tail: %d rows left, %d -> %d slots", len(moved), session.slots, width)
        return small, [owner[s] for s in moved] + [-1] * (width - len(moved))


def _tail_width(rows: int) -> int:
    """The width of the session a tail of ``rows`` decoding rows is compacted into."""
    return _TAIL_MIN_SLOTS if rows <= _TAIL_MIN_SLOTS else _round_up(rows, _TAIL_ROUND)


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def _next_pow2(x: int) -> int:
    return 1 << max(0, (x - 1).bit_length())
