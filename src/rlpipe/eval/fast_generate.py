"""A faster ``hf`` generation backend: own decode loop over a static KV cache, one CUDA graph per step.

Why not ``model.generate``: at evaluation batch sizes a decode step of a 0.5B-7B model reads a few GB
and should take about a millisecond on an H100/H200, but stock ``generate`` spends most of each step
launching hundreds of small kernels from Python, growing a dynamic cache by concatenation, repeating
the grouped KV heads for every query head, and running its logits-processor chain. This module keeps
the model's own forward (so any Qwen2/Llama-style checkpoint, LoRA-merged or not, works unchanged) and
removes that overhead:

* **Static cache.** A ``transformers.StaticCache`` of fixed ``[batch, kv_heads, cache_len, head_dim]``
  buffers, reused across batches of the same shape; left-padded rows are masked out by our own
  boolean mask, and position ids restart at 0 for every row, so each row sees exactly what an unpadded
  ``generate`` would.
* **One graph per decode step.** Forward, sampling (temperature / exact top-p through sort and an
  exponential race) and the bookkeeping (eos flags, output column, positions) are one function with no
  host synchronisation; on CUDA it is optionally compiled with ``torch.compile`` (fusing the
  elementwise work) and then captured once in a ``torch.cuda.CUDAGraph`` and replayed per token.
* **GQA without repeated KV.** During decode, attention runs on the key/value heads directly (query
  heads grouped per KV head) instead of materialising the KV cache once per query head.
* **Length bucketing, batch sizing, early exit.** Jobs (prompt, sample) are sorted by prompt length and
  cut into batches; the batch size is derived from free GPU memory unless given; the host checks every
  few steps whether all rows have hit eos and stops early.

On CPU (tests, laptops) the same loop runs eagerly; no compile and no graphs.
"""

from __future__ import annotations

import gc
import logging
import math
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger(__name__)

_ATTN_NAME = "rlpipe_static_gqa"
_CHECK_EVERY = 16  # decode steps between host checks for "every row finished" (each check syncs)
_PREFILL_TOKENS = 16384  # tokens per prefill forward; bounds activation and mask memory for long prompts
_MAX_AUTO_BATCH = 512
# ``compile=None`` compiles only a workload that repays it: torch.compile plus graph capture costs
# 20-40 s per shape (bench/README.md), and saves 1-2 ms per decode step at 0.5B-7B over the
# compile-free CUDA graph; so below ~20k decode steps (all calls of a job together) it loses.
COMPILE_MIN_DECODE_STEPS = 20_000
TOP_P_METHODS = ("search", "sort", "topk")


