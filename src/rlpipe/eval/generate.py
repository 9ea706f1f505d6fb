"""Generation backends behind one interface, and the evaluation of one checkpoint on a suite.

A backend turns tokenised prompts into ``n`` sampled completions each. ``hf`` (transformers
``generate``, left-padded batches) is first-class and runs everywhere; ``vllm`` is an optional
extra used on clusters. Generation is the GPU half of evaluation; scoring runs in a separate CPU
job (``rlpipe.eval.scoring``), so no GPU is held while model-written code executes.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from rlpipe.tracking.logs import Progress

log = logging.getLogger(__name__)


class Generator(Protocol):
    """``generate`` returns, per prompt, ``n`` completions as token ids (eos excluded)."""

    def generate(
        self,
        prompts: list[list[int]],
        *,
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int,
    ) -> list[list[list[int]]]: ...


class HFGenerator:
    """transformers ``generate`` on left-padded batches sorted by prompt length."""

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 256) -> None:
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size

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
        import torch

        device = next(self.model.parameters()).device
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        # One entry per (prompt, sample); length-sorted so batches carry little padding.
        jobs = sorted(
            ((i, s) for i in range(len(prompts)) for s in range(n)), key=lambda j: len(prompts[j[0]])
        )
        out: list[list[list[int]]] = [[[] for _ in range(n)] for _ in prompts]
        torch.manual_seed(seed)
        progress = Progress(log, "generate", len(jobs))
        for start in range(0, len(jobs), self.batch_size):
            batch = jobs[start : start + self.batch_size]
            width = max(len(prompts[i]) for i, _ in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, (i, _) in enumerate(batch):
                ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i])
                mask[row, width - len(prompts[i]) :] = 1
            sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p}
            with torch.inference_mode():
                gen = self.model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    max_new_tokens=max_new_tokens,
                    eos_token_id=eos,
                    pad_token_id=pad,
                    **(sampling if temperature > 0 else {"do_sample": False}),
                )
            for row, (i, s) in enumerate(batch):
                tokens = gen[row, width:].tolist()
                if eos in tokens:
                    tokens = tokens[: tokens.index(eos)]
                out[i][s] = [t for t in tokens if t != pad]
            progress.update(len(batch))
        return out


# Decoder families whose layers are all full attention: FastHFGenerator's static-cache decode is exact there.
FAST_MODEL_TYPES = ("qwen2", "llama", "mistral")


def fast_engine_supported(model: Any) -> bool:
    """Whether ``FastHFGenerator`` can run ``model``: on CUDA, full-attention Qwen2/Llama/Mistral only."""
    device = next(model.parameters()).device
    cfg = model.config.get_text_config(decoder=True)
    sliding = getattr(cfg, "use_sliding_window", False) or (
        getattr(cfg, "model_type", "") == "mistral" and getattr(cfg, "sliding_window", None)
    )
    return device.type == "cuda" and getattr(cfg, "model_type", "") in FAST_MODEL_TYPES and not sliding


class VLLMGenerator:
    """vLLM (``pip install rlpipe[vllm]``) behind the same interface; it loads weights from a directory.

    Kept thin on purpose: vLLM does its own batching, paged KV cache and tensor parallelism, so this
    only maps rlpipe's token-id prompts and sampling settings onto ``LLM.generate``.
    """

    def __init__(
        self, model_dir: str, *, tensor_parallel_size: int = 1, eos_ids: set[int] | None = None
    ) -> None:
        try:
            from vllm import LLM
        except ImportError as exc:
            raise ImportError(
                "evaluation.backend vllm needs vLLM: `pip install rlpipe[vllm]` on a GPU machine "
                "(or use backend: hf)"
            ) from exc
        self.llm = LLM(model=model_dir, tensor_parallel_size=tensor_parallel_size, seed=0)
        self.eos_ids = eos_ids or set()

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
        from vllm import SamplingParams, TokensPrompt

        params = SamplingParams(
            n=n, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=seed
        )
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False
        )
        return [[strip_eos(list(c.token_ids), self.eos_ids) for c in o.outputs] for o in outputs]


def strip_eos(tokens: list[int], eos_ids: set[int]) -> list[int]:
    """``tokens`` cut before the first eos: every backend returns completions without it."""
    cut = next((k for k, t in enumerate(tokens) if t in eos_ids), len(tokens))
    return tokens[:cut]


# The transformers-based backends make_generator builds. ``hf``: on CUDA the slot-refill engine
# (issue 14: 27x stock ``generate`` at 1.5B on long, uneven completions, where a static batch waits for
# its longest row), elsewhere ``generate``; ``hf-refill``: the refill engine on any device (eager on
# CPU); ``hf-static``: the static-cache engine (``FastHFGenerator``, the training rollouts' default).
HF_BACKENDS = ("hf", "hf-refill", "hf-static")


def refill_engine_supported(model: Any) -> bool:
    """Whether ``RefillGenerator`` can run ``model``: full-attention Qwen2/Llama/Mistral, any device."""
    cfg = model.config.get_text_config(decoder=True)
    sliding = getattr(cfg, "use_sliding_window", False) or (
        getattr(cfg, "model_type", "") == "mistral" and getattr(cfg, "sliding_window", None)
    )
    return getattr(cfg, "model_type", "") in FAST_MODEL_TYPES and not sliding


def make_generator(backend: str, model: Any, tokenizer: Any, *, batch_size: int = 256) -> Generator:
    """An ``hf``-family backend for a loaded model: an rlpipe engine where it applies, else ``generate``.

    ``hf``: on CUDA with a full-attention Qwen2/Llama/Mistral model ``RefillGenerator`` (per-slot cache,
    a finished row's slot refilled at once, CUDA-graph decode; bench/README.md); elsewhere (CPU, other
    architectures) transformers ``generate``. ``hf-refill``: ``RefillGenerator`` on any device (eager
    on CPU). ``hf-static``: ``FastHFGenerator`` (static cache, on CUDA). ``vllm`` loads from a
    directory: see ``VLLMGenerator``. ``batch_size`` caps the rows (slots) decoded together.
    """
    if backend not in HF_BACKENDS:
        raise ValueError(f"make_generator builds {HF_BACKENDS}, not {backend!r} (vllm: VLLMGenerator)")
    on_cuda = next(model.parameters()).device.type == "cuda"
    if (
        backend in ("hf", "hf-refill")
        and refill_engine_supported(model)
        and (on_cuda or backend == "hf-refill")
    ):
        from rlpipe.eval.refill import RefillGenerator

        log.info("generation engine: RefillGenerator (slot refill + CUDA graphs), max slots %d", batch_size)
        return RefillGenerator(model, tokenizer, max_batch_size=batch_size)
    if backend == "hf-static" and fast_engine_supported(model):
        from rlpipe.eval.fast_generate import FastHFGenerator

        log.info("generation engine: FastHFGenerator (static cache + CUDA graphs), max batch %d", batch_size)
        return FastHFGenerator(model, tokenizer, max_batch_size=batch_size)
    log.info("generation engine: transformers generate, batch %d", batch_size)
    return HFGenerator(model, tokenizer, batch_size=batch_size)


def render_prompts(
    tokenizer: Any, rows: list[dict[str, Any]], use_chat_template: bool = True
) -> list[list[int]]:
    """Token ids of each row's prompt: chat template with a generation prompt, or the raw text."""
    rendered = []
    for row in rows:
        if use_chat_template:
            text = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        else:
            text = "".join(m["content"] for m in row["prompt"])
        rendered.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return rendered


