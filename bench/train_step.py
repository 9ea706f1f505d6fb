"""Training step time on one GPU: stock TRL ``GRPOTrainer``, GRPO and rlpipe PPO with fast / refill rollouts.

Why: a GRPO/PPO step is a rollout (``generations`` completions per prompt) plus a policy update; at
0.5B-1.5B with 256-token completions the rollout through stock ``model.generate`` dominates. The
product's fast rollouts (``rlpipe.train.rollout``: ``FastHFGenerator``, the evaluation engine, on the
trainer's own weights) replace only the rollout, in TRL's trainer and in rlpipe's PPO alike; this
script measures both against their stock path, plus the training phase's MFU and peak memory.

Configurations (``--configs``): ``trl_stock`` (TRL as shipped), ``trl_fast_rollout`` (the product's
``with_fast_rollouts(GRPOTrainer)``), ``trl_refill_rollout`` (``with_fast_rollouts(GRPOTrainer,
engine="refill")``: ``RefillGenerator``, slot refill), ``trl_fast_rollout_no_ckpt`` (fast, no gradient
checkpointing), ``ppo_hf`` / ``ppo_fast`` / ``ppo_refill`` (``rlpipe.train.ppo.PPOTrainer`` with
``rollout.engine`` hf / fast / refill: the same workload shape, 1 PPO epoch in minibatches of
``--micro-batch``, shared critic, no reference model). A row's ``rollout_engine`` is the engine that ran.
``--lora`` trains a LoRA adapter (r 16, all linear layers) instead of all weights. PPO memory options:
``--ppo-micro-batch N`` (``ppo.micro_batch_size``: N sequences per forward/backward, the minibatch's
gradient accumulated over them), ``--grad-ckpt`` (``ppo.gradient_checkpointing``), ``--critic separate``
(a second transformer as the critic) and ``--domains K`` (the prompts spread over K domains; K >= 2
trains PPO + PCGrad, which keeps one float32 gradient copy of all trainable weights per domain).

Models are random-init Qwen2.5-shaped (``gen_throughput.SHAPES``) in bf16, pure bf16 training (the
timing needs no quality); prompts are 256 tokens of a word-level tokenizer built here (no hub access
on the GPU machine). Each configuration runs ``--steps`` steps; the first (compile, capture) is
reported apart and the median of the others is the step time.

Long, uneven completions (issue 14): a random-init model almost never samples eos, so every completion
runs to ``--new``. ``--eos-median N`` gives ``lm_head`` an eos logit bias (a biased ``nn.Linear`` on the
same weight, so stock ``generate``, ``FastHFGenerator`` and ``RefillGenerator`` all honour it; for PPO
set again on the policy the trainer loaded, since ``save_pretrained`` drops it), calibrated on the model
so that each row stops with probability ``p = 1 - 0.5 ** (1 / N)`` per token at temperature 1 and top-p
1: completion lengths are geometric with median N, capped at ``--new`` (e.g. ``--eos-median 300 --new
2048``). Each row records per step the completions' lengths (mean, median, p90, max; GRPO: this
process's completion masks, TRL's own logged mean/max beside them; PPO: ``ro.mask``), the rollout and
generation seconds (PPO: ``sample`` apart from ``prepare``) and *useful* tokens/s = completion tokens
produced (eos included, no padding) / rollout seconds.

MFU = model FLOPs of the training phase (forward + backward of every sequence the update trains on:
6 x matmul parameters x tokens plus causal attention, lm_head on completion positions only; LoRA
counts 4 x, frozen weights need no weight gradients; recomputation under gradient checkpointing and a
separate critic's FLOPs are not counted) over training-phase time (step minus rollout), against
``--peak-tflops`` (default 989: H100/H200 SXM dense bf16 by the datasheet; a plain 8k bf16 matmul
measures ~790 on this H200). Prints a table last and writes JSON.

    python bench/train_step.py --sizes 1.5b --out bench/results/train_step_h200.json
    python bench/train_step.py --sizes 7b --lora --configs trl_fast_rollout --out train_step_7b_lora.json
    python bench/train_step.py --sizes 7b --configs ppo_fast --ppo-micro-batch 4 --grad-ckpt --out ppo_7b.json
    # rollout phase, fast vs refill engine, long uneven completions (lengths geometric, median 300, cap 2048)
    python bench/train_step.py --sizes 1.5b --configs ppo_fast,ppo_refill --eos-median 300 --new 2048 \
        --micro-batch 16 --ppo-micro-batch 4 --steps 2 --out train_step_rollout_1.5b.json
    # FSDP full fine-tuning on 2 GPUs (one command; --prompts-per-step is per GPU):
    accelerate launch --config_file bench/accelerate_fsdp2.yaml bench/train_step.py --sizes 7b \\
        --configs trl_stock --prompts-per-step 8 --out train_step_7b_fsdp2.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_throughput import EOS, SHAPES  # noqa: E402

from rlpipe.models import unwrap_peft  # noqa: E402

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True)  # fmt: skip
CONFIGS = (
    "trl_stock",
    "trl_fast_rollout",
    "trl_refill_rollout",
    "trl_fast_rollout_no_ckpt",
    "ppo_hf",
    "ppo_fast",
    "ppo_refill",
)
# The rollout engine each configuration asks for (``rlpipe.train.rollout``: fast / refill; hf: generate).
ENGINE = {"trl_stock": "hf", "trl_refill_rollout": "refill", "ppo_hf": "hf", "ppo_refill": "refill"}
LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"}
SCORER = "bench_distinct_share"
RANK = int(os.environ.get("RANK", "0"))
WORLD = int(os.environ.get("WORLD_SIZE", "1"))


def say(msg: str) -> None:
    if RANK == 0:
        print(msg, flush=True)


def device() -> str:
    if not torch.cuda.is_available():
        return "cpu"
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    return f"cuda:{local}"


def shape_of(size: str) -> dict[str, Any]:
    return TINY if size == "tiny" else SHAPES[size]


def train_flops_per_seq(shape: dict[str, Any], seq: float, completion: float, lora: bool) -> float:
    """Model FLOPs to train on one sequence of ``seq`` tokens, ``completion`` of them scored.

    Forward: 2 x matmul weights x tokens for the decoder layers, 2 x d x vocab for the lm_head over the
    ``completion + 1`` positions whose logits the trainers compute, and causal attention (QK^T and PV,
    half the square): 2 x layers x heads x head_dim x seq^2. Backward doubles the forward for full
    fine-tuning (input and weight gradients) and equals it for LoRA (input gradients only; the
    adapters' own FLOPs are under 1%).
    """
    d, inter, layers = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    heads, kv = shape["num_attention_heads"], shape["num_key_value_heads"]
    hd = d // heads
    per_layer = d * heads * hd * 2 + d * kv * hd * 2 + 3 * d * inter  # q, o; k, v; gate, up, down
    forward = 2 * layers * per_layer * seq + 2 * d * shape["vocab_size"] * (completion + 1)
    forward += 2 * layers * heads * hd * seq**2
    return forward * (2 if lora else 3)


def word_tokenizer(vocab: int) -> Any:
    """A word-level tokenizer whose token ``i`` is the word ``t{i}``: decodes any id the model emits."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    out = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=f"t{EOS}", pad_token=f"t{EOS}")
    out.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"  # the prompt, verbatim
    return out


def build_model(size: str, dev: str) -> Any:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**shape_of(size), max_position_embeddings=32768, rope_theta=1_000_000.0,
                         use_sliding_window=False, eos_token_id=EOS, pad_token_id=EOS)  # fmt: skip
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    dtype = torch.bfloat16 if dev.startswith("cuda") else torch.float32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # initialise in bf16 directly: a 7B fp32 copy would be 30 GB
    try:
        with torch.device(dev):
            model = Qwen2ForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model


