"""Pre-flight check of an RL run: is there a learning signal, and does the loss mask what it must?

Run as a cheap job ahead of training, so no GPU-hours are burned on a run that cannot learn:

1. **Learning signal.** ``k`` completions (the run's group size) are sampled from the starting
   policy for a few hundred training prompts, with the run's sampling settings, and scored with
   the run's reward. GRPO's advantage is a reward minus its group mean: a group whose ``k``
   rewards are identical (all right or all wrong) contributes nothing. The check records the
   reward mean/std and the fraction of prompt groups with zero reward std, overall and per
   domain, and calls "no learning signal" when practically every group is such a group (the
   same threshold :mod:`rlpipe.analysis.diagnostics` uses on training metrics).
2. **Loss masking.** One real batch goes through the run's own loss -- TRL's
   ``GRPOTrainer.compute_loss`` for GRPO (every ``loss_type``; LoRA and PCGrad runs use the same
   loss), rlpipe's ``PPOTrainer._losses`` for PPO -- with non-zero advantages, some completions
   ended early (so there is completion padding) and prompts of different lengths (so there is
   prompt padding). Gradients are taken w.r.t. the decoder's last hidden states and the input
   embeddings:

   * the hidden state at position ``t`` feeds only the prediction of token ``t + 1``, so its
     gradient must be 0 wherever token ``t + 1`` is a prompt token or padding, and non-zero
     somewhere on the completion (otherwise the probe saw nothing);
   * the input embedding of a padding token must get no gradient at all (nothing may attend to
     it). Prompt-token embeddings *do* get a gradient -- the completion attends to the prompt --
     so "masked" means "no loss term predicts a prompt token", which the first check tests.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from rlpipe.analysis.diagnostics import ZERO_STD_FRAC
from rlpipe.tracking.io import write_json

log = logging.getLogger(__name__)

#: Defaults of the ``preflight`` config section (see config.schema.yaml).
DEFAULTS: dict[str, Any] = {"enabled": True, "prompts": 256, "fail_on_no_signal": False}
#: A group's rewards are "identical" when max - min is at most this (TRL uses isclose(std, 0)).
SAME_REWARD_TOL = 1e-6
#: Above this fraction of zero-std groups the signal is weak (a warning, never a failure).
WEAK_SIGNAL_FRAC = 0.5
#: Gradients at masked positions must be exactly 0; this absolute slack only absorbs -0.0 and
#: denormals, it is far below any real gradient (the probe's live positions are ~1e-3).
GRAD_TOL = 1e-12
#: Hyperparameters that change neither sampling nor the loss: changing them must not rerun the
#: pre-flight job (and so must not retrain more than the run itself).
_IRRELEVANT = {
    "grpo": {"learning_rate", "lr_scheduler_type", "warmup_steps", "weight_decay", "max_grad_norm"},
    "ppo": {
        "learning_rate",
        "critic_learning_rate",
        "max_grad_norm",
        "ppo_epochs",
        "micro_batch_size",
        "gradient_checkpointing",
    },
}
_RUN_KEYS = ("name", "method", "model", "seed", "lora", "pcgrad", "grpo", "ppo")


class PreflightError(RuntimeError):
    """The pre-flight check found no learning signal and ``fail_on_no_signal`` is set."""


def preflight_spec(run: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a run spec the pre-flight check depends on (the rule's params)."""
    spec = {k: copy.deepcopy(run[k]) for k in _RUN_KEYS if k in run}
    for section, drop in _IRRELEVANT.items():
        if isinstance(spec.get(section), dict):
            spec[section] = {k: v for k, v in spec[section].items() if k not in drop}
    return spec


def sampling_settings(run: Mapping[str, Any]) -> dict[str, Any]:
    """Group size and sampling settings of the run's rollouts, with the trainer's own defaults."""
    if run.get("method") == "ppo":
        from rlpipe.config import PPO_DEFAULTS

        hp = {**PPO_DEFAULTS, **run.get("ppo", {})}
        return {
            "k": hp["samples_per_prompt"],
            "temperature": hp["temperature"],
            "top_p": 1.0,
            "max_new_tokens": hp["max_new_tokens"],
        }
    from trl import GRPOConfig

    defaults = {
        f: GRPOConfig.__dataclass_fields__[f].default
        for f in ("num_generations", "temperature", "top_p", "max_completion_length")
    }
    hp = {**defaults, **{k: v for k, v in run.get("grpo", {}).items() if k in defaults}}
    return {
        "k": hp["num_generations"],
        "temperature": hp["temperature"],
        "top_p": hp["top_p"],
        "max_new_tokens": hp["max_completion_length"],
    }