def _decode_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention for one query token per row that reads each KV head once (no ``repeat_kv``).

    ``attention_mask`` is a boolean ``[batch, 1, 1, cache_len]`` (True = attend). Prefill (more than one
    query token) is delegated to transformers' SDPA path, which is efficient there.
    """
    if query.shape[2] != 1:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    batch, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    scale = scaling if scaling is not None else dim**-0.5
    grouped = query.reshape(batch, kv_heads, heads // kv_heads, dim)
    scores = torch.matmul(grouped, key.transpose(-1, -2)).float() * scale  # [b, kv_heads, group, cache_len]
    if attention_mask is not None:
        scores = scores.masked_fill(~attention_mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1).to(value.dtype)
    out = torch.matmul(probs, value)  # [b, kv_heads, group, dim]; head h uses KV head h // group
    return out.reshape(batch, 1, heads, dim), None


def _register_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(_ATTN_NAME, _decode_attention)


def _top_p_keep(probs: torch.Tensor, top_p: torch.Tensor, rounds: int = 6, ways: int = 16) -> torch.Tensor:
    """Nucleus membership without sorting: search the probability threshold instead.

    The nucleus is every token with ``p >= tau``, for the largest ``tau`` whose kept mass
    ``sum(p[p >= tau])`` still reaches ``top_p`` (the sorted-prefix definition, ties aside). Each round
    tries ``ways - 1`` thresholds in one pass over the vocabulary and narrows the bracket by ``ways``, so
    after ``rounds`` the threshold is known to ``max(p) / ways**rounds`` (6e-8 of it by default); tokens
    inside that last bracket are kept. Why: a segmented sort of a 150k vocabulary for 128 rows costs
    about 2 ms per step on an H100/H200 and trips Inductor's scan lowering; these few fused reductions
    compile and cost a fraction of it.
    """
    lo = torch.zeros_like(probs[:, :1])
    hi = probs.amax(dim=-1, keepdim=True) * 1.000001 + 1e-30  # kept mass above hi is 0 < top_p
    frac = torch.arange(1, ways, device=probs.device, dtype=probs.dtype) / ways
    for _ in range(rounds):
        taus = lo + (hi - lo) * frac  # [batch, ways - 1], ascending
        # One sum per threshold, not one broadcast [batch, vocab, ways - 1] reduction: Inductor fuses
        # sibling reductions over the same row into one kernel that reads the row once, whereas the
        # broadcast form re-read it once per threshold (measured: 240 us per round for 128 x 152k).
        mass = torch.stack(
            [(probs * (probs >= taus[:, k : k + 1])).sum(dim=-1) for k in range(ways - 1)], dim=-1
        )
        reached = (mass >= top_p).sum(dim=-1, keepdim=True)  # mass falls with tau: a prefix reaches
        bounds = torch.cat([lo, taus, hi], dim=-1)
        lo, hi = bounds.gather(-1, reached), bounds.gather(-1, reached + 1)
    return probs >= lo


def _sample(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_p: torch.Tensor,
    mode: str,
    method: str = "sort",
    top_k: int = 1024,
) -> torch.Tensor:
    """Next token per row from fp32 ``logits`` ``[batch, vocab]`` without any host synchronisation.

    Sampling uses the exponential race (argmax of p / E, E ~ Exp(1)), which draws exactly from the
    (truncated, unnormalised) distribution and, unlike ``multinomial``, is graph-capturable. Top-p keeps
    the smallest prefix of the sorted distribution whose mass reaches ``top_p`` (the first token always),
    found by a sort (``method="sort"``) or by a threshold search (``"search"``, see ``_top_p_keep``), or
    among the ``top_k`` most likely tokens only (``"topk"``: their probabilities under the full softmax,
    so the nucleus is exact whenever it has at most ``top_k`` tokens, and cut at ``top_k`` otherwise;
    a top-k selection and a ``top_k``-wide cumsum instead of vocabulary-wide passes).
    """
    if mode == "greedy":
        return logits.argmax(dim=-1)
    scaled = logits / temperature
    if mode == "top_p" and method == "topk":
        k = min(top_k, scaled.shape[-1])
        values, order = scaled.topk(k, dim=-1)  # sorted, largest first
        probs = (values - torch.logsumexp(scaled, dim=-1, keepdim=True)).exp()
        before = probs.cumsum(dim=-1) - probs
        probs = probs.masked_fill(before > top_p, 0.0)
        noise = torch.empty_like(probs).exponential_().clamp_min_(1e-20)
        choice = (probs / noise).argmax(dim=-1, keepdim=True)
        return order.gather(-1, choice).squeeze(-1)
    if mode == "top_p" and method == "sort":
        sorted_logits, order = scaled.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs
        probs = probs.masked_fill(before > top_p, 0.0)
        noise = torch.empty_like(probs).exponential_().clamp_min_(1e-20)
        choice = (probs / noise).argmax(dim=-1, keepdim=True)
        return order.gather(-1, choice).squeeze(-1)
    probs = scaled.softmax(dim=-1)
    if mode == "top_p":
        probs = probs * _top_p_keep(probs, top_p)
    noise = torch.empty_like(probs).exponential_().clamp_min_(1e-20)
    return (probs / noise).argmax(dim=-1)


class _Session:
    """Static buffers, cache and (on CUDA) the captured decode graph for one (batch, cache_len, mode)."""

    def __init__(
        self,
        gen: FastHFGenerator,
        batch: int,
        cache_len: int,
        max_new: int,
        mode: str,
        device: torch.device,
        compile: bool,
    ) -> None:
        from transformers import StaticCache

        self.gen, self.batch, self.cache_len, self.mode, self.device = gen, batch, cache_len, mode, device
        self.compiled = compile
        self.cache = StaticCache(config=gen.model.config, max_cache_len=cache_len)
        long = dict(dtype=torch.long, device=device)
        self.tok = torch.zeros(batch, 1, **long)
        self.pos = torch.zeros(batch, 1, **long)
        self.slot = torch.zeros(1, **long)  # cache slot the current input token is written to
        self.step = torch.zeros(1, **long)  # output column of the token sampled this step
        self.out = torch.zeros(batch, max_new, **long)
        self.valid = torch.zeros(batch, cache_len, dtype=torch.bool, device=device)
        self.done = torch.zeros(batch, dtype=torch.bool, device=device)
        self.eos = torch.tensor(sorted(gen.eos_ids) or [-1], **long)
        self.temperature = torch.ones(1, dtype=torch.float32, device=device)
        self.top_p = torch.ones(1, dtype=torch.float32, device=device)
        self.layer_types = sorted(set(getattr(gen.model.config, "layer_types", None) or ["full_attention"]))
        self.graph: torch.cuda.CUDAGraph | None = None
        # Compiled separately: the forward (fuses the many small elementwise kernels that otherwise
        # dominate a graph-replayed step) and, unless it sorts, the sampler. The sort/cumsum sampler
        # stays eager (Inductor's scan lowering fails on a 150k-wide cumsum in torch 2.11); inside the
        # CUDA graph eager kernels cost no launch overhead anyway.
        self.forward_fn: Callable[[], torch.Tensor] = self._forward
        self.sample_fn: Callable[[torch.Tensor], torch.Tensor] = self._sample_next
        if compile:
            self.forward_fn = torch.compile(self._forward, dynamic=False)
            if not (mode == "top_p" and gen.top_p_method == "sort"):
                self.sample_fn = torch.compile(self._sample_next, dynamic=False)

    def _masks(self, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict.fromkeys(self.layer_types, mask)

    def _forward(self) -> torch.Tensor:
        """Logits of the current input tokens, after marking their cache slot as attendable."""
        self.valid.index_fill_(1, self.slot, True)
        logits = self.gen.model(
            input_ids=self.tok,
            position_ids=self.pos,
            attention_mask=self._masks(self.valid[:, None, None, :]),
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1, :]
        return logits.float()

    def _sample_next(self, logits: torch.Tensor) -> torch.Tensor:
        """Sample, then record the token: finished rows repeat eos, outputs and positions advance."""
        nxt = _sample(logits, self.temperature, self.top_p, self.mode, self.gen.top_p_method, self.gen.top_k)
        nxt = torch.where(self.done, self.eos[0].clamp_min(0), nxt)
        self.out.index_copy_(1, self.step, nxt[:, None])
        self.done |= torch.isin(nxt, self.eos)
        self.tok.copy_(nxt[:, None])
        self.pos.add_(1)
        self.slot.add_(1)
        self.step.add_(1)
        return nxt

    def _step(self) -> None:
        """One decode step, written entirely as device work so that it can be captured in a graph."""
        self.sample_fn(self.forward_fn())

    def prefill(self, ids: torch.Tensor, real: torch.Tensor, width: int) -> None:
        """Fill the cache with the left-padded prompts ``ids`` and sample the first new token."""
        self.cache.reset()
        self.valid.zero_()
        self.valid[:, :width] = real
        self.done.zero_()
        self.out.zero_()
        positions = (real.long().cumsum(-1) - 1).clamp_min(0)
        chunk = max(1, _PREFILL_TOKENS // self.batch)
        slots = torch.arange(self.cache_len, device=self.device)
        logits = None
        for start in range(0, width, chunk):
            stop = min(width, start + chunk)
            q = slots[start:stop, None]
            # Causal over the cache, only real keys; a padding query also sees itself so that no
            # softmax row is empty (an all-masked row would give NaN and poison the cache).
            mask = (slots[None, :] <= q) & (self.valid[:, None, :] | (slots[None, :] == q))
            logits = self.gen.model(
                input_ids=ids[:, start:stop],
                position_ids=positions[:, start:stop],
                attention_mask=self._masks(mask[:, None]),
                past_key_values=self.cache,
                use_cache=True,
                logits_to_keep=1,
            ).logits[:, -1, :]
        assert logits is not None
        first = _sample(
            logits.float(), self.temperature, self.top_p, self.mode, self.gen.top_p_method, self.gen.top_k
        )
        self.out[:, 0] = first
        self.done.copy_(torch.isin(first, self.eos))
        self.tok.copy_(first[:, None])
        self.pos.copy_(positions[:, -1:] + 1)
        self.slot.fill_(width)
        self.step.fill_(1)

    def _state(self) -> list[torch.Tensor]:
        lengths = [layer.cumulative_length for layer in self.cache.layers]
        return [self.tok, self.pos, self.slot, self.step, self.out, self.valid, self.done, *lengths]

    def capture(self) -> None:
        """Warm up (compiles) and capture the step on a side stream, leaving all state as it was."""
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

    def decode(self, steps: int) -> int:
        """Run up to ``steps`` decode steps; returns how many output columns hold tokens."""
        use_graph = self.gen.cuda_graphs and self.device.type == "cuda"
        if use_graph and self.graph is None:
            self.capture()
        done_steps = 1
        for i in range(steps):
            if i % _CHECK_EVERY == 0 and bool(self.done.all()):
                break
            if self.graph is not None:
                self.graph.replay()
            else:
                self._step()
            done_steps += 1
        return done_steps


def eos_ids_of(tokenizer: Any, eos_token_ids: list[int] | None) -> set[int]:
    """The ids that end a completion: ``eos_token_ids`` if given, else the tokenizer's eos id(s)."""
    eos = getattr(tokenizer, "eos_token_id", None) if eos_token_ids is None else list(eos_token_ids)
    return set() if eos is None else ({eos} if isinstance(eos, int) else set(eos))