def generate_for_suite(
    generator: Generator,
    tokenizer: Any,
    tasks: dict[str, dict[str, Any]],
    rows_by_task: dict[str, list[dict[str, Any]]],
    seed: int,
) -> list[dict[str, Any]]:
    """Completions for every item of every task: one record per (item, sample).

    An engine that takes a length limit and a sample count per prompt (``per_prompt_budgets``: the
    refill engine) gets all tasks with the same temperature and top-p in one call: each task's longest
    completions then decode beside the other tasks' prompts, not alone at the end of a call of their
    own (on a reasoning suite a task's longest completion often reaches its cap: 16k-28k sequential
    steps with most slots idle). Other engines get one call per task. A call's seed is ``seed * 1000``
    plus the index of its first task (sorted by name), so a task called alone keeps its seed.
    """
    ordered = sorted(tasks)
    completions: dict[str, list[list[list[int]]]] = {}
    for first, group in _call_groups(generator, tasks, ordered):
        prompts, counts, limits = [], [], []
        for task in group:
            spec, rows = tasks[task], rows_by_task[task]
            log.info("task %s: %d items x %d samples", task, len(rows), spec["samples"])
            prompts += render_prompts(tokenizer, rows, spec.get("chat_template", True))
            counts += [spec["samples"]] * len(rows)
            limits += [spec["generation"]["max_new_tokens"]] * len(rows)
        gen = tasks[group[0]]["generation"]
        kwargs = dict(temperature=gen["temperature"], top_p=gen["top_p"], seed=seed * 1000 + first)
        started = time.perf_counter()
        if len(group) == 1:
            spec = tasks[group[0]]
            max_new = spec["generation"]["max_new_tokens"]
            out = generator.generate(prompts, n=spec["samples"], max_new_tokens=max_new, **kwargs)
        else:
            log.info(
                "tasks %s: one call, %d prompts, %d completions", ", ".join(group), len(prompts), sum(counts)
            )
            out = generator.generate(  # type: ignore[call-arg]
                prompts,
                n=1,
                max_new_tokens=max(limits, default=1),
                max_new_per_prompt=limits,
                n_per_prompt=counts,
                **kwargs,
            )
        log.info(
            "%s", call_summary(out, time.perf_counter() - started, getattr(generator, "last_stats", None))
        )
        for task in group:
            completions[task], out = out[: len(rows_by_task[task])], out[len(rows_by_task[task]) :]
    records: list[dict[str, Any]] = []
    for task in ordered:
        max_new = tasks[task]["generation"]["max_new_tokens"]
        for row, samples in zip(rows_by_task[task], completions[task], strict=True):
            for s, tokens in enumerate(samples):
                records.append(
                    {
                        "id": row["id"],
                        "task": task,
                        "domain": row["domain"],
                        "sample": s,
                        "completion": tokenizer.decode(tokens, skip_special_tokens=True),
                        "n_tokens": len(tokens),
                        "truncated": len(tokens) >= max_new,
                    }
                )
    return records


