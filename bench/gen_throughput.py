"""Generation throughput on one GPU: stock ``model.generate`` against ``FastHFGenerator``, same run.

Why a separate script: evaluating every checkpoint on the 19-task suite and GRPO/PPO rollouts are
bound by decoding, so the backend's tokens/second sets the cost of every experiment. The models are
random-init Qwen2.5-shaped (configs written here, no hub access on the GPU machine), in bf16; speed
does not depend on the weights, only on shapes, as long as every run generates the same number of
tokens (stock ``generate`` gets ``min_new_tokens``; the fast backend gets no eos id).

Prints one line per result as it goes and a table last; writes JSON (date, device, versions, each
variant's seconds, tokens/s, speed-up, fraction of the HBM roofline and peak memory). ``--profile``
adds a torch.profiler summary of a few stock and fast decode steps (where the time goes).

    python bench/gen_throughput.py --sizes 0.5b,1.5b --out bench/results/gen_throughput_h200.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rlpipe.eval.fast_generate import FastHFGenerator  # noqa: E402

# Published Qwen2.5 shapes (config.json of the hub checkpoints), so no download is needed.
SHAPES: dict[str, dict[str, Any]] = {
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
}  # fmt: skip
EOS = 151643  # <|endoftext|>; never stops a run here (min_new_tokens / no eos for the fast path)
HBM_BYTES_PER_S = 4.8e12  # H200 datasheet; the brief's roofline definition


def build_model(size: str, device: torch.device | str = "cuda", shape: dict[str, Any] | None = None) -> Any:
    """A random-init Qwen2.5-shaped causal LM (``SHAPES[size]`` unless ``shape`` is given), created
    directly on ``device`` (fast for 7B): bf16 on CUDA, fp32 elsewhere. A custom ``shape`` ends at its
    last vocabulary id, ``SHAPES`` at Qwen's ``<|endoftext|>``."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    shape = shape or SHAPES[size]
    eos = EOS if shape["vocab_size"] > EOS else shape["vocab_size"] - 1
    config = Qwen2Config(
        **shape,
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        use_sliding_window=False,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    device = torch.device(device)
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16 if device.type == "cuda" else torch.float32)
    return model.eval()


def weight_bytes(model: Any) -> int:
    """Bytes a decode step must read at least once: every parameter (tied embeddings counted once)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def kv_bytes_per_token(model: Any) -> int:
    cfg = model.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    elem = next(model.parameters()).element_size()
    return cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * head_dim * elem


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    result = fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0, result


def stock_generate(
    model: Any,
    ids: torch.Tensor,
    new: int,
    temperature: float,
    top_p: float,
    attention_mask: torch.Tensor | None = None,
    eos_id: int | None = EOS,
    pad_id: int = EOS,
) -> Any:
    """Stock ``generate`` forced to exactly ``new`` sampled tokens a row (min_new_tokens; top_k off)."""
    with torch.inference_mode():
        return model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids) if attention_mask is None else attention_mask,
            do_sample=True,
            temperature=temperature,
            top_p=top_p,
            top_k=0,
            max_new_tokens=new,
            min_new_tokens=new,
            eos_token_id=eos_id,
            pad_token_id=pad_id,
        )


def cb_generate(model: Any, prompts: list[list[int]], new: int, temperature: float, top_p: float, **cb: Any):
    """transformers continuous batching (``generate_batch``); ``cb``: ContinuousBatchingConfig fields."""
    from transformers import GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    gen_cfg = GenerationConfig(
        do_sample=True,
        temperature=temperature,
        top_p=top_p,
        top_k=0,
        max_new_tokens=new,
        min_new_tokens=new,
        eos_token_id=EOS,
        pad_token_id=EOS,
    )
    # No inference_mode here: the manager's thread builds its own tensors and fails on inference ones.
    return model.generate_batch(
        inputs=prompts,
        generation_config=gen_cfg,
        continuous_batching_config=ContinuousBatchingConfig(**cb) if cb else None,
        progress_bar=False,
    )


def profile_summary(fn: Callable[[], Any], path: Path, rows: int = 25) -> str:
    """torch.profiler table of ``fn`` (CPU and CUDA time per op), written to ``path``, returned as text."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=rows, max_name_column_width=60)
    cpu = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=60)
    text = f"== by device time ==\n{table}\n== by self CPU time ==\n{cpu}\n"
    path.write_text(text)
    return text