def row_bytes(model: Any, cache_len: int) -> int:
    """GPU bytes one decoding row needs: its KV cache of ``cache_len`` positions plus vocab-sized
    sampling temporaries (fp32 logits, probabilities, noise, ...: about 40 bytes per vocabulary entry)."""
    cfg = model.config.get_text_config(decoder=True)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    elem = next(model.parameters()).element_size()
    return cfg.num_hidden_layers * 2 * kv_heads * head_dim * elem * cache_len + cfg.vocab_size * 40


def free_cuda_bytes(device: torch.device) -> int:
    """Bytes a new allocation can take: the driver's free memory plus what PyTorch's allocator holds unused.

    A session just dropped can still sit in a reference cycle (its compiled step is a bound method of
    it): whoever drops one collects it (``gc.collect``, ~0.1-0.4 s, so not here: the tail compaction asks
    this at every compaction).
    """
    free, _ = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


def plan_compile(compile: bool | None, decode_steps: int, expected_calls: int) -> bool:
    """``compile`` when set; otherwise compile when the planned decode steps repay compilation."""
    if compile is not None:
        return compile
    return decode_steps * expected_calls >= COMPILE_MIN_DECODE_STEPS


class DecodeEngine:
    """What rlpipe's two decode engines (``FastHFGenerator``, ``RefillGenerator``) share: the model and
    tokenizer, the device, the options below, the eos ids and when to compile.

    ``max_batch_size`` caps the rows decoded together; ``compile`` runs the decode step through
    ``torch.compile`` (CUDA only; ``None`` compiles when the planned decode steps of a call, times
    ``expected_calls`` of that size, reach ``COMPILE_MIN_DECODE_STEPS``); ``cuda_graphs`` (default: on
    for CUDA) captures and replays it; ``top_p_method`` / ``top_k`` pick the nucleus sampler;
    ``eos_token_ids`` overrides the tokenizer's eos id (trainers stop on the generation config's ids).
    """

    cache_round = 128  # cache widths are multiples of this: few widths, few sessions and graphs

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch_size: int | None = None,
        compile: bool | None = None,
        cuda_graphs: bool | None = None,
        top_p_method: str = "search",
        top_k: int = 1024,
        eos_token_ids: list[int] | None = None,
        expected_calls: int = 1,
    ) -> None:
        if top_p_method not in TOP_P_METHODS:
            raise ValueError(f"top_p_method must be one of {TOP_P_METHODS}, not {top_p_method!r}")
        self.model, self.tokenizer = model, tokenizer
        self.top_p_method, self.top_k = top_p_method, top_k
        self.device = next(model.parameters()).device
        self.max_batch_size = max_batch_size
        self.compile = compile if self.device.type == "cuda" else False
        self.expected_calls = max(1, expected_calls)
        self.cuda_graphs = self.device.type == "cuda" if cuda_graphs is None else cuda_graphs
        self.eos_ids = eos_ids_of(tokenizer, eos_token_ids)
        self._session: Any = None  # the engine's cached decode session (cache and step graph)

    def cache_width(self, longest_prompt: int, max_new: int) -> int:
        """The cache rows a call (or batch) with this longest prompt and token budget decodes in; what
        a caller that sizes batches ahead (``TrainingRollout``) must size them for."""
        return _round_up(longest_prompt + max_new, self.cache_round)

    def should_compile(self, decode_steps: int) -> bool:
        """Compile a call that plans ``decode_steps`` steps (see ``compile``)?"""
        return plan_compile(self.compile, decode_steps, self.expected_calls)

    def _release_session(self) -> None:
        """Drop the cached session (cache, graph) and give its memory back before another is sized or built.

        Its compiled step is a bound method of it, so it sits in a reference cycle: collected here.
        """
        if self._session is not None:
            self._session = None
            if self.device.type == "cuda":
                gc.collect()
                torch.cuda.empty_cache()