def eos_stop_probability(median: float) -> float:
    """The per-step stop probability whose geometric completion length has median ``median``."""
    return 1.0 - 0.5 ** (1.0 / median)


def _bisect(f: Any, lo: float, hi: float, iters: int = 100) -> float:
    """The x in [lo, hi] where the decreasing function f crosses zero."""
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


@torch.no_grad()
def calibrate_eos_bias(
    model: Any, median: float, cap: int, rows: int = 64, length: int = 128, chunk: int = 8
) -> dict[str, float]:
    """The eos logit bias under which completion lengths have median ``median`` (geometric per row).

    Runs the model (no bias) on ``rows`` random prompts of ``length`` tokens and takes, per position,
    the eos logit ``e`` and the log-sum-exp ``l`` of all other logits: with bias ``b`` the eos
    probability there is ``sigmoid(e + b - l)``. The first guess, for a stop probability
    ``p = 1 - 0.5 ** (1 / median)`` everywhere, is ``logit(p) + median(l) - mean(e)``. It is exact
    for the tied shapes (tiny, 0.5B, 1.5B: the eos row of ``lm_head`` is the pad embedding, which Qwen2
    zero-initialises, and pad = eos here, so ``e`` = 0, and ``l`` varies by ~0.002). Where the eos row
    is random (untied, 7B) ``e`` varies (std ~0.02 sqrt(hidden) = 1.2), partly per row (the context's
    average), so rows stop at different rates and the mean rate rises ~``exp(std^2 / 2)``; hence the
    bias returned solves, by bisection, ``mean over rows of (1 - q_r) ** median = 0.5`` with ``q_r`` a
    row's mean stop probability: the median of that mixture of geometric lengths is ``median``.
    """
    lm = unwrap_peft(model)
    head = lm.lm_head
    dev = head.weight.device
    ids = torch.randint(1, EOS, (rows, length), generator=torch.Generator().manual_seed(11)).to(dev)
    was_training = lm.training
    lm.eval()
    eos, lse = [], []
    try:
        for start in range(0, rows, chunk):  # [chunk, length, vocab] fp32 logits at a time
            logits = lm(input_ids=ids[start : start + chunk], use_cache=False).logits.float()
            if head.bias is not None:
                logits -= head.bias.float()
            eos.append(logits[..., EOS].clone())
            logits[..., EOS] = float("-inf")
            lse.append(logits.logsumexp(dim=-1))
            del logits
    finally:
        lm.train(was_training)
    e, rest = torch.cat(eos).double(), torch.cat(lse).double()
    gap = e - rest  # [rows, length]: eos logit against all the others

    def row_rates(b: float) -> torch.Tensor:
        return torch.sigmoid(gap + b).mean(dim=1)

    def survival(b: float, t: float) -> float:  # P(length > t), the rows' geometric lengths mixed
        return float(((1 - row_rates(b)) ** t).mean())

    p = eos_stop_probability(median)
    first = math.log(p / (1 - p)) + float(rest.median()) - float(e.mean())
    solved = _bisect(lambda b: survival(b, median) - 0.5, first - 30.0, first + 30.0)
    stored = float(torch.tensor(solved, dtype=head.weight.dtype))  # what the model will add
    q = row_rates(stored)
    return {
        "eos_bias": stored,
        "eos_bias_first_guess": first,
        "eos_logit_std": float(e.std()),
        "eos_p": p,
        "eos_p_mean": float(q.mean()),
        "eos_p_row_cv": float(q.std() / q.mean()),  # spread of the rows' stop rates
        # with the stored bias: uncapped median, and the mean capped at ``cap`` (lengths count eos)
        "expected_median_completion_length": _bisect(lambda t: survival(stored, t) - 0.5, 0.0, 1e8),
        "expected_mean_completion_length": float(((1 - (1 - q) ** cap) / q).mean()),
    }


