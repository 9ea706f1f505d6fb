"""Pre-flight check of an RL run: is there a learning signal, and does the loss mask what it must?

Run as a cheap job ahead of training, so no GPU-hours are burned on a run that cannot learn:

1. **Learning signal.** ``k`` completions (the run's group size) are sampled from the starting
   policy for a few hundred training prompts, with the run's sampling settings, and scored with
   the run's reward. GRPO's advantage is a reward minus its group mean: a group whose ``k``
   rewards are identical (all right or all wrong) contributes nothing. The check records the
   reward mean/std and the fraction of prompt groups with zero reward std, overall and per
   domain, and calls "no learning signal" when practically every group is such a group (the
   same threshold :mod:`rlpipe.analysis.diagnostics` uses on training metrics).
2. **Loss masking.** One real batch goes through the run's own loss, through its method's public
   hook (``Method.mask_probe``: TRL's public ``GRPOTrainer.compute_loss`` for GRPO and GSPO, every
   ``loss_type``; ``PPOTrainer.losses`` for PPO), and the gradients show which tokens it trains on
   (``rlpipe.train.mask_probe``).
3. **Reward for nothing.** An empty response, a copy of the question and a hedge (a wrong and the
   right answer together; every option letter for multiple choice) are scored on the sampled rows
   with each scorer they use (``rlpipe.rewards.degenerate``). Any reward earned fails the check:
   a policy would learn to collect it.

This is a training-side job (it loads the trainers, on the run's GPU), so it lives in ``rlpipe.train``;
the report only reads its JSON.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlpipe.rewards import score
from rlpipe.rewards.degenerate import reward_for_nothing
from rlpipe.tracking.io import write_json
from rlpipe.train.methods import Spec, build_spec, method_of
from rlpipe.train.thresholds import ZERO_STD_FRAC

log = logging.getLogger(__name__)

#: Defaults of the ``preflight`` config section (see config.schema.yaml).
DEFAULTS: dict[str, Any] = {"enabled": True, "prompts": 256, "fail_on_no_signal": False}
#: A group's rewards are "identical" when max - min is at most this (TRL uses isclose(std, 0)).
SAME_REWARD_TOL = 1e-6
#: Above this fraction of zero-std groups the signal is weak (a warning, never a failure).
WEAK_SIGNAL_FRAC = 0.5
#: Run keys the pre-flight check depends on, besides its method's hyperparameter section.
_RUN_KEYS = ("name", "method", "model", "seed", "lora", "pcgrad")


class PreflightError(RuntimeError):
    """The pre-flight check found no learning signal and ``fail_on_no_signal`` is set."""


def preflight_spec(run: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a run spec the pre-flight check depends on (the rule's params): the run keys above
    and its method's section without the keys that change neither sampling nor the loss."""
    method = method_of(run)
    spec = {k: copy.deepcopy(run[k]) for k in _RUN_KEYS if k in run}
    if isinstance(run.get(method.section), dict):
        spec[method.section] = {
            k: v for k, v in run[method.section].items() if k not in method.preflight_irrelevant
        }
    return spec


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
# the job


def sample_rewards(
    policy_dir: str,
    rows: Sequence[Mapping[str, Any]],
    spec: Spec,
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

    settings = spec.method.sampling(spec)
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
            reward_input=[json.dumps([row["ground_truth"], row.get("extra_info") or {}])] * k,
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


def mask_check(
    policy_dir: str, rows: Sequence[Mapping[str, Any]], spec: Spec | Mapping[str, Any]
) -> dict[str, Any]:
    """The loss-mask check of a run (a ``Spec``, or a run spec to build one): its method's probe."""
    if not isinstance(spec, Spec):
        spec = build_spec(spec)
    return spec.method.mask_probe(policy_dir, rows, spec)


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
    spec = build_spec(run)
    seed = int(run.get("seed", 0))
    rows = choose_prompts(train_rows, int(cfg["prompts"]), seed)
    checked, paid = reward_for_nothing(rows, score)  # no model needed: fail before loading one
    if paid:
        where = "; ".join(
            f"{p['scorer']} paid {p['score']:g} for {p['kind']} (task {p['task']})" for p in paid[:5]
        )
        write_json(
            f"{out}.failed", {"run": run["name"], "reward_for_nothing": {"checked": checked, "paid": paid}}
        )
        raise PreflightError(
            f"pre-flight {run['name']}: reward for nothing: {where} -- a policy would learn to collect it "
            f"(the responses are in {out}.failed; fix the scorer or the rows' ground truth)"
        )
    log.info("pre-flight %s: %d degenerate responses score 0", run["name"], checked)
    sampling = spec.method.sampling(spec)
    log.info(
        "pre-flight %s: %d prompts x %d samples from %s", run["name"], len(rows), sampling["k"], policy_dir
    )
    groups, examples = sample_rewards(policy_dir, rows, spec, batch_size=batch_size, seed=seed)
    stats = signal_stats(groups, [r["domain"] for r in rows])
    no_signal, warnings = signal_verdict(stats)
    t_signal = time.monotonic() - t0
    mask = mask_check(policy_dir, rows, spec)
    result = {
        "run": run["name"],
        "policy": str(policy_dir),
        "sampling": sampling,
        "signal": {**stats, "no_signal": no_signal, "warnings": warnings, "examples": examples},
        "loss_mask": mask,
        "reward_for_nothing": {"checked": checked, "paid": paid},
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
