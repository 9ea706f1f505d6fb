"""Generation on a long-tailed workload (issue 14): stock ``generate``, FastHFGenerator, RefillGenerator, CB.

Workload (one seed, the same for every engine): ``--rows`` prompts of uniform length 128-2048 (random token
ids) and a target completion length per row, log-normal with median ``--median`` (600) and sigma
``--sigma`` (1.0), capped at ``--max-new`` (8192). Models are random-init Qwen2.5-shaped (configs from
``gen_throughput.py``), bf16, temperature 1.0 / top-p 0.7 (the GURU suite's sampling).

How the lengths are forced, equally for every engine: no engine has an eos id, and each row must stop at
its target. ``RefillGenerator`` takes the targets as per-row limits (``max_new_per_prompt``);
transformers continuous batching gets them as per-request ``max_new_tokens`` (eos -1). The two
static-batch engines (stock ``generate`` and ``FastHFGenerator``) batch as the product does (jobs sorted
by prompt length, ``--stock-batch`` rows for stock, the fast engine's own memory-sized batch) and a static
batch decodes until its longest row ends whether the others stopped or not: so each batch is decoded for
exactly its longest target (``max_new_tokens`` = that target; the fast engine keeps its product-sized
cache of longest prompt + ``--max-new``) and only each row's tokens up to its own target count as useful.

Budget: decoding every static batch to its longest row (up to 8192 steps, 16-80 ms each) does not fit one
600 s call, so by default the static engines are *projected*: one representative batch (the median one
by prompt length) is run for real, prefill timed, then ``--probe-steps`` decode steps timed; the whole
schedule's time is the sum over batches of prefill (scaled by the batch's prompt tokens) + (longest target
- 1) x the measured step time. For the fast engine the step time does not depend on the position (its
static cache is read whole every step), so this is close to exact; stock ``generate``'s steps get slower
as its dynamic cache grows, so its projection is an upper bound on its speed (our speed-up is a lower
bound). ``--static-full`` runs every batch for real instead (the CPU smoke test does). Continuous
batching is host-bound and slow, so it runs the first ``--cb-rows`` rows only (its rate is per token),
and stops after ``--cb-window-s``: then it is recorded ``partial`` (finished rows' targets plus the
unfinished rows' tokens so far, over the window). ``cb_tuned``'s attention is ``--cb-attn``; with
``--cpu`` CB runs on CPU too (no CUDA graphs, no async batching there).

Metrics per engine: useful tokens/s (sum of targets / seconds; prefill included, compile and graph
capture excluded and reported as ``first_call_s``), slot efficiency (tokens produced by decode steps /
slot-steps, i.e. slots x decode steps summed over the refill engine's narrower tail sessions; unknown
for CB), peak memory, and % of the HBM roofline: (decode steps x weight bytes + the KV bytes the useful
tokens must read, sum over rows and steps of context x KV bytes per token) / seconds / 4.8 TB/s.
Also a microbenchmark of the three top-p samplers at the refill slot count,
a greedy agreement check against stock ``generate`` (first divergence in bf16, as gen_throughput.py) and
a seeded determinism check of the refill engine with refill happening.

    python3 bench/gen_longtail.py --sizes 1.5b,7b --out $OUT/gen_longtail.json
    python3 bench/gen_longtail.py --sizes tiny --rows 24 --max-new 64 --static-full  # CPU smoke test
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import gen_throughput  # noqa: E402
from gen_throughput import HBM_BYTES_PER_S, kv_bytes_per_token, stock_generate, weight_bytes  # noqa: E402

from rlpipe.eval.fast_generate import FastHFGenerator, _round_up, _sample  # noqa: E402
from rlpipe.eval.refill import RefillGenerator, varlen_attention  # noqa: E402

# also: refill_swap, refill_grow, refill_cb_rows, refill_topk, refill_sort, cb_default
ENGINES = "stock,fast,refill_unfused,refill,cb_tuned,profile,sampler,check"
TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=512,
    tie_word_embeddings=True,
)


def build_model(size: str, device: torch.device) -> Any:
    return gen_throughput.build_model(size, device, TINY if size == "tiny" else None)


def workload(args: argparse.Namespace, vocab: int) -> tuple[list[list[int]], list[int]]:
    g = torch.Generator().manual_seed(args.seed)
    lens = torch.randint(args.min_prompt, args.max_prompt + 1, (args.rows,), generator=g)
    prompts = [torch.randint(0, vocab - 2, (int(n),), generator=g).tolist() for n in lens]
    normal = torch.randn(args.rows, generator=g, dtype=torch.float64)
    targets = (args.median * torch.exp(args.sigma * normal)).round().clamp(1, args.max_new).long().tolist()
    return prompts, targets


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(device: torch.device, fn: Callable[[], Any]) -> tuple[float, Any]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def useful_kv_bytes(prompts: list[list[int]], targets: list[int], kv_tok: int) -> float:
    """KV bytes the decode steps of the useful tokens must read: sum over steps of the context length."""
    total = 0.0
    for p, t in zip(prompts, targets, strict=True):
        steps = t - 1  # the first token comes from the prefill
        total += steps * len(p) + steps * (steps + 1) / 2
    return total * kv_tok


class NoStop:
    eos_token_id = None
    pad_token_id = 0


# Continuous batching (CB) attention. transformers 5.25 CB accepts only "sdpa", "paged|eager" or a name
# containing "flash" (continuous_api.py switch_to_cb_friendly_attn); without the flash-attn package (or the
# `kernels` hub download, offline here) sdpa is the only stock choice, and CB runs it on the whole packed
# batch with a [1, 1, Q, K] block-diagonal bias (input_outputs.py build_attention_mask): every query token
# attends over every request's KV, O(Q x K) per layer, and the KV is repeated to all query heads
# (sdpa_attention.py use_gqa_in_sdpa: GQA is off with a mask). "torch_flash" plugs PyTorch's own FA2 varlen
# kernel (aten::_flash_attention_forward, shipped in torch's CUDA build) in through the public
# AttentionInterface under a name with "flash" in it, so CB takes its flash path: no mask, cu_seqlens, KV per
# request, GQA native.
CB_TORCH_FLASH = "flash_torch_varlen"  # no "2"/"3" after "flash": the flash_attn_with_kvcache path stays off
CB_ATTN = {"torch_flash": CB_TORCH_FLASH, "sdpa": "sdpa", "eager": "paged|eager"}


def _cb_torch_flash_attention(
    module: Any,
    query: torch.Tensor,  # [1, heads, Tq, D]: CB packs the whole batch into one row
    key: torch.Tensor,  # [1, kv_heads, Tk, D], the requests' KV read back from the paged cache, in order
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Causal varlen attention over CB's packed batch (cu_seq_lens_q/k from CB), output [1, Tq, heads, D]."""
    q, k, v = (x[0].transpose(0, 1) for x in (query, key, value))  # [T, heads, D]
    cu_q, cu_k = kwargs["cu_seq_lens_q"], kwargs["cu_seq_lens_k"]
    max_q, max_k = kwargs["max_length_q"], kwargs["max_length_k"]
    if q.is_cuda:  # (q, k, v, cu_q, cu_k, max_q, max_k, dropout, causal, return_debug_mask)
        fa = torch.ops.aten._flash_attention_forward
        return fa(q, k, v, cu_q, cu_k, max_q, max_k, 0.0, True, False, scale=scaling)[0].unsqueeze(0), None
    scale = scaling if scaling is not None else q.shape[-1] ** -0.5
    return varlen_attention(q, k, v, cu_q, cu_k, True, scale).unsqueeze(0), None  # CPU: the smoke test