def set_eos_bias(model: Any, value: float) -> None:
    """Give ``lm_head`` a bias, zero but ``value`` at eos, sharing its weight Parameter (ties kept).

    A module of its own, so every engine's ``model(...)`` honours it (stock ``generate``,
    ``FastHFGenerator``, ``RefillGenerator``: all go through ``Qwen2ForCausalLM.forward``). The
    bias is a frozen buffer-like Parameter: it neither trains nor survives ``save_pretrained``.
    """
    lm = unwrap_peft(model)
    old = lm.lm_head
    if type(old) is not torch.nn.Linear:
        raise TypeError(f"lm_head is a {type(old).__name__}, not a plain nn.Linear: cannot add an eos bias")
    head = torch.nn.Linear(old.in_features, old.out_features, bias=True, device="meta")
    head.weight = old.weight  # the same Parameter: the optimizer and a tied embedding keep it
    bias = torch.zeros(old.out_features, dtype=old.weight.dtype, device=old.weight.device)
    bias[EOS] = value
    head.bias = torch.nn.Parameter(bias, requires_grad=False)
    lm.lm_head = head


def apply_eos_median(model: Any, args: argparse.Namespace) -> dict[str, Any]:
    """With ``--eos-median N``: calibrate and set the eos bias; the fields it adds to the row."""
    if args.eos_median is None:
        return {}
    fields = calibrate_eos_bias(model, args.eos_median, args.new)
    set_eos_bias(model, fields["eos_bias"])
    fields["eos_median"] = args.eos_median
    say(f"eos bias {fields['eos_bias']:.3f} (first guess {fields['eos_bias_first_guess']:.3f}): stop "
        f"probability {fields['eos_p_mean']:.5f} (rows' cv {fields['eos_p_row_cv']:.2f}), expected median "
        f"{fields['expected_median_completion_length']:.0f} (cap {args.new}), expected mean "
        f"{fields['expected_mean_completion_length']:.0f}")  # fmt: skip
    return fields