class FastHFGenerator(DecodeEngine):
    """The ``Generator`` interface of ``rlpipe.eval.generate``: static cache, graph-replayed decode loop.

    Options: ``DecodeEngine``'s. ``max_batch_size`` defaults to as many rows as fit in free GPU memory
    (at most 512; 64 on CPU). With ``compile=None`` a short evaluation or a short training run's
    rollouts decode eagerly in the graph rather than pay 20-40 s of compilation. ``top_p_method``:
    ``"search"`` (sort-free threshold search, default), ``"sort"`` (exact sort) or ``"topk"`` (among the
    ``top_k`` most likely tokens, exact when the nucleus fits in them). Sampling is seeded through the
    global torch RNG, as ``HFGenerator`` is, so a fixed ``seed`` gives the same completions for the same
    inputs and batch size.
    """

    def __init__(self, model: Any, tokenizer: Any, **options: Any) -> None:
        super().__init__(model, tokenizer, **options)
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = pad if pad is not None else (min(self.eos_ids) if self.eos_ids else 0)
        _register_attention()

    def _auto_batch(self, cache_len: int) -> int:
        """Rows that fit: KV cache plus vocab-sized sampling temporaries per row, in 60% of free memory."""
        if self.max_batch_size is not None:
            return self.max_batch_size
        if self.device.type != "cuda":
            return 64
        fits = int(0.6 * free_cuda_bytes(self.device) // row_bytes(self.model, cache_len))
        return max(1, min(_MAX_AUTO_BATCH, 2 ** int(math.log2(max(1, fits)))))

    def _session_for(self, batch: int, cache_len: int, max_new: int, mode: str, compile: bool) -> _Session:
        s = self._session
        key = (batch, cache_len, max_new, mode, compile)
        if s is None or (s.batch, s.cache_len, s.out.shape[1], s.mode, s.compiled) != key:
            self._release_session()
            s = self._session = _Session(self, batch, cache_len, max_new, mode, self.device, compile)
            log.debug("decode session: batch %d, cache %d, %s, compile %s", batch, cache_len, mode, compile)
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
    ) -> list[list[list[int]]]:
        """Per prompt, ``n`` completions as token ids, each cut before its first eos (eos excluded)."""
        out: list[list[list[int]]] = [[[] for _ in range(n)] for _ in prompts]
        jobs = sorted(
            ((i, s) for i in range(len(prompts)) for s in range(n)), key=lambda j: len(prompts[j[0]])
        )
        if not jobs or max_new_tokens <= 0:
            return out
        if any(not prompts[i] for i, _ in jobs):
            raise ValueError("every prompt needs at least one token")
        mode = "greedy" if temperature <= 0 else ("top_p" if top_p < 1.0 else "sample")
        config = self.model.config
        previous_attn = config._attn_implementation
        config._attn_implementation = _ATTN_NAME
        torch.manual_seed(seed)
        try:
            with torch.inference_mode():
                # Size the batch for the longest prompt overall (jobs are sorted): conservative, and
                # keeps one batch size, hence few graph shapes, for the whole call.
                limit = self._auto_batch(self.cache_width(len(prompts[jobs[-1][0]]), max_new_tokens))
                compile = self.should_compile(math.ceil(len(jobs) / limit) * max_new_tokens)
                start = 0
                while start < len(jobs):
                    batch_jobs = jobs[start : start + limit]
                    longest = max(len(prompts[i]) for i, _ in batch_jobs)
                    cache_len = self.cache_width(longest, max_new_tokens)
                    # A short last batch is padded to a power of two so that it reuses few graph shapes.
                    rows = min(limit, _next_pow2(len(batch_jobs)))
                    self._run_batch(
                        prompts, batch_jobs, rows, cache_len, mode, temperature, top_p, max_new_tokens, out,
                        compile,
                    )  # fmt: skip
                    start += len(batch_jobs)
        finally:
            config._attn_implementation = previous_attn
        return out

    def _run_batch(
        self,
        prompts: list[list[int]],
        batch_jobs: list[tuple[int, int]],
        rows: int,
        cache_len: int,
        mode: str,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        out: list[list[list[int]]],
        compile: bool,
    ) -> None:
        """Decode one length bucket; rows past ``len(batch_jobs)`` repeat a prompt and are discarded."""
        session = self._session_for(rows, cache_len, max_new_tokens, mode, compile)
        width = max(len(prompts[i]) for i, _ in batch_jobs)
        ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        real = torch.zeros(rows, width, dtype=torch.bool)
        for row in range(rows):
            i = batch_jobs[min(row, len(batch_jobs) - 1)][0]
            ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i])
            real[row, width - len(prompts[i]) :] = True
        session.temperature.fill_(max(temperature, 1e-6))
        session.top_p.fill_(top_p)
        session.prefill(ids.to(self.device), real.to(self.device), width)
        if rows > len(batch_jobs):
            session.done[len(batch_jobs) :] = True
        used = session.decode(max_new_tokens - 1)
        tokens = session.out[: len(batch_jobs), :used].tolist()
        for (i, s), row in zip(batch_jobs, tokens, strict=True):
            cut = next((k for k, t in enumerate(row) if t in self.eos_ids), len(row))
            out[i][s] = row[:cut]


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def _next_pow2(x: int) -> int:
    return 1 << max(0, (x - 1).bit_length())