def _cb_torch_flash_check(model: Any) -> str | None:
    """None if the torch_flash attention matches the reference on the model's head shape (GQA, chunked
    prefill, decode rows, a zero-length padding sequence), else why not."""
    cfg = model.config
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
    dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    dev, dtype = model.device, model.dtype
    lens_q, lens_k = [37, 1, 1, 200, 0], [37, 301, 5, 460, 0]
    cu_q = torch.tensor([0, *torch.tensor(lens_q).cumsum(0).tolist()], dtype=torch.int32, device=dev)
    cu_k = torch.tensor([0, *torch.tensor(lens_k).cumsum(0).tolist()], dtype=torch.int32, device=dev)
    g = torch.Generator(device=dev).manual_seed(0)
    q = torch.randn(1, heads, sum(lens_q), dim, device=dev, dtype=dtype, generator=g)
    k, v = (torch.randn(1, kv_heads, sum(lens_k), dim, device=dev, dtype=dtype, generator=g) for _ in "kv")
    kw = dict(cu_seq_lens_q=cu_q, cu_seq_lens_k=cu_k, max_length_q=max(lens_q), max_length_k=max(lens_k))
    try:
        got = _cb_torch_flash_attention(None, q, k, v, None, scaling=dim**-0.5, **kw)[0][0]
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    ref = varlen_attention(*(x[0].transpose(0, 1) for x in (q, k, v)), cu_q, cu_k, True, dim**-0.5)
    err = ((got.float() - ref.float()).abs() / (ref.float().abs() + 1)).max().item()  # a few bf16 ulps
    return None if err < 3e-2 else f"error {err:.3g} (|d| / (|ref| + 1)) against rlpipe's varlen reference"


def _cb_graph_count(manager: Any) -> int | None:
    """CUDA graphs the CB manager holds now (one buffer per IO pair: async batching has two)."""
    processor = getattr(manager, "batch_processor", None)
    if processor is None:
        return None
    io = processor.inputs_and_outputs
    ios = [p.device_io for p in io.io_pairs] if hasattr(io, "io_pairs") else [io]
    return sum(len(getattr(x.graphs, "_storage", {})) for x in ios)