# ----------------------------------------------------------------------------------------------
# learning signal (pure)


def signal_stats(
    groups: Sequence[Sequence[float]], domains: Sequence[str] | None = None, tol: float = SAME_REWARD_TOL
) -> dict[str, Any]:
    """Reward statistics of prompt groups (one list of ``k`` rewards per prompt).

    ``reward_std`` is the population std over all samples; ``group_std_mean`` the mean of the
    per-group (unbiased) std -- TRL's ``reward_std`` metric; ``frac_zero_std`` the share of groups
    whose rewards are all equal (TRL's ``frac_reward_zero_std``). ``by_domain`` repeats the
    statistics per domain when ``domains`` (one per group) is given.
    """
    if not groups:
        raise ValueError("signal_stats needs at least one prompt group")
    arr = [np.asarray(g, dtype=float) for g in groups]
    flat = np.concatenate(arr)
    zero = [float(g.max() - g.min()) <= tol for g in arr]
    stds = [float(g.std(ddof=1)) if len(g) > 1 else 0.0 for g in arr]
    out: dict[str, Any] = {
        "n_prompts": len(arr),
        "k": int(max(len(g) for g in arr)),
        "reward_mean": float(flat.mean()),
        "reward_std": float(flat.std()),
        "group_std_mean": float(np.mean(stds)),
        "frac_zero_std": float(np.mean(zero)),
        "frac_all_zero": float(np.mean([float(np.abs(g).max()) <= tol for g in arr])),
        "frac_all_max": float(np.mean([z and float(g.min()) > tol for z, g in zip(zero, arr, strict=True)])),
    }
    if domains is not None:
        by: dict[str, list[int]] = defaultdict(list)
        for i, d in enumerate(domains):
            by[d].append(i)
        out["by_domain"] = {
            d: signal_stats([groups[i] for i in idx], None, tol) for d, idx in sorted(by.items())
        }
    return out