def run_size(size: str, args: argparse.Namespace, out_dir: Path) -> list[dict[str, Any]]:
    model = build_model(size)
    wbytes, kv_tok = weight_bytes(model), kv_bytes_per_token(model)
    g = torch.Generator().manual_seed(1234)
    ids_cpu = torch.randint(0, EOS, (args.batch, args.prompt_len), generator=g)
    ids = ids_cpu.cuda()
    prompts = ids_cpu.tolist()
    tokens = args.batch * args.new
    roofline = args.batch * HBM_BYTES_PER_S / wbytes  # tok/s if a step cost only reading the weights once
    avg_ctx = args.prompt_len + args.new / 2
    roofline_kv = args.batch * HBM_BYTES_PER_S / (wbytes + args.batch * avg_ctx * kv_tok)
    results: list[dict[str, Any]] = []
    t, p = args.temperature, args.top_p

    def record(variant: str, seconds: list[float], extra: dict[str, Any] | None = None) -> None:
        sec = statistics.median(seconds)
        row = {
            "size": size,
            "variant": variant,
            "seconds": sec,
            "all_seconds": seconds,
            "tok_per_s": tokens / sec,
            "ms_per_step": 1000 * sec / args.new,
            "roofline_frac": tokens / sec / roofline,
            "roofline_frac_with_kv": tokens / sec / roofline_kv,
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
            **(extra or {}),
        }
        results.append(row)
        runs = [round(s, 2) for s in seconds]
        print(
            f"RESULT {size} {variant}: {row['tok_per_s']:.0f} tok/s, {row['ms_per_step']:.2f} ms/step, "
            f"peak {row['peak_mem_gib']:.1f} GiB, runs {runs}",
            flush=True,
        )

    def attempt(variant: str, fn: Callable[[], None]) -> None:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        try:
            fn()
        except Exception as exc:  # one broken variant must not lose the others' numbers
            print(f"FAILED {size} {variant}: {type(exc).__name__}: {exc}"[:2000], flush=True)
            results.append({"size": size, "variant": variant, "error": f"{type(exc).__name__}: {exc}"[:2000]})

    if "stock" in args.variants:

        def stock() -> None:
            stock_generate(model, ids[:, :32], 4, t, p)  # warm-up: kernels, handles
            sec, out = timed(lambda: stock_generate(model, ids, args.new, t, p))
            assert out.shape == (args.batch, args.prompt_len + args.new)
            record("hf_generate", [sec])

        attempt("hf_generate", stock)

    nostop = type("Tok", (), {"eos_token_id": None, "pad_token_id": EOS})()
    fast_variants: dict[str, dict[str, Any]] = {
        "fast_compile_graph": dict(compile=True, cuda_graphs=True, top_p_method="search"),
        "fast_compile_graph_sort": dict(compile=True, cuda_graphs=True, top_p_method="sort"),
        "fast_eager_graph_sort": dict(compile=False, cuda_graphs=True, top_p_method="sort"),
        "fast_eager_nograph_sort": dict(compile=False, cuda_graphs=False, top_p_method="sort"),
    }
    for name, opts in fast_variants.items():
        if name not in args.variants:
            continue

        def fast(opts: dict[str, Any] = opts, name: str = name) -> None:
            gen = FastHFGenerator(model, nostop, max_batch_size=args.batch, **opts)
            kw = dict(n=1, temperature=t, top_p=p, max_new_tokens=args.new)
            warm, first = timed(lambda: gen.generate(prompts, seed=0, **kw))  # compile + capture
            assert all(len(c[0]) == args.new for c in first)
            repeats = args.repeats if opts["cuda_graphs"] else 1
            secs = [timed(lambda: gen.generate(prompts, seed=0, **kw))[0] for _ in range(repeats)]
            again = gen.generate(prompts, seed=0, **kw)
            record(name, secs, {"first_call_s": warm, "deterministic": again == first})
            if args.profile and name == "fast_compile_graph":
                # The whole call (prefill + every replayed step); kernels inside graphs are listed.
                text = profile_summary(
                    lambda: gen.generate(prompts, seed=0, **kw), out_dir / f"prof_fast_{size}.txt"
                )
                print(f"PROFILE fast {size} ({args.new} new tokens)\n{text[:7000]}", flush=True)

        attempt(name, fast)

    if "check" in args.variants:

        def check() -> None:
            """Greedy agreement with stock generate: tokens equal before the first divergence (bf16)."""
            gen = FastHFGenerator(model, nostop, max_batch_size=16, compile=True)
            sub = prompts[:16]
            fast = gen.generate(sub, n=1, temperature=0.0, top_p=1.0, max_new_tokens=32, seed=0)
            with torch.inference_mode():
                ref = model.generate(
                    input_ids=ids[:16],
                    attention_mask=torch.ones_like(ids[:16]),
                    do_sample=False,
                    max_new_tokens=32,
                    min_new_tokens=32,
                    eos_token_id=EOS,
                    pad_token_id=EOS,
                )
            prefix = []
            for row, comp in zip(ref[:, args.prompt_len :].tolist(), fast, strict=True):
                k = next((i for i, (a, b) in enumerate(zip(row, comp[0], strict=False)) if a != b), len(row))
                prefix.append(k)
            results.append({"size": size, "variant": "greedy_check", "equal_prefix": prefix, "of": 32})
            print(f"CHECK {size} greedy equal-prefix lengths (of 32): {prefix}", flush=True)

        attempt("greedy_check", check)

    cb_variants = {
        "cb_default": {},
        # CUDA graphs on, KV blocks and batch tokens sized for the workload (128 x 512 tokens in 256-token
        # pages); no compile level: Inductor fails on its 150k-wide top-p cumsum in torch 2.11.
        "cb_tuned": dict(use_cuda_graph=True, max_batch_tokens=8192, num_blocks=args.batch * 4,
                         max_requests_per_batch=args.batch),
    }  # fmt: skip
    for name, cb in cb_variants.items():
        if name not in args.variants:
            continue

        def cbrun(cb: dict[str, Any] = cb, name: str = name) -> None:
            cb_generate(model, prompts[:8], 8, t, p, **cb)  # warm-up
            sec, out = timed(lambda: cb_generate(model, prompts, args.new, t, p, **cb))
            lengths = [len(o.generated_tokens) for o in out.values()]
            if len(lengths) != len(prompts) or min(lengths) != args.new:
                raise RuntimeError(f"generate_batch returned {len(lengths)} outputs, lengths {set(lengths)}")
            record(name, [sec])

        attempt(name, cbrun)

    if args.profile and args.profile_stock and "stock" in args.variants:
        text = profile_summary(
            lambda: stock_generate(model, ids, 16, t, p), out_dir / f"prof_stock_{size}.txt"
        )
        print(f"PROFILE stock {size} (16 new tokens)\n{text[:6000]}", flush=True)

    base = next((r["tok_per_s"] for r in results if r.get("variant") == "hf_generate"), None)
    for r in results:
        if base and "tok_per_s" in r:
            r["speedup_vs_hf_generate"] = r["tok_per_s"] / base
        r.update(weight_gb=wbytes / 1e9, roofline_tok_per_s=roofline, roofline_with_kv_tok_per_s=roofline_kv)
    torch.cuda.empty_cache()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="0.5b,1.5b")
    ap.add_argument(
        "--variants",
        default="stock,fast_compile_graph,fast_compile_graph_sort,fast_eager_graph_sort,check,cb_default,cb_tuned",
    )
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=0.7)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--profile-stock", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "gen_throughput.json")
    args = ap.parse_args()
    args.variants = args.variants.split(",")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    import transformers

    results: list[dict[str, Any]] = []
    for size in args.sizes.split(","):
        results += run_size(size, args, args.out.parent)
        args.out.write_text(json.dumps(_meta(args, transformers.__version__, results), indent=2))

    print("\n| size | variant | tok/s | ms/step | speed-up | HBM roofline (weights) | peak GiB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        if "tok_per_s" in r:
            sp = r.get("speedup_vs_hf_generate")
            speed = f"{sp:.1f}x" if sp else "-"
            print(
                f"| {r['size']} | {r['variant']} | {r['tok_per_s']:,.0f} | {r['ms_per_step']:.2f} | "
                f"{speed} | {100 * r['roofline_frac']:.1f}% | {r['peak_mem_gib']:.1f} |"
            )
        elif "error" in r:
            print(f"| {r['size']} | {r['variant']} | failed: {r['error'][:80]} | | | | |")
    print(f"wrote {args.out}")


def _meta(args: argparse.Namespace, tf_version: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "transformers": tf_version,
        "python": platform.python_version(),
        "workload": {k: v for k, v in vars(args).items() if k != "out"},
        "hbm_bytes_per_s_assumed": HBM_BYTES_PER_S,
        "results": results,
    }


if __name__ == "__main__":
    main()
