"""Training step time on one GPU: stock TRL ``GRPOTrainer``, GRPO and rlpipe PPO with fast rollouts.

Why: a GRPO/PPO step is a rollout (``generations`` completions per prompt) plus a policy update; at
0.5B-1.5B with 256-token completions the rollout through stock ``model.generate`` dominates. The
product's fast rollouts (``rlpipe.train.rollout``: ``FastHFGenerator``, the evaluation engine, on the
trainer's own weights) replace only the rollout, in TRL's trainer and in rlpipe's PPO alike; this
script measures both against their stock path, plus the training phase's MFU and peak memory.

Configurations (``--configs``): ``trl_stock`` (TRL as shipped), ``trl_fast_rollout`` (the product's
``with_fast_rollouts(GRPOTrainer)``), ``trl_fast_rollout_no_ckpt`` (same, no gradient checkpointing),
``ppo_hf`` / ``ppo_fast`` (``rlpipe.train.ppo.PPOTrainer`` with ``rollout.engine`` hf / fast: the same
workload shape, 1 PPO epoch in minibatches of ``--micro-batch``, shared critic, no reference model).
``--lora`` trains a LoRA adapter (r 16, all linear layers) instead of all weights. PPO memory options:
``--ppo-micro-batch N`` (``ppo.micro_batch_size``: N sequences per forward/backward, the minibatch's
gradient accumulated over them), ``--grad-ckpt`` (``ppo.gradient_checkpointing``), ``--critic separate``
(a second transformer as the critic) and ``--domains K`` (the prompts spread over K domains; K >= 2
trains PPO + PCGrad, which keeps one float32 gradient copy of all trainable weights per domain).

Models are random-init Qwen2.5-shaped (``gen_throughput.SHAPES``) in bf16, pure bf16 training (the
timing needs no quality); prompts are 256 tokens of a word-level tokenizer built here (no hub access
on the GPU machine). Each configuration runs ``--steps`` steps; the first (compile, capture) is
reported apart and the median of the others is the step time.

MFU = model FLOPs of the training phase (forward + backward of every sequence the update trains on:
6 x matmul parameters x tokens plus causal attention, lm_head on completion positions only; LoRA
counts 4 x, frozen weights need no weight gradients; recomputation under gradient checkpointing and a
separate critic's FLOPs are not counted) over training-phase time (step minus rollout), against
``--peak-tflops`` (default 989: H100/H200 SXM dense bf16 by the datasheet; a plain 8k bf16 matmul
measures ~790 on this H200). Prints a table last and writes JSON.

    python bench/train_step.py --sizes 1.5b --out bench/results/train_step_h200.json
    python bench/train_step.py --sizes 7b --lora --configs trl_fast_rollout --out train_step_7b_lora.json
    python bench/train_step.py --sizes 7b --configs ppo_fast --ppo-micro-batch 4 --grad-ckpt --out ppo_7b.json
    # FSDP full fine-tuning on 2 GPUs (one command; --prompts-per-step is per GPU):
    accelerate launch --config_file bench/accelerate_fsdp2.yaml bench/train_step.py --sizes 7b \\
        --configs trl_stock --prompts-per-step 8 --out train_step_7b_fsdp2.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_throughput import EOS, SHAPES  # noqa: E402

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True)  # fmt: skip
CONFIGS = ("trl_stock", "trl_fast_rollout", "trl_fast_rollout_no_ckpt", "ppo_hf", "ppo_fast")
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
        seed=0,
    )
    if name == "trl_fast_rollout_no_ckpt":
        options["gradient_checkpointing"] = False
    config = GRPOConfig(**{k: v for k, v in options.items() if k in fields})
    times: list[float] = []
    rollouts: list[float] = []
    pending = [0.0]

    class Clock(TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            sync()
            pending[0] = 0.0
            self.t0 = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            sync()
            times.append(time.perf_counter() - self.t0)
            rollouts.append(pending[0])

    base = GRPOTrainer if name == "trl_stock" else with_fast_rollouts(GRPOTrainer)

    class Timed(base):  # type: ignore[misc, valid-type]
        """Adds the rollout (generation + rewards) time to the step it belongs to."""

        def _generate_and_score_completions(self, *a: Any, **k: Any) -> Any:
            sync()
            t0 = time.perf_counter()
            out = super()._generate_and_score_completions(*a, **k)
            sync()
            pending[0] += time.perf_counter() - t0
            return out

    trainer = Timed(model=model, reward_funcs=reward, args=config, train_dataset=data, processing_class=tok,
                    peft_config=lora_config(LORA if args.lora else None), callbacks=[Clock()])  # fmt: skip
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    lengths = [h.get("completions/mean_length") for h in logs]
    fast = getattr(trainer, "_fast_rollout", None)
    row = summarise(size, name, args, times, rollouts, [x for x in lengths if x is not None])
    row["gradient_checkpointing"] = config.gradient_checkpointing
    row["rollout_engine"] = "fast" if fast is not None else "hf"
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
        "rollout": {"engine": "fast" if name == "ppo_fast" else "hf"},
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
    dtype = str(next(trainer.policy.parameters()).dtype)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    times, rollouts, lengths = [], [], []
    for _ in range(args.steps):
        sync()
        t0 = time.perf_counter()
        ro = trainer.rollout(trainer.next_rows())
        sync()
        t1 = time.perf_counter()
        trainer.update(ro)
        sync()
        times.append(time.perf_counter() - t0)
        rollouts.append(t1 - t0)
        lengths.append(float(ro.mask.sum(dim=1).mean()))
        trainer.step += 1
    row = summarise(size, name, args, times, rollouts, lengths)
    row.update(
        gradient_checkpointing=args.grad_ckpt,
        rollout_engine=run["rollout"]["engine"],
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
    lengths: list[float],
) -> dict[str, Any]:
    """Step and rollout medians over steps 2.., tokens/s, training-phase MFU, peak memory."""
    rest = slice(1, None) if len(times) > 1 else slice(None)
    step = statistics.median(times[rest])
    rollout = statistics.median(rollouts[rest])
    train = max(step - rollout, 1e-9)
    n = args.prompts_per_step * args.generations
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
        "train_phase_s": train,
        "completions_per_step": n,
        "mean_completion_length": lengths,
        "completion_tokens_per_s": n * completion / step,
        "train_tflop_per_step": flops / 1e12,
        "train_tflops": flops / train / 1e12,
        "mfu": flops / train / (args.peak_tflops * 1e12),
        "peak_mem_gib": peak_gib(),
    }
    say(f"RESULT {size} {row['config']}: step {step:.2f} s (first {times[0]:.1f} s), "
        f"rollout {rollout:.2f} s, train {train:.2f} s, {row['completion_tokens_per_s']:.0f} tok/s, "
        f"MFU {row['mfu']:.1%}, "
        f"peak {row['peak_mem_gib'] or 0:.1f} GiB, lengths {[round(x) for x in lengths]}")  # fmt: skip
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
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak per GPU for MFU")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "train_step.json")
    args = ap.parse_args()
    import transformers
    import trl

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
        "| size | config | step s | first step s | rollout s | train s | speed-up | tok/s | MFU (train) "
        "| grad ckpt | peak GiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    base = {
        (r["size"], r["config"].startswith("ppo")): r["step_s"]
        for r in rows
        if r.get("config", "").removesuffix("_lora") in ("trl_stock", "ppo_hf") and "step_s" in r
    }
    for r in rows:
        if "step_s" not in r:
            lines.append(f"| {r['size']} | {r['config']} | failed: {r['error'][:80]} | | | | | | | | |")
            continue
        ref = base.get((r["size"], r["config"].startswith("ppo")))
        sp = f"{ref / r['step_s']:.1f}x" if ref else "-"
        mem = f"{r['peak_mem_gib']:.1f}" if r["peak_mem_gib"] is not None else "-"
        lines.append(
            f"| {r['size']} | {r['config']} | {r['step_s']:.2f} | {r['first_step_s']:.1f} "
            f"| {r['rollout_s']:.2f} | {r['train_phase_s']:.2f} | {sp} "
            f"| {r['completion_tokens_per_s']:,.0f} | {r['mfu']:.1%} "
            f"| {r['gradient_checkpointing']} | {mem} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