def run_size(
    size: str, args: argparse.Namespace, t_start: float, save: Callable[[list[dict[str, Any]]], None]
) -> list[dict[str, Any]]:
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    model = build_model(size, device)
    vocab = model.config.vocab_size
    wbytes = weight_bytes(model)
    kv_tok = kv_bytes_per_token(model)
    prompts, targets = workload(args, vocab)
    useful = sum(targets)
    kv_useful = useful_kv_bytes(prompts, targets, kv_tok)
    T, P = args.temperature, args.top_p
    results: list[dict[str, Any]] = []
    print(
        f"WORKLOAD {size}: {args.rows} rows, {sum(map(len, prompts))} prompt tokens, {useful} target tokens "
        f"(median {statistics.median(targets)}, max {max(targets)})",
        flush=True,
    )

    def record(engine: str, seconds: float, tokens: int, extra: dict[str, Any]) -> None:
        steps, slots = extra.get("decode_steps"), extra.get("slots")
        decoded = extra.pop("decoded_tokens", None)
        row = {
            "size": size,
            "engine": engine,
            "seconds": seconds,
            "useful_tokens": tokens,
            "useful_tok_per_s": tokens / seconds,
            "slot_efficiency": (decoded / extra.get("slot_steps", (slots or 0) * (steps or 0)))
            if steps and slots and decoded is not None
            else None,
            "roofline_frac": None,
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
            **extra,
        }
        if steps:
            kv = extra.pop("kv_bytes", kv_useful)
            row["roofline_frac"] = (steps * wbytes + kv) / seconds / HBM_BYTES_PER_S
        results.append(row)
        eff = row["slot_efficiency"]
        roof = row["roofline_frac"]
        print(
            f"RESULT {size} {engine}: {row['useful_tok_per_s']:,.0f} useful tok/s, {seconds:.1f} s"
            f"{' (projected)' if extra.get('projected') else ''}, slot eff "
            f"{'-' if eff is None else f'{100 * eff:.1f}%'}, "
            f"roofline {'-' if roof is None else f'{100 * roof:.1f}%'}, "
            f"peak {row['peak_mem_gib'] or 0:.1f} GiB",
            flush=True,
        )

    def attempt(name: str, fn: Callable[[], None]) -> None:
        if time.perf_counter() - t_start > args.deadline_s:
            print(f"SKIPPED {size} {name}: past --deadline-s {args.deadline_s}", flush=True)
            results.append({"size": size, "engine": name, "error": "skipped: deadline"})
            return
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            fn()
        except Exception as exc:  # one broken engine must not lose the others' numbers
            print(f"FAILED {size} {name}: {type(exc).__name__}: {exc}"[:2000], flush=True)
            results.append({"size": size, "engine": name, "error": f"{type(exc).__name__}: {exc}"[:2000]})
        save(results)  # after every engine: a call cut off at its time limit keeps what it measured

    order = sorted(range(args.rows), key=lambda r: len(prompts[r]))
    compile_ = device.type == "cuda" and not args.no_compile

    def static_batches(batch: int) -> list[list[int]]:
        return [order[i : i + batch] for i in range(0, len(order), batch)]

    def static_engine(
        name: str,
        batch: int,
        run_batch: Callable[[list[int], int], tuple[float, float]],
        extra: dict[str, Any],
    ) -> None:
        """Time the static schedule: every batch for real (--static-full) or one probe batch, projected."""
        batches = static_batches(batch)
        longest = [max(targets[r] for r in b) for b in batches]
        slot_steps = sum(batch * (m - 1) for m in longest)
        decoded = useful - args.rows
        if args.static_full:
            secs = 0.0
            for b, m in zip(batches, longest, strict=True):
                pre, dec = run_batch(b, m - 1)
                secs += pre + dec
            extra.update(projected=False)
        else:
            probe = batches[len(batches) // 2]
            steps = min(args.probe_steps, max(longest) - 1)
            pre, dec = run_batch(probe, steps)
            step_s = dec / max(1, steps)
            probe_tokens = sum(len(prompts[r]) for r in probe)
            secs = sum(
                pre * sum(len(prompts[r]) for r in b) / probe_tokens + (m - 1) * step_s
                for b, m in zip(batches, longest, strict=True)
            )
            extra.update(
                projected=True,
                probe_prefill_s=pre,
                probe_steps=steps,
                ms_per_step=1000 * step_s,
                probe_batch_prompt_tokens=probe_tokens,
            )
        extra.update(slots=batch, decode_steps=sum(m - 1 for m in longest), batches=len(batches))
        # Static steps run `batch` slots each; slot efficiency is over the schedule's slot-steps.
        extra["decoded_tokens"] = decoded * (sum(m - 1 for m in longest) * batch) / slot_steps
        record(name, secs, useful, extra)

    if "stock" in args.engines:

        def stock() -> None:
            def gen(rows: list[int], new: int) -> None:
                width = max(len(prompts[r]) for r in rows)
                ids = torch.full((len(rows), width), 0, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for k, r in enumerate(rows):
                    ids[k, width - len(prompts[r]) :] = torch.tensor(prompts[r])
                    mask[k, width - len(prompts[r]) :] = 1
                stock_generate(
                    model, ids.to(device), new, T, P, attention_mask=mask.to(device), eos_id=None, pad_id=0
                )

            def run_batch(rows: list[int], steps: int) -> tuple[float, float]:
                pre, _ = timed(device, lambda: gen(rows, 1))
                total, _ = timed(device, lambda: gen(rows, steps + 1))
                return pre, max(0.0, total - pre)

            gen(order[:2], 2)  # warm-up
            static_engine("hf_generate", min(args.stock_batch, args.rows), run_batch, {})

        attempt("hf_generate", stock)

    if "fast" in args.engines:

        def fast() -> None:
            gen = FastHFGenerator(model, NoStop(), compile=compile_, top_p_method="search")
            longest_prompt = max(len(p) for p in prompts)
            batch = args.fast_batch or gen._auto_batch(_round_up(longest_prompt + args.max_new, 128))
            batch = min(batch, args.rows)
            mode = "top_p" if P < 1.0 else "sample"
            first: dict[str, float] = {}

            def run_batch(rows: list[int], steps: int) -> tuple[float, float]:
                """What FastHFGenerator._run_batch does, with the decode cut after ``steps`` steps."""
                jobs = [(r, 0) for r in rows]
                width = max(len(prompts[r]) for r in rows)
                cache_len = _round_up(width + args.max_new, 128)
                session = gen._session_for(batch, cache_len, args.max_new, mode, compile_)
                ids = torch.full((batch, width), 0, dtype=torch.long)
                real = torch.zeros(batch, width, dtype=torch.bool)
                for k in range(batch):
                    r = jobs[min(k, len(jobs) - 1)][0]
                    ids[k, width - len(prompts[r]) :] = torch.tensor(prompts[r])
                    real[k, width - len(prompts[r]) :] = True
                session.temperature.fill_(T)
                session.top_p.fill_(P)
                ids_d, real_d = ids.to(device), real.to(device)
                torch.manual_seed(0)
                with torch.inference_mode():
                    if session.graph is None and gen.cuda_graphs and device.type == "cuda":
                        warm, _ = timed(
                            device, lambda: (session.prefill(ids_d, real_d, width), session.decode(2))
                        )
                        first["first_call_s"] = first.get("first_call_s", 0.0) + warm
                    pre, _ = timed(device, lambda: session.prefill(ids_d, real_d, width))
                    # decode() stops early only when every row hit eos: there is none here.
                    dec, _ = timed(device, lambda: session.decode(steps))
                return pre, dec

            static_engine("fast_hf", batch, run_batch, first)

        attempt("fast_hf", fast)

    refill_slots: list[int] = []
    refill_gens: list[RefillGenerator] = []
    # ``refill_unfused`` (q/k/v and gate/up as separate matmuls) and ``refill_swap`` run first and are
    # released, so that ``refill`` (the product's default) keeps its compiled session for the profile.
    # ``refill_swap``: the grouped-query decode swap (``decode_group_swap``) on top of the default;
    # ``refill_cb_rows``: the default on CB's rows only (the first ``--cb-rows``), a same-rows comparison;
    # ``refill_grow``: extents that grow from a shared pool (``kv_growth``) instead of one full-width
    # extent per slot, so the slot count is not bound by ``--max-new``.
    cb_rows = min(args.cb_rows, args.rows)
    variants = (
        ("refill_unfused", "search", False, False, False, args.rows),
        ("refill_swap", "search", True, True, False, args.rows),
        ("refill_grow", "search", True, False, True, args.rows),
        ("refill_cb_rows", "search", True, False, False, cb_rows),
        ("refill", "search", True, False, False, args.rows),
        ("refill_topk", "topk", True, False, False, args.rows),
        ("refill_sort", "sort", True, False, False, args.rows),
    )
    for name, method, fuse, swap, grow, n_rows in variants:
        if name not in args.engines:
            continue

        def refill(
            name: str = name,
            method: str = method,
            fuse: bool = fuse,
            swap: bool = swap,
            grow: bool = grow,
            n: int = n_rows,
        ) -> None:
            ps, ts = prompts[:n], targets[:n]
            tokens = sum(ts)
            gen = RefillGenerator(
                model,
                NoStop(),
                compile=compile_,
                top_p_method=method,
                top_k=args.top_k,
                max_batch_size=args.slots,
                check_every=args.check_every,
                fuse_projections=fuse,
                decode_group_swap=swap,
                kv_growth=grow,
                kv_chunk=args.kv_chunk,
            )
            kw = dict(n=1, temperature=T, top_p=P, max_new_tokens=args.budget or args.max_new)
            # Same slot count and cache shape as the timed call, 2 tokens a row: compile + capture.
            warm, _ = timed(device, lambda: gen.generate(ps, seed=0, max_new_per_prompt=[2] * n, **kw))
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            secs, out = timed(device, lambda: gen.generate(ps, seed=0, max_new_per_prompt=ts, **kw))
            got = [len(o[0]) for o in out]
            if got != ts:
                bad = sum(a != b for a, b in zip(got, ts, strict=True))
                raise RuntimeError(f"{bad} rows did not stop at their target")
            st = gen.last_stats
            if name == "refill":
                refill_slots.append(st["slots"])
                refill_gens.append(gen)
            fused = gen._fused.nbytes / 2**30 if gen._fused is not None else 0.0
            if name != "refill":  # released: the next engine sizes its slots from free memory
                gen._fused = None
                gen._release_session()
            record(
                name,
                secs,
                tokens,
                dict(
                    first_call_s=warm,
                    rows=n,
                    kv_bytes=useful_kv_bytes(ps, ts, kv_tok),
                    slots=st["slots"],
                    decode_steps=st["decode_steps"],
                    slot_steps=st["slot_steps"],
                    tail_slots=st["tail_slots"],
                    prefills=st["prefills"],
                    flash=st["flash"],
                    cache_len=st["cache_len"],
                    pool_rows=st["pool_rows"],
                    kv_moves=st["moved"],
                    kv_extended=st["extended"],
                    preempted=st["preempted"],
                    # Until the queue emptied: the rate a call with many more rows than slots keeps.
                    drain_s=st["drain_s"],
                    drain_tokens=st["drain_tokens"],
                    drain_tok_per_s=st["drain_tokens"] / st["drain_s"],
                    decoded_tokens=tokens - n,
                    fused_projections_gib=fused,
                ),
            )

        attempt(name, refill)

    if "profile" in args.engines and device.type == "cuda":

        def profile() -> None:
            """Where a full-width refill decode step's GPU time goes, prefill excluded.

            Two profiled calls over the same prompts, ``8`` and ``8 + --profile-steps`` tokens a row: the
            prefill is the same in both, so each kernel's time difference is what the extra decode steps
            cost (CUDA-graph replays included, as in the timed run).
            """
            if not refill_gens:
                raise RuntimeError("the profile reuses the refill engine's session: run the refill engine")
            gen = refill_gens[0]  # its compiled session: the same slot count and cache width
            sub = prompts[: gen.last_stats["slots"]]
            kw = dict(n=1, temperature=T, top_p=P, max_new_tokens=args.max_new)
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as torch_profile

            def kernel_ms(new: int) -> tuple[dict[str, float], float, int]:
                with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
                    secs, _ = timed(
                        device, lambda: gen.generate(sub, seed=0, max_new_per_prompt=[new] * len(sub), **kw)
                    )
                events = prof.key_averages()
                ms = {e.key: e.device_time_total / 1e3 for e in events if e.device_time_total > 0}
                return ms, secs, gen.last_stats["decode_steps"]

            short, short_s, short_steps = kernel_ms(8)
            long, long_s, long_steps = kernel_ms(8 + args.profile_steps)
            steps = long_steps - short_steps
            diff = {k: long.get(k, 0.0) - short.get(k, 0.0) for k in set(long) | set(short)}
            kernels = sorted(((k, v) for k, v in diff.items() if v > 0), key=lambda kv: -kv[1])
            total = sum(ms for _, ms in kernels) or float("nan")
            cats: dict[str, float] = {}
            for name, ms in kernels:
                cats[_kernel_category(name)] = cats.get(_kernel_category(name), 0.0) + ms
            row = {
                "size": size,
                "engine": "profile_refill_decode",
                "rows": len(sub),
                "decode_steps": steps,
                "ms_per_step_wall": 1000 * (long_s - short_s) / steps,
                "ms_per_step_kernels": total / steps,
                "prefill_call_s": short_s,
                "category_share": {k: v / total for k, v in sorted(cats.items(), key=lambda kv: -kv[1])},
                "top_kernels_ms_per_step": [[name[:90], round(ms / steps, 4)] for name, ms in kernels[:15]],
            }
            results.append(row)
            print(f"PROFILE {size}: {json.dumps(row)[:3000]}", flush=True)

        attempt("profile_refill", profile)
    refill_gens.clear()  # its cache must not hold memory through the other engines

    cb_rows = list(range(min(args.cb_rows, args.rows)))
    # Cache sized to the submitted requests at their full length, with room for FIFO's 15 % safety margin:
    # nothing is ever evicted, and sdpa's [Q, cache + Q] mask (and its per-step reset) stays small.
    cb_page = 256  # ContinuousBatchingConfig.page_size's default
    cb_blocks = args.cb_blocks
    if cb_blocks is None:
        need = sum(-(-(len(prompts[r]) + targets[r] + 1) // cb_page) for r in cb_rows)
        cb_blocks = int(need * 1.2) + 16
    on_gpu = device.type == "cuda"
    cb_variants = {
        "cb_default": {},  # the library's defaults (sdpa here; no CUDA graphs, no async batching with a mask)
        # The fastest attention CB accepts without flash-attn (--cb-attn), CUDA graphs with coarse KV padding
        # (few captures), async double buffering (host prep of step n+1 overlaps the device's step n), no
        # prefix-sharing bookkeeping, a batch as wide as all the rows, the cache sized to the workload.
        "cb_tuned": dict(
            use_cuda_graph=on_gpu and not args.cb_no_graphs,
            use_async_batching=on_gpu and not args.cb_no_async,  # CUDA/XPU only (input_outputs.py)
            max_batch_tokens=args.cb_batch_tokens,
            max_requests_per_batch=args.cb_requests,
            q_padding_interval_size=args.cb_q_pad,
            kv_padding_interval_size=args.cb_kv_pad,
            num_blocks=cb_blocks or None,
            page_size=cb_page,
            allow_block_sharing=False,
            scheduler_type=args.cb_scheduler,
            auto_switch_to_flash=False,  # the attention is --cb-attn's, never a hub download
        ),
    }
    for name, cb in cb_variants.items():
        if name not in args.engines or (device.type != "cuda" and not args.cpu):
            continue

        def cbrun(name: str = name, cb: dict[str, Any] = cb) -> None:
            """CB on the first --cb-rows rows, per-row targets as max_new_tokens, stopped after --cb-window-s.

            A run cut by the window is recorded ``partial``: the finished rows' targets plus the tokens the
            unfinished ones had generated (read from the outputs a hard stop fails them with) over the
            window, i.e. a rate without the long tail's narrow steps (an upper bound on the full run's).
            """
            from transformers import GenerationConfig
            from transformers.generation.configuration_utils import ContinuousBatchingConfig
            from transformers.generation.continuous_batching.utils import WorkloadHints
            from transformers.modeling_utils import AttentionInterface

            rows = cb_rows
            want = {f"r{r}": targets[r] for r in rows}
            gcfg = GenerationConfig(
                do_sample=True,
                temperature=T,
                top_p=P,
                top_k=0,
                max_new_tokens=args.max_new,
                eos_token_id=-1,
                pad_token_id=0,
            )
            hints = WorkloadHints(
                max_prompt_length=max(len(prompts[r]) for r in rows),
                max_generated_length=max(want.values()),
                num_requests=len(rows),
            )
            original_attn = model.config._attn_implementation
            attn_note = None
            if name != "cb_default":
                attn = CB_ATTN[args.cb_attn]
                if attn == CB_TORCH_FLASH and (attn_note := _cb_torch_flash_check(model)) is not None:
                    print(f"WARNING {size} {name}: no torch_flash, sdpa instead: {attn_note}", flush=True)
                    attn = "sdpa"
                if attn == CB_TORCH_FLASH:
                    AttentionInterface.register(CB_TORCH_FLASH, _cb_torch_flash_attention)
                    # KV padding only pads the gather of the packed KV here (the kernel reads the true
                    # lengths): coarse is cheap and means few graphs. With sdpa's mask the padding is
                    # attended over, so the library's preset (16384 tokens) stays.
                    cb = dict(cb, kv_padding_interval_size=cb["kv_padding_interval_size"] or 65536)
                # Set on the config directly: set_attn_implementation would try to import a "flash" kernel.
                model.config._attn_implementation = attn
            manager = None
            try:
                t0 = time.perf_counter()
                manager = model.init_continuous_batching(
                    generation_config=gcfg,
                    continuous_batching_config=ContinuousBatchingConfig(**cb),
                    workload_hints=hints,
                )
                attn_used = model.config._attn_implementation  # after CB's own switch, if any
                manager.warmup()  # what continuous_batching_context_manager(warmup=True) does
                warm = time.perf_counter() - t0
                warm_graphs = _cb_graph_count(manager)
                manager.start()
                t1 = time.perf_counter()
                for r in rows:
                    manager.add_request(
                        prompts[r], request_id=f"r{r}", max_new_tokens=targets[r], eos_token_id=-1
                    )
                end = t1 + args.cb_window_s
                done: dict[str, int] = {}
                while len(done) < len(rows) and time.perf_counter() < end:
                    res = manager.get_result(timeout=min(1.0, max(0.01, end - time.perf_counter())))
                    if res is None:
                        if not manager.is_running():
                            raise RuntimeError(f"CB stopped after {len(done)} of {len(rows)} requests")
                        continue
                    if res.is_finished():
                        if res.error is not None:
                            raise RuntimeError(f"CB request {res.request_id} failed: {res.error}")
                        done[res.request_id] = len(res.generated_tokens)
                partial = len(done) < len(rows)
                graphs = _cb_graph_count(manager)  # before stop(), which drops the batch processor
                resolved = manager.continuous_batching_config
                cache = manager.batch_processor.cache if manager.batch_processor is not None else None
                unfinished: dict[str, int] = {}
                if partial:  # a hard stop fails what is left, with the tokens each had generated
                    manager.stop(block=True, timeout=120, hard_stop=True)
                    secs = time.perf_counter() - t1
                    while (res := manager.get_result(timeout=0.5)) is not None:
                        if res.request_id in want and res.request_id not in done:
                            if res.error is None and res.is_finished():
                                done[res.request_id] = len(res.generated_tokens)
                            else:
                                unfinished[res.request_id] = len(res.generated_tokens)
                else:
                    secs = time.perf_counter() - t1
                    manager.stop(block=True, timeout=120)
                steps = getattr(manager, "current_batch", None)  # forward passes, prefill ones included
            finally:
                if manager is not None:
                    if manager.is_running():
                        manager.stop(block=True, timeout=120, hard_stop=True)
                    if manager.is_running():  # destroy() would join it without a timeout
                        print(f"WARNING {size} {name}: the CB thread did not stop", flush=True)
                    else:
                        manager.destroy()
                model.config._attn_implementation = original_attn
            bad = {k: v for k, v in done.items() if v != want[k]}
            if bad:
                raise RuntimeError(f"CB rows not at their target (id: got): {dict(list(bad.items())[:5])}")
            finished_tokens = sum(want[k] for k in done)
            partial_tokens = sum(min(v, want[k]) for k, v in unfinished.items())
            tokens = finished_tokens + partial_tokens
            if tokens == 0:
                raise RuntimeError(f"CB finished no token in the {args.cb_window_s:.0f} s window")
            fin = [int(k[1:]) for k in done]
            extra: dict[str, Any] = dict(
                first_call_s=warm,
                rows=len(rows),
                partial=partial,
                window_s=args.cb_window_s,
                rows_finished=len(done),
                finished_tokens=finished_tokens,
                unfinished_tokens=partial_tokens,
                unfinished_rows_seen=len(unfinished),
                finished_tok_per_s=finished_tokens / secs,
                forward_steps=steps,
                cuda_graphs=graphs,
                cuda_graphs_after_warmup=warm_graphs,
                attn=attn_used,
                attn_fallback=attn_note,
                # The finished rows' KV traffic (a partial run's roofline is left out: it would undercount).
                kv_bytes=useful_kv_bytes([prompts[r] for r in fin], [targets[r] for r in fin], kv_tok),
                cb_config={
                    k: getattr(resolved, k, None)
                    for k in (
                        "num_blocks",
                        "page_size",
                        "max_batch_tokens",
                        "max_requests_per_batch",
                        "max_memory_percent",
                        "q_padding_interval_size",
                        "kv_padding_interval_size",
                        "use_cuda_graph",
                        "use_async_batching",
                        "scheduler_type",
                        "allow_block_sharing",
                        "max_blocks_per_request",
                    )
                },
                cache_tokens=getattr(cache, "max_tokens_read", None),
            )
            if not partial:
                extra["decode_steps"] = steps  # roofline: one weight read per forward pass
            record(name, secs, tokens, extra)

        attempt(name, cbrun)

    if "sampler" in args.engines:

        def sampler() -> None:
            """ms per call of each top-p method on [slots, vocab] fp32 logits (compiled as in the engine)."""
            rows = refill_slots[0] if refill_slots else 128
            g = torch.Generator(device=device).manual_seed(0)
            logits = torch.randn(rows, vocab, device=device, generator=g)
            temp, top_p = torch.ones(1, device=device), torch.full((1,), P, device=device)
            out: dict[str, float] = {}
            for method in ("search", "sort", "topk"):
                fn = lambda m=method: _sample(logits, temp, top_p, "top_p", m, args.top_k)  # noqa: E731
                if compile_ and method != "sort":
                    fn = torch.compile(fn, dynamic=False)
                for _ in range(3):
                    fn()
                secs, _ = timed(device, lambda f=fn: [f() for _ in range(20)])
                out[f"{method}_ms"] = 1000 * secs / 20
            results.append(
                {"size": size, "engine": "sampler_microbench", "rows": rows, "top_k": args.top_k, **out}
            )
            print(f"SAMPLER {size} ({rows} x {vocab}): {out}", flush=True)

        attempt("sampler_microbench", sampler)

    if "check" in args.engines:

        def check() -> None:
            """Greedy agreement with stock generate (first divergence); refill determinism under a seed."""
            n_rows, new = min(8, args.rows), min(32, args.max_new)
            sub = [p[:64] for p in prompts[:n_rows]]
            gen = RefillGenerator(
                model, NoStop(), compile=False, max_batch_size=max(1, n_rows // 2), check_every=4
            )
            fast = gen.generate(
                sub,
                n=1,
                temperature=0.0,
                top_p=1.0,
                max_new_tokens=new,
                seed=0,
                max_new_per_prompt=[new // 2 + 3 * k for k in range(n_rows)],
            )
            prefix = []
            for p, comp in zip(sub, fast, strict=True):
                with torch.inference_mode():
                    ref = model.generate(
                        input_ids=torch.tensor([p], device=device),
                        do_sample=False,
                        max_new_tokens=len(comp[0]),
                        min_new_tokens=len(comp[0]),
                        eos_token_id=None,
                        pad_token_id=0,
                    )[0, len(p) :].tolist()
                prefix.append(
                    next((i for i, (a, b) in enumerate(zip(ref, comp[0], strict=True)) if a != b), len(ref))
                )
            lim = [min(t, 2 * new) for t in targets[: 4 * n_rows]]
            kw = dict(n=1, temperature=T, top_p=P, max_new_tokens=2 * new, max_new_per_prompt=lim)
            a = gen.generate(prompts[: 4 * n_rows], seed=3, **kw)
            b = gen.generate(prompts[: 4 * n_rows], seed=3, **kw)
            c = gen.generate(prompts[: 4 * n_rows], seed=4, **kw)
            # Growing extents in a pool of three widest extents (moves and preemptions): the same greedy
            # rows as one full-width extent per slot (same slots, so the same matmul shapes), and seeded.
            widest = -(-(max(len(p) for p in sub) + new) // 4) * 4
            grow = RefillGenerator(
                model,
                NoStop(),
                compile=False,
                max_batch_size=max(1, n_rows // 2),
                check_every=4,
                kv_growth=True,
                kv_chunk=4,
                kv_pool=3 * widest,
            )
            greedy_kw = dict(n=1, temperature=0.0, top_p=1.0, max_new_tokens=new, seed=0)
            grown = grow.generate(
                sub, max_new_per_prompt=[new // 2 + 3 * k for k in range(n_rows)], **greedy_kw
            )
            grow_stats = {k: grow.last_stats[k] for k in ("moved", "extended", "preempted", "pool_rows")}
            sample_kw = dict(n=1, temperature=T, top_p=P, max_new_tokens=new, seed=3)
            grow_sampled = [grow.generate(sub * 2, **sample_kw) for _ in range(2)]
            row = {
                "size": size,
                "engine": "checks",
                "greedy_equal_prefix": prefix,
                "greedy_of": [len(c_[0]) for c_ in fast],
                "deterministic": a == b,
                "seed_changes_output": a != c,
                "refill_prefills": gen.last_stats["prefills"],
                "grow_greedy_equal_static": grown == fast,
                "grow_deterministic": grow_sampled[0] == grow_sampled[1],
                "grow_stats": grow_stats,
            }
            results.append(row)
            print(f"CHECK {size}: {row}", flush=True)

        attempt("checks", check)

    base = next(
        (r["useful_tok_per_s"] for r in results if r.get("engine") == "hf_generate" and "seconds" in r), None
    )
    cb = next(
        (r["useful_tok_per_s"] for r in results if r.get("engine") == "cb_tuned" and "seconds" in r), None
    )
    for r in results:
        if "useful_tok_per_s" in r:
            r["speedup_vs_hf_generate"] = r["useful_tok_per_s"] / base if base else None
            r["speedup_vs_cb_tuned"] = r["useful_tok_per_s"] / cb if cb else None
        r.update(weight_gb=wbytes / 1e9, kv_bytes_per_token=kv_tok)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return results


def _kernel_category(name: str) -> str:
    """A GPU kernel's kind, from its name: matmul, attention, sampling (sort/scan/top-k) or other."""
    low = name.lower()
    if "flash" in low or "attention" in low or "fmha" in low:  # before matmul: templated on cutlass types
        return "attention"
    if any(k in low for k in ("gemm", "cutlass", "xmma", "nvjet", "gemv", "matmul", "cublas")):
        return "matmul"
    if any(k in low for k in ("sort", "scan", "topk", "radix", "cumsum", "multinomial")):
        return "sampling"
    if "memcpy" in low or "memset" in low:
        return "copies"
    return "other (norms, activations, elementwise)"


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| size | engine | useful tok/s | seconds | vs stock | vs CB tuned | slot eff. | HBM roofline "
        "| peak GiB | slots | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    def times(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f}x"

    for r in results:
        if "useful_tok_per_s" in r:
            note = "projected" if r.get("projected") else ""
            if r.get("rows"):
                note = f"{r['rows']} rows"
            if r.get("first_call_s"):
                note += f"; first call {r['first_call_s']:.0f} s"
            mem = "-" if r.get("peak_mem_gib") is None else f"{r['peak_mem_gib']:.1f}"
            lines.append(
                f"| {r['size']} | {r['engine']} | {r['useful_tok_per_s']:,.0f} | {r['seconds']:.1f} | "
                f"{times(r.get('speedup_vs_hf_generate'))} | {times(r.get('speedup_vs_cb_tuned'))} | "
                f"{pct(r.get('slot_efficiency'))} | {pct(r.get('roofline_frac'))} | "
                f"{mem} | {r.get('slots', '-')} | {note} |"
            )
        elif "error" in r:
            lines.append(f"| {r['size']} | {r['engine']} | failed: {r['error'][:90]} | | | | | | | | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1.5b,7b", help="comma list of 0.5b, 1.5b, 7b, tiny")
    ap.add_argument("--engines", default=ENGINES)
    ap.add_argument("--rows", type=int, default=640)
    ap.add_argument("--min-prompt", type=int, default=128)
    ap.add_argument("--max-prompt", type=int, default=2048)
    ap.add_argument("--median", type=float, default=600)
    ap.add_argument("--sigma", type=float, default=1.0)
    ap.add_argument("--max-new", type=int, default=8192, help="cap of the target lengths")
    ap.add_argument(
        "--budget",
        type=int,
        default=None,
        help="max_new_tokens the refill engines are given (sizes their cache; default --max-new): "
        "guru19's 28672 with targets still capped at --max-new",
    )
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=0.7)
    ap.add_argument("--top-k", type=int, default=1024, help="for the topk sampler")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--slots", type=int, default=None, help="refill slots (default: from free memory)")
    ap.add_argument("--kv-chunk", type=int, default=64, help="refill_grow: extents grow in these rows")
    ap.add_argument("--check-every", type=int, default=8)
    ap.add_argument("--fast-batch", type=int, default=None, help="FastHFGenerator batch (default: its own)")
    ap.add_argument("--stock-batch", type=int, default=128)
    ap.add_argument("--probe-steps", type=int, default=128)
    ap.add_argument("--static-full", action="store_true", help="run every static batch instead of projecting")
    ap.add_argument("--cb-rows", type=int, default=160)
    ap.add_argument("--cb-window-s", type=float, default=150, help="CB stops here, recorded as partial")
    ap.add_argument("--cb-attn", choices=sorted(CB_ATTN), default="torch_flash", help="cb_tuned's attention")
    ap.add_argument("--cb-requests", type=int, default=256, help="cb_tuned max_requests_per_batch")
    ap.add_argument("--cb-batch-tokens", type=int, default=8192, help="cb_tuned max_batch_tokens")
    ap.add_argument("--cb-q-pad", type=int, default=64, help="cb_tuned q_padding_interval_size (graphs)")
    ap.add_argument("--cb-kv-pad", type=int, default=0, help="cb_tuned kv_padding_interval_size (0: auto)")
    ap.add_argument("--cb-blocks", type=int, default=None, help="cb_tuned num_blocks (0: from free memory)")
    ap.add_argument("--cb-scheduler", choices=("fifo", "prefill_first"), default="fifo")
    ap.add_argument("--cb-no-graphs", action="store_true", help="cb_tuned without CUDA graphs")
    ap.add_argument("--cb-no-async", action="store_true", help="cb_tuned without async double buffering")
    ap.add_argument("--profile-steps", type=int, default=128, help="decode steps the profile isolates")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--cpu", action="store_true", help="run on CPU even where CUDA is present")
    ap.add_argument("--deadline-s", type=float, default=540, help="skip engines that would start after this")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "gen_longtail.json")
    args = ap.parse_args()
    args.engines = args.engines.split(",")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stdout)
    import transformers

    t_start = time.perf_counter()
    results: list[dict[str, Any]] = []

    def save(partial: list[dict[str, Any]]) -> None:
        meta = _meta(args, transformers.__version__, results + partial)
        args.out.write_text(json.dumps(meta, indent=2))
        args.out.with_suffix(".md").write_text(_markdown(meta))

    for size in args.sizes.split(","):
        results += run_size(size, args, t_start, save)
        save([])
    print("\n" + table(results))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')} ({time.perf_counter() - t_start:.0f} s)")


def _meta(args: argparse.Namespace, tf_version: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    cuda = torch.cuda.is_available() and not args.cpu
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "torch": torch.__version__,
        "transformers": tf_version,
        "python": platform.python_version(),
        "workload": {k: v for k, v in vars(args).items() if k != "out"},
        "hbm_bytes_per_s_assumed": HBM_BYTES_PER_S,
        "results": results,
    }


def _markdown(meta: dict[str, Any]) -> str:
    w = meta["workload"]
    head = (
        f"# gen_longtail: {meta['date']}, {meta['device']}, torch {meta['torch']}, "
        f"transformers {meta['transformers']}\n\n{w['rows']} rows, "
        f"prompts {w['min_prompt']}-{w['max_prompt']} "
        f"tokens, targets log-normal median {w['median']} sigma {w['sigma']} "
        f"capped at {w['max_new']}, "
        f"temperature {w['temperature']}, top-p {w['top_p']}.\n\n"
    )
    extra = [r for r in meta["results"] if r.get("engine") in ("checks", "sampler_microbench")]
    return head + table(meta["results"]) + "\n\n" + "\n".join(f"- `{json.dumps(r)}`" for r in extra) + "\n"


if __name__ == "__main__":
    main()
