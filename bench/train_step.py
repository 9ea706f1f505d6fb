"""GRPO step time on one GPU: stock TRL ``GRPOTrainer`` against the same trainer with fast rollouts.

Why: a GRPO step is a rollout (generation of ``num_generations`` completions per prompt) plus a
policy-gradient update; at 0.5B-1.5B and 256-token completions the rollout through stock
``model.generate`` dominates. ``FastGRPOTrainer`` below swaps only the rollout for
``FastHFGenerator`` (the trainer's own weights, no copy: the captured CUDA graph reads the parameters
the optimizer updates in place) and keeps everything else of TRL.

Models are random-init Qwen2.5-shaped in bf16 (pure bf16 training, as the timing needs no quality);
prompts are 256 tokens of a word-level tokenizer built here (no hub access on the GPU machine).
Each configuration runs ``--steps`` optimizer steps; the first (compile, warm-up) is reported apart
and the median of the others is the step time. Prints a table last and writes JSON.

    python bench/train_step.py --sizes 0.5b,1.5b --out bench/results/train_step_h200.json
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

from rlpipe.eval.fast_generate import FastHFGenerator  # noqa: E402

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True)  # fmt: skip


def word_tokenizer(vocab: int) -> Any:
    """A word-level tokenizer whose token ``i`` is the word ``t{i}``: decodes any id the model emits."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=f"t{EOS}", pad_token=f"t{EOS}")


def build_model(size: str, device: str) -> Any:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    shape = TINY if size == "tiny" else SHAPES[size]
    config = Qwen2Config(**shape, max_position_embeddings=32768, rope_theta=1_000_000.0,
                         use_sliding_window=False, eos_token_id=EOS, pad_token_id=EOS)  # fmt: skip
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config)
    return model.to(torch.bfloat16) if device == "cuda" else model


def make_trainer_class() -> type:
    from trl import GRPOTrainer

    class FastGRPOTrainer(GRPOTrainer):
        """GRPOTrainer whose text-only, non-vLLM rollouts go through ``FastHFGenerator``."""

        _fast: FastHFGenerator | None = None

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, **kwargs):
            if images or multimodal_fields or self.use_vllm:
                return super()._generate_single_turn(
                    prompt_ids, images, multimodal_fields, num_generations, **kwargs
                )
            model = self.accelerator.unwrap_model(self.model_wrapped)
            if self._fast is None:
                self._fast = FastHFGenerator(
                    model, self.processing_class, compile=model.device.type == "cuda"
                )
            was_training = model.training
            model.eval()
            cfg = self.generation_config
            max_new = cfg.max_new_tokens
            out = self._fast.generate(
                prompt_ids,
                n=1,
                temperature=cfg.temperature if cfg.do_sample else 0.0,
                top_p=cfg.top_p if cfg.top_p is not None else 1.0,
                max_new_tokens=max_new,
                seed=self.args.seed * 100_003 + self.state.global_step,
            )
            model.train(was_training)
            eos = self.processing_class.eos_token_id
            # TRL's own path keeps the eos token in the completion (it is trained on); ours drops it.
            return [c[0] + ([eos] if len(c[0]) < max_new else []) for c in out], None

    return FastGRPOTrainer


def run_config(size: str, name: str, fast: bool, overrides: dict[str, Any], args: argparse.Namespace) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model(size, device)
    tok = word_tokenizer(model.config.vocab_size)
    g = torch.Generator().manual_seed(7)
    n_prompts = args.prompts_per_step * args.steps
    ids = torch.randint(1, EOS, (n_prompts, args.prompt_len), generator=g).tolist()
    data = Dataset.from_dict({"prompt": [" ".join(f"t{i}" for i in row) for row in ids]})

    def reward(completions: list[str], **_: Any) -> list[float]:
        return [len(set(c.split())) / 1000.0 for c in completions]  # varies, so advantages are non-zero

    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    options = dict(
        output_dir=tempfile.mkdtemp(prefix="grpo_"),
        per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=args.prompts_per_step * args.generations // args.micro_batch,
        num_generations=args.generations,
        max_completion_length=args.new,
        max_prompt_length=args.prompt_len,
        learning_rate=1e-6,
        bf16=device == "cuda",
        max_steps=args.steps,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        temperature=1.0,
        seed=0,
        **overrides,
    )
    config = GRPOConfig(**{k: v for k, v in options.items() if k in fields})
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t0)

    cls = make_trainer_class() if fast else GRPOTrainer
    trainer = cls(model=model, reward_funcs=reward, args=config, train_dataset=data, processing_class=tok,
                  callbacks=[Clock()])  # fmt: skip
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    row = {
        "size": size,
        "config": name,
        "step_times_s": times,
        "first_step_s": times[0],
        "step_s": statistics.median(times[1:]) if len(times) > 1 else times[0],
        "completions_per_step": args.prompts_per_step * args.generations,
        "gradient_checkpointing": config.gradient_checkpointing,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        "mean_completion_length": [h.get("completions/mean_length") for h in logs],
    }
    print(f"RESULT {size} {name}: step {row['step_s']:.2f} s (first {row['first_step_s']:.1f} s), "
          f"lengths {row['mean_completion_length']}", flush=True)  # fmt: skip
    del trainer, model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="0.5b,1.5b")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--prompts-per-step", type=int, default=16)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--micro-batch", type=int, default=32)
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "train_step.json")
    args = ap.parse_args()
    import transformers
    import trl

    configs = [
        ("trl_stock", False, {}),
        ("trl_fast_rollout", True, {}),
        ("trl_fast_rollout_no_ckpt", True, {"gradient_checkpointing": False}),
    ]
    rows: list[dict[str, Any]] = []
    for size in args.sizes.split(","):
        for name, fast, overrides in configs:
            try:
                rows.append(run_config(size, name, fast, overrides, args))
            except Exception as exc:  # keep the other configurations' numbers
                print(f"FAILED {size} {name}: {type(exc).__name__}: {exc}"[:2000], flush=True)
                rows.append({"size": size, "config": name, "error": f"{type(exc).__name__}: {exc}"[:2000]})
            meta = {
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "trl": trl.__version__,
                "workload": {k: v for k, v in vars(args).items() if k != "out"},
                "results": rows,
            }
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(meta, indent=2))
    print("\n| size | config | step s | first step s | speed-up | grad ckpt | peak GiB |")
    print("|---|---|---:|---:|---:|---|---:|")
    base = {r["size"]: r["step_s"] for r in rows if r.get("config") == "trl_stock" and "step_s" in r}
    for r in rows:
        if "step_s" not in r:
            print(f"| {r['size']} | {r['config']} | failed: {r['error'][:80]} | | | | |")
            continue
        sp = f"{base[r['size']] / r['step_s']:.1f}x" if r["size"] in base else "-"
        mem = f"{r['peak_mem_gib']:.1f}" if r["peak_mem_gib"] is not None else "-"
        print(f"| {r['size']} | {r['config']} | {r['step_s']:.2f} | {r['first_step_s']:.1f} | {sp} | "
              f"{r['gradient_checkpointing']} | {mem} |")  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