def signal_verdict(stats: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """(no learning signal?, warnings) from :func:`signal_stats`.

    No signal: every reward is 0, or at least :data:`ZERO_STD_FRAC` of the groups have identical
    rewards. A domain without signal, or a weak signal overall, is a warning only.
    """
    warnings: list[str] = []
    no_signal = False
    if stats["reward_std"] <= SAME_REWARD_TOL and stats["reward_mean"] <= SAME_REWARD_TOL:
        no_signal = True
        warnings.append("every sampled completion got reward 0: check the scorer, prompt format and warm-up")
    elif stats["frac_zero_std"] >= ZERO_STD_FRAC:
        no_signal = True
        warnings.append(
            f"{stats['frac_zero_std']:.0%} of prompt groups have identical rewards "
            f"({stats['frac_all_zero']:.0%} all wrong, {stats['frac_all_max']:.0%} all right): "
            "GRPO advantages would be ~0"
        )
    elif stats["frac_zero_std"] > WEAK_SIGNAL_FRAC:
        warnings.append(f"weak signal: {stats['frac_zero_std']:.0%} of prompt groups have identical rewards")
    for domain, d in stats.get("by_domain", {}).items():
        if not no_signal and d["frac_zero_std"] >= ZERO_STD_FRAC:
            warnings.append(
                f"domain {domain}: {d['frac_zero_std']:.0%} of its {d['n_prompts']} prompt groups have "
                f"identical rewards (mean reward {d['reward_mean']:.3f}): it contributes no signal"
            )
    return no_signal, warnings


# ----------------------------------------------------------------------------------------------
# loss masking (pure part)


def mask_gradient_check(
    hidden_grad: Any, embed_grad: Any, prompt_mask: Any, completion_mask: Any, tol: float = GRAD_TOL
) -> dict[str, Any]:
    """Check per-position gradient magnitudes ``[N, P + T]`` against the batch's masks.

    ``prompt_mask [N, P]`` is 1 on prompt tokens, 0 on (left) padding; ``completion_mask [N, T]``
    is 1 on completion tokens the loss may train, 0 on padding. A hidden position ``t`` is
    *trained* iff token ``t + 1`` is a completion token with mask 1. Returns the largest gradient
    in each category, the position counts and ``passed`` with the problems found.
    """
    hid = np.abs(np.asarray(hidden_grad, dtype=float))
    emb = np.abs(np.asarray(embed_grad, dtype=float))
    pm = np.asarray(prompt_mask, dtype=bool)
    cm = np.asarray(completion_mask, dtype=bool)
    n, p = pm.shape
    t = cm.shape[1]
    if hid.shape != (n, p + t) or emb.shape != (n, p + t):
        raise ValueError(f"gradients must be [N, P + T] = {(n, p + t)}, got {hid.shape} and {emb.shape}")
    # category of the *target* token t + 1 predicted at hidden position t (last position: none)
    target_completion = np.zeros((n, p + t), dtype=bool)
    target_completion[:, p - 1 : p + t - 1] = cm
    target_prompt = np.zeros((n, p + t), dtype=bool)
    target_prompt[:, : p - 1] = pm[:, 1:]
    target_padding = ~target_completion & ~target_prompt
    target_padding[:, -1] = False  # the last position predicts nothing
    padding = np.concatenate([~pm, ~cm], axis=1)

    def peak(values: np.ndarray, where: np.ndarray) -> float | None:
        return float(values[where].max()) if where.any() else None

    result = {
        "positions": {
            "prompt_tokens": int(pm.sum()),
            "prompt_padding": int((~pm).sum()),
            "completion_tokens": int(cm.sum()),
            "completion_padding": int((~cm).sum()),
        },
        "max_abs_grad": {
            "hidden_predicting_completion": peak(hid, target_completion),
            "hidden_predicting_prompt": peak(hid, target_prompt),
            "hidden_predicting_padding": peak(hid, target_padding),
            "embedding_of_padding": peak(emb, padding),
            "embedding_of_prompt": peak(emb, np.concatenate([pm, np.zeros_like(cm)], axis=1)),
        },
    }
    problems = []
    g = result["max_abs_grad"]
    if not g["hidden_predicting_completion"]:
        problems.append("no gradient on any completion token: the probe saw no loss at all")
    if (g["hidden_predicting_prompt"] or 0.0) > tol:
        problems.append(f"the loss predicts prompt tokens (gradient {g['hidden_predicting_prompt']:.3g})")
    if (g["hidden_predicting_padding"] or 0.0) > tol:
        problems.append(f"the loss predicts padding tokens (gradient {g['hidden_predicting_padding']:.3g})")
    if (g["embedding_of_padding"] or 0.0) > tol:
        problems.append(
            f"padding embeddings get gradient {g['embedding_of_padding']:.3g}: attention is not masked"
        )
    exercised = []
    if not result["positions"]["prompt_padding"]:
        exercised.append("no prompt padding in the batch (all prompts equally long)")
    if not result["positions"]["completion_padding"]:
        exercised.append("no completion padding in the batch")
    result.update(passed=not problems, problems=problems, not_exercised=exercised)
    return result


@contextmanager
def gradient_probe(model: Any) -> Iterator[dict[str, Any]]:
    """Capture the input embeddings and the decoder's last hidden state of ``model``'s next forward.

    The embedding output is replaced by a leaf tensor that requires grad, so the probe works for
    LoRA (frozen embeddings) too. After ``loss.backward()``, ``probe["embed"].grad`` and
    ``probe["hidden"].grad`` hold the gradients (``[N, L, H]``).
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    probe: dict[str, Any] = {}

    def on_embed(module: Any, args: Any, output: Any) -> Any:
        leaf = output.detach().requires_grad_(True)
        probe["embed"] = leaf
        return leaf

    def on_decoder(module: Any, args: Any, output: Any) -> None:
        hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
        hidden.retain_grad()
        probe["hidden"] = hidden

    handles = [
        base.get_input_embeddings().register_forward_hook(on_embed),
        base.get_decoder().register_forward_hook(on_decoder),
    ]
    try:
        yield probe
    finally:
        for h in handles:
            h.remove()


def probe_loss(
    model: Any, loss_fn: Callable[[], Any], prompt_mask: Any, completion_mask: Any
) -> dict[str, Any]:
    """Run ``loss_fn()`` (one forward of ``model``) under :func:`gradient_probe`, backward, check."""
    model.zero_grad(set_to_none=True)
    with gradient_probe(model) as probe:
        loss = loss_fn()
        loss.backward()
    if "embed" not in probe or "hidden" not in probe:
        raise RuntimeError("the loss did not run a forward pass of the policy")
    hid = probe["hidden"].grad
    emb = probe["embed"].grad
    hid = (
        hid.float().norm(dim=-1) if hid is not None else probe["hidden"].new_zeros(probe["hidden"].shape[:2])
    )
    emb = emb.float().norm(dim=-1) if emb is not None else probe["embed"].new_zeros(probe["embed"].shape[:2])
    model.zero_grad(set_to_none=True)
    out = mask_gradient_check(hid.cpu(), emb.cpu(), prompt_mask.cpu(), completion_mask.cpu())
    out["loss"] = float(loss.detach())
    return out


def _end_early(ids: Any, mask: Any, rows: Sequence[int], eos: int, pad: int) -> None:
    """Make completions ``rows`` end with EOS halfway (in place), as a sampled early stop would.

    A row that already stopped before then is left alone. The kept part is marked trainable, as
    the trainer marks a completion that ended with EOS (``mask_truncated_completions`` masks only
    completions that hit the length cap).
    """
    width = ids.shape[1]
    cut = max(1, width // 2)
    for r in rows:
        if (ids[r, :cut] == eos).any():
            continue
        ids[r, cut - 1] = eos
        ids[r, cut:] = pad
        mask[r, :cut] = 1
        mask[r, cut:] = 0


def _mask_rows(rows: Sequence[Mapping[str, Any]], render: Callable[[Mapping[str, Any]], int]) -> list[Any]:
    """Two prompts of different rendered lengths (shortest and longest), so there is prompt padding."""
    ordered = sorted(rows, key=render)
    return [ordered[0], ordered[-1]] if len(ordered) > 1 else list(ordered)


# ----------------------------------------------------------------------------------------------
# loss masking through the real trainers


def grpo_mask_check(
    policy_dir: str, rows: Sequence[Mapping[str, Any]], run: Mapping[str, Any]
) -> dict[str, Any]:
    """The mask check through TRL's ``GRPOTrainer.compute_loss`` with the run's GRPO settings."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from rlpipe.models import hub_kernels_enabled, load_pretrained, resolve_model_dir
    from rlpipe.train.grpo import GRPO_KEYS, lora_config, make_reward_fn

    src = resolve_model_dir(policy_dir)
    tokenizer = AutoTokenizer.from_pretrained(src)
    tokenizer.padding_side = "left"
    model = load_pretrained(AutoModelForCausalLM, src)
    hp = dict(run.get("grpo", {}))
    k = int(hp.get("num_generations", GRPOConfig.__dataclass_fields__["num_generations"].default))
    cuda = torch.cuda.is_available()
    keep = ("prompt", "ground_truth", "scorer", "domain", "task")

    def length(row: Mapping[str, Any]) -> int:
        return len(tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True))

    chosen = _mask_rows(rows, length)
    with tempfile.TemporaryDirectory(prefix="rlpipe-preflight-") as tmp:
        hp.update(
            per_device_train_batch_size=k * len(chosen), gradient_accumulation_steps=1, steps_per_generation=1
        )
        args = GRPOConfig(
            output_dir=tmp,
            max_steps=1,
            report_to="none",
            seed=int(run.get("seed", 0)),
            use_cpu=not cuda,
            bf16=cuda,
            disable_tqdm=True,
            save_strategy="no",
            logging_steps=1,
            model_init_kwargs={"use_kernels": hub_kernels_enabled()} if hp.get("beta") else None,
            **{key: hp[key] for key in GRPO_KEYS if key in hp},
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=make_reward_fn(),
            args=args,
            train_dataset=Dataset.from_list([{c: r[c] for c in keep} for r in rows]),
            processing_class=tokenizer,
            peft_config=lora_config(run.get("lora")),
        )
        trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop, which is not run here
        policy = trainer.model
        policy.train()
        batch = [{c: r[c] for c in keep} for r in chosen for _ in range(k)]
        inputs = trainer._generate_and_score_completions(batch)
        ids, mask = inputs["completion_ids"].clone(), inputs["completion_mask"].clone()
        _end_early(ids, mask, range(0, len(batch), 2), tokenizer.eos_token_id, tokenizer.pad_token_id)
        n = len(batch)
        adv = torch.tensor([1.0 if i % 2 else -1.0 for i in range(n)], device=ids.device)
        inputs.update(completion_ids=ids, completion_mask=mask, advantages=adv)
        result = probe_loss(
            policy,
            lambda: trainer.compute_loss(policy, inputs),
            inputs["prompt_mask"],
            inputs["completion_mask"],
        )
    result["loss_path"] = f"trl.GRPOTrainer.compute_loss (loss_type={args.loss_type})"
    return result