def call_summary(out: list[list[list[int]]], seconds: float, stats: dict[str, Any] | None) -> str:
    """One log line on a generation call: what it produced and at what rate, and, for an rlpipe engine,
    how busy its slots were (where an evaluation job's GPU time went)."""
    n = sum(len(samples) for samples in out)
    tokens = sum(len(c) for samples in out for c in samples)
    rate = tokens / max(seconds, 1e-9)
    line = f"generated {n} completions, {tokens} tokens in {seconds:.1f} s ({rate:.0f} tok/s)"
    if stats:
        steps, slot_steps = stats.get("decode_steps", 0), stats.get("slot_steps", 0)
        line += f"; {stats.get('slots')} slots, {steps} decode steps"
        if slot_steps:
            line += f", slot efficiency {100 * stats.get('tokens', tokens) / slot_steps:.0f}%"
        if stats.get("drain_s"):
            line += f", {stats['drain_tokens'] / stats['drain_s']:.0f} tok/s until the queue emptied"
        if stats.get("preempted"):
            line += f", {stats['preempted']} rows preempted"
    return line


def _call_groups(
    generator: Generator, tasks: dict[str, dict[str, Any]], ordered: list[str]
) -> list[tuple[int, list[str]]]:
    """The generation calls: (index of the first task, tasks), one task each unless the engine takes
    per-prompt budgets, then one per (temperature, top-p), in the order of their first task."""
    if not getattr(generator, "per_prompt_budgets", False):
        return [(i, [task]) for i, task in enumerate(ordered)]
    groups: dict[tuple[float, float], tuple[int, list[str]]] = {}
    for i, task in enumerate(ordered):
        gen = tasks[task]["generation"]
        groups.setdefault((gen["temperature"], gen["top_p"]), (i, []))[1].append(task)
    return list(groups.values())