def length_stats(lengths: list[int]) -> dict[str, float]:
    """Completion lengths (tokens, the eos included) of one rollout: mean, median, p90, max, total."""
    xs = sorted(lengths)
    if not xs:  # a step that generated nothing (TRL reusing buffered completions)
        return {"mean": 0.0, "median": 0.0, "p90": 0.0, "max": 0, "min": 0, "tokens": 0}
    p90 = statistics.quantiles(xs, n=10, method="inclusive")[-1] if len(xs) > 1 else float(xs[0])
    return {"mean": statistics.mean(xs), "median": statistics.median(xs), "p90": p90, "max": xs[-1],
            "min": xs[0], "tokens": sum(xs)}  # fmt: skip


def prompts(n: int, length: int) -> list[str]:
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(1, EOS, (n, length), generator=g).tolist()
    return [" ".join(f"t{i}" for i in row) for row in ids]


def distinct_share(completion: str) -> float:
    """Varies between completions, so advantages are non-zero (the update has work to do)."""
    return len(set(completion.split())) / 1000.0


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def clocked(fn: Callable[..., Any], *a: Any, **k: Any) -> tuple[float, Any]:
    """Seconds ``fn(*a, **k)`` takes on the device (synchronised before and after), and its result."""
    sync()
    t0 = time.perf_counter()
    out = fn(*a, **k)
    sync()
    return time.perf_counter() - t0, out