def ppo_mask_check(
    policy_dir: str, rows: Sequence[Mapping[str, Any]], run: Mapping[str, Any]
) -> dict[str, Any]:
    """The mask check through rlpipe's ``PPOTrainer`` (one real rollout, its ``_losses``)."""
    import torch

    from rlpipe.train.ppo import PPOTrainer

    spec = {**copy.deepcopy(dict(run)), "steps": 1, "save_every": 1}
    with tempfile.TemporaryDirectory(prefix="rlpipe-preflight-") as tmp:
        trainer = PPOTrainer(
            policy_dir,
            list(rows),
            run=spec,
            checkpoints_dir=f"{tmp}/ck",
            state_dir=f"{tmp}/st",
            metrics_path=f"{tmp}/metrics.jsonl",
        )
        tok = trainer.tokenizer

        def length(row: Mapping[str, Any]) -> int:
            return len(tok.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True))

        ro = trainer.rollout(_mask_rows(rows, length))
        p = ro.prompt_len
        ids, mask = ro.input_ids[:, p:].clone(), ro.mask.clone()
        _end_early(ids, mask, range(0, len(ro), 2), trainer.eos_ids[0], tok.pad_token_id)
        ro.input_ids = torch.cat([ro.input_ids[:, :p], ids], dim=1)
        ro.mask = mask
        ro.attention_mask = torch.cat([ro.attention_mask[:, :p], mask.long()], dim=1)
        ro.position_ids = (ro.attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        with torch.no_grad():  # the "old" policy of the ratio is the policy itself, as on a fresh rollout
            ro.old_logprobs, _, ro.old_values = trainer._forward(ro, slice(None))
        signs = torch.tensor([1.0 if i % 2 else -1.0 for i in range(len(ro))], device=mask.device)
        ro.advantages = signs[:, None].expand_as(mask).clone()
        idx = torch.arange(len(ro), device=trainer.device)
        trainer.policy.train()
        result = probe_loss(
            trainer.policy,
            lambda: sum(trainer._losses(ro, idx)[0].values()),
            ro.attention_mask[:, :p],
            mask,
        )
    result["loss_path"] = "rlpipe.train.ppo.PPOTrainer._losses (clipped surrogate + value + entropy)"
    return result


# ----------------------------------------------------------------------------------------------
# the job


def sample_rewards(
    policy_dir: str,
    rows: Sequence[Mapping[str, Any]],
    run: Mapping[str, Any],
    *,
    batch_size: int,
    seed: int,
) -> tuple[list[list[float]], list[dict[str, Any]]]:
    """``k`` completions per row from the starting policy, scored with the run's reward.

    Returns one reward list per row and a few example completions (for the report).
    """
    import torch

    from rlpipe.eval.generate import make_generator, render_prompts
    from rlpipe.models import load_policy
    from rlpipe.train.grpo import make_reward_fn

    settings = sampling_settings(run)
    model, tokenizer = load_policy(policy_dir)
    if torch.cuda.is_available():
        model = model.to("cuda", dtype=torch.bfloat16)
    generator = make_generator("hf", model, tokenizer, batch_size=batch_size)
    samples = generator.generate(
        render_prompts(tokenizer, list(rows)),
        n=settings["k"],
        temperature=settings["temperature"],
        top_p=settings["top_p"],
        max_new_tokens=settings["max_new_tokens"],
        seed=seed,
    )
    reward = make_reward_fn()  # what GRPO trains on; PPO calls the same scorers the same way
    groups, examples = [], []
    for row, completions in zip(rows, samples, strict=True):
        texts = [tokenizer.decode(tokens, skip_special_tokens=True) for tokens in completions]
        k = len(texts)
        values = reward(
            prompts=[row["prompt"]] * k,
            completions=texts,
            ground_truth=[row["ground_truth"]] * k,
            scorer=[row["scorer"]] * k,
            domain=[row["domain"]] * k,
        )
        groups.append([float(v) for v in values])
        if len(examples) < 6:
            examples.append(
                {
                    "task": row.get("task"),
                    "prompt": row["prompt"][-1]["content"],
                    "ground_truth": str(row["ground_truth"]),
                    "completion": texts[0],
                    "reward": float(values[0]),
                }
            )
    return groups, examples


def choose_prompts(rows: Sequence[Mapping[str, Any]], n: int, seed: int) -> list[Mapping[str, Any]]:
    """``n`` training rows, a seeded random sample (all of them when there are fewer)."""
    if n >= len(rows):
        return list(rows)
    return random.Random(seed).sample(list(rows), n)


def run_preflight(
    policy_dir: str,
    train_rows: Sequence[Mapping[str, Any]],
    run: Mapping[str, Any],
    settings: Mapping[str, Any],
    out: str,
    *,
    batch_size: int = 256,
) -> dict[str, Any]:
    """The whole check for one run; writes ``out`` (JSON), raises :class:`PreflightError` if configured."""
    t0 = time.monotonic()
    cfg = {**DEFAULTS, **settings}
    seed = int(run.get("seed", 0))
    rows = choose_prompts(train_rows, int(cfg["prompts"]), seed)
    sampling = sampling_settings(run)
    log.info(
        "pre-flight %s: %d prompts x %d samples from %s", run["name"], len(rows), sampling["k"], policy_dir
    )
    groups, examples = sample_rewards(policy_dir, rows, run, batch_size=batch_size, seed=seed)
    stats = signal_stats(groups, [r["domain"] for r in rows])
    no_signal, warnings = signal_verdict(stats)
    t_signal = time.monotonic() - t0
    check = ppo_mask_check if run.get("method") == "ppo" else grpo_mask_check
    mask = check(policy_dir, rows, run)
    result = {
        "run": run["name"],
        "policy": str(policy_dir),
        "sampling": sampling,
        "signal": {**stats, "no_signal": no_signal, "warnings": warnings, "examples": examples},
        "loss_mask": mask,
        "fail_on_no_signal": bool(cfg["fail_on_no_signal"]),
        "time_s": {"signal": round(t_signal, 3), "total": round(time.monotonic() - t0, 3)},
    }
    line = (
        f"pre-flight {run['name']}: reward mean {stats['reward_mean']:.3f} (std {stats['reward_std']:.3f}), "
        f"{stats['frac_zero_std']:.0%} of {stats['n_prompts']} groups with zero reward std; "
        f"loss mask {'OK' if mask['passed'] else 'FAILED: ' + '; '.join(mask['problems'])}"
    )
    for w in warnings:
        log.warning("pre-flight %s: %s", run["name"], w)
    (log.warning if no_signal or not mask["passed"] else log.info)("%s", line)
    if not mask["passed"]:
        raise PreflightError(f"{line} -- the loss trains on tokens it must not see")
    if no_signal and cfg["fail_on_no_signal"]:
        raise PreflightError(f"{line} -- no learning signal and preflight.fail_on_no_signal is set")
    write_json(out, _finite(result))
    return result


def _finite(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