def peak_gib() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def run_grpo(size: str, name: str, args: argparse.Namespace) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rlpipe.train.grpo import lora_config
    from rlpipe.train.rollout import with_fast_rollouts

    dev = device()
    model = build_model(size, dev)
    eos_fields = apply_eos_median(model, args)
    tok = word_tokenizer(model.config.vocab_size)
    data = Dataset.from_dict({"prompt": prompts(args.prompts_per_step * args.steps * WORLD, args.prompt_len)})

    def reward(completions: list[str], **_: Any) -> list[float]:
        return [distinct_share(c) for c in completions]

    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    options = dict(
        output_dir=tempfile.mkdtemp(prefix="grpo_"),
        per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=args.prompts_per_step * args.generations // args.micro_batch,
        num_generations=args.generations,
        max_completion_length=args.new,
        max_prompt_length=args.prompt_len,
        learning_rate=1e-6,
        bf16=dev.startswith("cuda"),
        max_steps=args.steps,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        temperature=1.0,
        top_p=1.0,  # TRL's default; pure sampling, as the PPO rows (the eos calibration assumes it)
        seed=0,
    )
    if name == "trl_fast_rollout_no_ckpt":
        options["gradient_checkpointing"] = False
    config = GRPOConfig(**{k: v for k, v in options.items() if k in fields})
    times: list[float] = []
    rollouts: list[float] = []
    generates: list[float] = []
    step_lengths: list[list[int]] = []
    pending: dict[str, Any] = {}

    class Clock(TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            sync()
            pending.update(rollout=0.0, generate=0.0, lengths=[])
            self.t0 = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            sync()
            times.append(time.perf_counter() - self.t0)
            rollouts.append(pending["rollout"])
            generates.append(pending["generate"])
            step_lengths.append(pending["lengths"])

    engine = ENGINE.get(name, "fast")
    base = GRPOTrainer if engine == "hf" else with_fast_rollouts(GRPOTrainer, engine=engine)

    class Timed(base):  # type: ignore[misc, valid-type]
        """Adds the rollout (generation + rewards) and generation times, and the completions' lengths
        (this process's: tokens up to and including eos), to the step they belong to."""

        def _generate_and_score_completions(self, *a: Any, **k: Any) -> Any:
            secs, out = clocked(super()._generate_and_score_completions, *a, **k)
            pending["rollout"] += secs
            pending["lengths"] += [int(x) for x in out["completion_mask"].sum(dim=1).tolist()]
            return out

        def _generate_single_turn(self, *a: Any, **k: Any) -> Any:
            secs, out = clocked(super()._generate_single_turn, *a, **k)
            pending["generate"] += secs
            return out

    trainer = Timed(model=model, reward_funcs=reward, args=config, train_dataset=data, processing_class=tok,
                    peft_config=lora_config(LORA if args.lora else None), callbacks=[Clock()])  # fmt: skip
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    fast = getattr(trainer, "_fast_rollout", None)
    row = summarise(size, name, args, times, rollouts, generates, step_lengths)
    row.update(eos_fields)
    row["gradient_checkpointing"] = config.gradient_checkpointing
    row["rollout_engine"] = getattr(fast, "engine", "fast") if fast is not None else "hf"
    # TRL's own per-step length metrics (gathered over processes), next to this process's above
    row["trl_logged_lengths"] = {
        k.removeprefix("completions/"): [h.get(k) for h in logs]
        for k in ("completions/mean_length", "completions/max_length", "completions/clipped_ratio")
    }
    del trainer, model
    return row


def run_ppo(size: str, name: str, args: argparse.Namespace, model_dirs: dict[str, str]) -> dict[str, Any]:
    from rlpipe.rewards.registry import SCORERS
    from rlpipe.train.methods import build_spec
    from rlpipe.train.ppo import PPOTrainer

    SCORERS.setdefault(SCORER, lambda response, ground_truth, extra=None: distinct_share(response))
    if size not in model_dirs:  # PPOTrainer loads from disk: save the random model once per size
        path = Path(tempfile.mkdtemp(prefix=f"ppo_{size}_")) / "model"
        model = build_model(size, device())
        model.generation_config.eos_token_id = EOS
        model.save_pretrained(path)
        word_tokenizer(model.config.vocab_size).save_pretrained(path)
        del model
        model_dirs[size] = str(path)
    # round-robin domains: every step's batch holds all of them
    domains = [f"d{i}" for i in range(args.domains)] if args.domains > 1 else ["bench"]
    rows = [
        {"prompt": [{"role": "user", "content": p}], "ground_truth": "", "scorer": SCORER,
         "domain": domains[i % len(domains)]}
        for i, p in enumerate(prompts(args.prompts_per_step * args.steps, args.prompt_len))
    ]  # fmt: skip
    ppo = {
        "rollout_batch_size": args.prompts_per_step,
        "samples_per_prompt": args.generations,
        "minibatch_size": args.micro_batch,
        "ppo_epochs": 1,
        "max_new_tokens": args.new,
        "temperature": 1.0,
        "critic": args.critic,
        "kl_coef": 0.0,
        "micro_batch_size": args.ppo_micro_batch,
        "gradient_checkpointing": args.grad_ckpt,
    }
    run = {
        "name": f"bench-{name}",
        "seed": 0,
        "steps": args.steps,
        "save_every": args.steps,
        "method": "ppo",
        "lora": LORA if args.lora else None,
        "pcgrad": args.domains > 1,
        "ppo": ppo,
        "rollout": {"engine": ENGINE.get(name, "fast")},
    }
    tmp = Path(tempfile.mkdtemp(prefix="ppo_run_"))
    trainer = PPOTrainer(
        model_dirs[size],
        rows,
        spec=build_spec(run),
        checkpoints_dir=tmp / "ckpt",
        state_dir=tmp / "state",
        metrics_path=tmp / "metrics.jsonl",
    )
    # AutoTokenizer maps a qwen2 directory to Qwen2Tokenizer, which rebuilds the pre-tokenizer and so
    # loses the word-level one; the trainer used it only for pad/eos ids so far, which are the same.
    trainer.tokenizer = word_tokenizer(trainer.policy.config.vocab_size)
    trainer.tokenizer.padding_side = "left"
    # save_pretrained dropped the bias (the config knows none): set it on the loaded policy, under
    # its PEFT wrapper if any; the engine decodes that module (the critic and reference never sample)
    eos_fields = apply_eos_median(trainer.policy, args)
    dtype = str(next(trainer.policy.parameters()).dtype)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    times, rollouts, generates, step_lengths = [], [], [], []
    for _ in range(args.steps):
        rows = trainer.next_rows()  # the next prompt rows (host-side list slicing, outside the clock)
        generate, ro = clocked(trainer.sample, rows)  # trainer.rollout = prepare(sample(rows))
        prepare, ro = clocked(trainer.prepare, ro)
        update, _ = clocked(trainer.update, ro)
        times.append(generate + prepare + update)
        rollouts.append(generate + prepare)
        generates.append(generate)
        step_lengths.append([int(x) for x in ro.mask.sum(dim=1).tolist()])
        trainer.step += 1
    row = summarise(size, name, args, times, rollouts, generates, step_lengths)
    row.update(eos_fields)
    row.update(
        gradient_checkpointing=args.grad_ckpt,
        rollout_engine=trainer.fast_rollout.engine if trainer.fast_rollout is not None else "hf",
        policy_dtype=dtype,
        ppo_micro_batch=trainer.micro_batch,
        critic=args.critic,
        pcgrad_domains=args.domains if run["pcgrad"] else None,
    )
    del trainer
    return row


def summarise(
    size: str,
    name: str,
    args: argparse.Namespace,
    times: list[float],
    rollouts: list[float],
    generates: list[float],
    step_lengths: list[list[int]],
) -> dict[str, Any]:
    """Step, rollout and generation medians over steps 2.., completion lengths, tokens/s (all and
    useful), training-phase MFU, peak memory."""
    rest = slice(1, None) if len(times) > 1 else slice(None)
    step = statistics.median(times[rest])
    rollout = statistics.median(rollouts[rest])
    generate = statistics.median(generates[rest])
    train = max(step - rollout, 1e-9)
    n = args.prompts_per_step * args.generations
    stats = [length_stats(x) for x in step_lengths]
    lengths = [s["mean"] for s in stats]
    pooled = length_stats([x for xs in step_lengths[rest] for x in xs])
    # useful: the completion tokens the rollout produced (eos included, no padding) per second
    useful = [s["tokens"] / max(r, 1e-9) for s, r in zip(stats, rollouts, strict=True)]
    useful_gen = [s["tokens"] / max(g, 1e-9) for s, g in zip(stats, generates, strict=True)]
    completion = statistics.mean(lengths) if lengths else float(args.new)
    flops = n * train_flops_per_seq(shape_of(size), args.prompt_len + completion, completion, args.lora)
    row = {
        "size": size,
        "config": name + ("_lora" if args.lora else ""),
        "lora": LORA if args.lora else None,
        "world_size": WORLD,
        "step_times_s": times,
        "rollout_times_s": rollouts,
        "first_step_s": times[0],
        "step_s": step,
        "rollout_s": rollout,
        "generate_times_s": generates,
        "generate_s": generate,
        "train_phase_s": train,
        "completions_per_step": n,
        "max_new_tokens": args.new,
        "mean_completion_length": lengths,
        "completion_length_stats": stats,  # per step: mean, median, p90, max, min, tokens
        "completion_length_pooled": pooled,  # all completions of steps 2..
        "completion_tokens_per_s": n * completion / step,
        "rollout_useful_tokens_per_s_steps": useful,
        "rollout_useful_tokens_per_s": statistics.median(useful[rest]),
        "generate_useful_tokens_per_s": statistics.median(useful_gen[rest]),
        "train_tflop_per_step": flops / 1e12,
        "train_tflops": flops / train / 1e12,
        "mfu": flops / train / (args.peak_tflops * 1e12),
        "peak_mem_gib": peak_gib(),
    }
    say(f"RESULT {size} {row['config']}: step {step:.2f} s (first {times[0]:.1f} s), "
        f"rollout {rollout:.2f} s (generate {generate:.2f} s), train {train:.2f} s, "
        f"{row['completion_tokens_per_s']:.0f} tok/s, rollout useful "
        f"{row['rollout_useful_tokens_per_s']:.0f} tok/s, MFU {row['mfu']:.1%}, "
        f"peak {row['peak_mem_gib'] or 0:.1f} GiB, mean lengths {[round(x) for x in lengths]}, "
        f"median {pooled['median']:.0f} p90 {pooled['p90']:.0f} max {pooled['max']} "
        f"(cap {args.new})")  # fmt: skip
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="0.5b,1.5b")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--lora", action="store_true", help="train a LoRA adapter (r 16, all-linear)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--prompts-per-step", type=int, default=16, help="per process")
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--micro-batch", type=int, default=32)
    ap.add_argument(
        "--ppo-micro-batch",
        type=int,
        default=None,
        help="PPO: sequences per forward/backward (ppo.micro_batch_size); default the minibatch",
    )
    ap.add_argument("--grad-ckpt", action="store_true", help="PPO: ppo.gradient_checkpointing")
    ap.add_argument("--critic", choices=("shared", "separate"), default="shared", help="PPO: ppo.critic")
    ap.add_argument("--domains", type=int, default=1, help="PPO: prompts over K domains; K >= 2: PCGrad")
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--new", type=int, default=256, help="max_new_tokens: the completion-length cap")
    ap.add_argument(
        "--eos-median",
        type=float,
        default=None,
        help="give the random model an eos logit bias so completion lengths are geometric with this "
        "median (capped at --new); default: no bias (completions run to --new)",
    )
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak per GPU for MFU")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "train_step.json")
    args = ap.parse_args()
    import transformers
    import trl

    if args.eos_median is not None and args.eos_median < 1:
        ap.error("--eos-median must be at least 1")
    unknown = set(args.configs.split(",")) - set(CONFIGS)
    if unknown:
        ap.error(f"unknown --configs {sorted(unknown)}; known: {', '.join(CONFIGS)}")
    rows: list[dict[str, Any]] = []
    model_dirs: dict[str, str] = {}
    for size in args.sizes.split(","):
        for name in args.configs.split(","):
            try:
                row = (
                    run_ppo(size, name, args, model_dirs)
                    if name.startswith("ppo")
                    else run_grpo(size, name, args)
                )
                rows.append(row)
            except Exception as exc:  # keep the other configurations' numbers
                say(f"FAILED {size} {name}: {type(exc).__name__}: {exc}"[:2000])
                rows.append({"size": size, "config": name, "error": f"{type(exc).__name__}: {exc}"[:2000]})
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            meta = {
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                "world_size": WORLD,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "trl": trl.__version__,
                "peak_tflops": args.peak_tflops,
                "workload": {k: v for k, v in vars(args).items() if k != "out"},
                "results": rows,
            }
            if RANK == 0:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(meta, indent=2))
    say(table(rows))
    say(f"wrote {args.out}")


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table: speed-up against each size's stock row of the same family (TRL / PPO)."""
    lines = [
        "| size | config | engine | step s | first step s | rollout s | generate s | train s | speed-up "
        "| tok/s | rollout useful tok/s | length median / p90 / max | MFU (train) | grad ckpt | peak GiB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|",
    ]
    base = {
        (r["size"], r["config"].startswith("ppo")): r["step_s"]
        for r in rows
        if r.get("config", "").removesuffix("_lora") in ("trl_stock", "ppo_hf") and "step_s" in r
    }
    for r in rows:
        if "step_s" not in r:
            lines.append(f"| {r['size']} | {r['config']} | failed: {r['error'][:80]} |" + " |" * 12)
            continue
        ref = base.get((r["size"], r["config"].startswith("ppo")))
        sp = f"{ref / r['step_s']:.1f}x" if ref else "-"
        mem = f"{r['peak_mem_gib']:.1f}" if r["peak_mem_gib"] is not None else "-"
        ln = r["completion_length_pooled"]
        lines.append(
            f"| {r['size']} | {r['config']} | {r['rollout_engine']} | {r['step_s']:.2f} "
            f"| {r['first_step_s']:.1f} | {r['rollout_s']:.2f} | {r['generate_s']:.2f} "
            f"| {r['train_phase_s']:.2f} | {sp} | {r['completion_tokens_per_s']:,.0f} "
            f"| {r['rollout_useful_tokens_per_s']:,.0f} | {ln['median']:.0f} / {ln['p90']:.0f} / {ln['max']} "
            f"| {r['mfu']:.1%} | {r['gradient_checkpointing']} | {mem} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
