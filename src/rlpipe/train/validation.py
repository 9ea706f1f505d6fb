"""Validation during training: greedy-decoded reward on the validation split, feeding early stopping.

Every ``early_stopping.eval_every`` training steps the current policy answers every prompt of
``data/validation.jsonl`` and each answer is scored with its row's own scorer, the run's reward.
Decoding is **greedy** (``do_sample=False``): the score is then a deterministic function of the
weights, needs no seed, draws nothing from the RNGs that drive training (so a run with early
stopping trains exactly like one without until it stops, and a resumed run replays the same
numbers), and is less noisy than a few samples per prompt, which matters for a stop rule that
compares one evaluation with the next. It measures what the policy does most probably, not its
sampled avg@k on the test suite; the two move together while RL sharpens the policy.

``ValidationEarlyStopping`` ties the scorer to ``rlpipe.train.early_stopping.EarlyStopping``; its
state is saved inside every trainer checkpoint and restored on resume by both trainers (TRL's
``GRPOTrainer`` through ``EarlyStoppingCallback``, rlpipe's PPO directly).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from rlpipe.rewards import score
from rlpipe.train.early_stopping import Decision, EarlyStopping

log = logging.getLogger(__name__)


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The ids that end a completion: the generation config's EOS (one or several), else the tokenizer's."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    return sorted({int(e) for e in (eos if isinstance(eos, list) else [eos])})


def greedy_validation_reward(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    *,
    max_new_tokens: int,
    batch_size: int = 256,
) -> dict[str, float]:
    """Mean reward of greedy completions on ``rows``, overall and per domain.

    Returns ``{"validation_reward": mean, "validation_reward/<domain>": mean, ...}``. The model is
    put in eval mode for the generation and given back in the mode it was in.
    """
    import torch

    from rlpipe.eval.generate import render_prompts

    if not rows:
        raise ValueError("the validation split is empty: early stopping has nothing to score")
    prompts = render_prompts(tokenizer, rows)
    eos = eos_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    device = next(model.parameters()).device
    order = sorted(range(len(rows)), key=lambda i: len(prompts[i]))  # little padding per batch
    texts: list[str] = [""] * len(rows)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                width = max(len(prompts[i]) for i in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for row, i in enumerate(batch):
                    ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i])
                    mask[row, width - len(prompts[i]) :] = 1
                out = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    do_sample=False,
                    max_new_tokens=max_new_tokens,
                    eos_token_id=eos,
                    pad_token_id=pad,
                    use_cache=True,
                )
                for row, i in enumerate(batch):
                    tokens = out[row, width:].tolist()
                    cut = next((k for k, t in enumerate(tokens) if t in eos), len(tokens))
                    texts[i] = tokenizer.decode(tokens[:cut], skip_special_tokens=True)
    finally:
        model.train(was_training)
    rewards = [
        score(r["scorer"], t, r["ground_truth"], r.get("extra_info"))
        for r, t in zip(rows, texts, strict=True)
    ]
    by_domain: dict[str, list[float]] = defaultdict(list)
    for r, value in zip(rows, rewards, strict=True):
        by_domain[r["domain"]].append(value)
    out_metrics = {"validation_reward": sum(rewards) / len(rewards)}
    for domain, values in sorted(by_domain.items()):
        out_metrics[f"validation_reward/{domain}"] = sum(values) / len(values)
    return out_metrics


class ValidationEarlyStopping:
    """Score the validation split every ``eval_every`` steps and decide, with ``EarlyStopping``, when to stop.

    ``min_step`` is the first step a stop is allowed at (``rlpipe.train.schedule.early_stopping_min_step``:
    ``min_steps`` and ``min_epochs`` combined).
    """

    def __init__(
        self,
        settings: dict[str, Any],
        rows: list[dict[str, Any]],
        tokenizer: Any,
        *,
        min_step: int,
        max_new_tokens: int,
        batch_size: int = 256,
    ) -> None:
        self.every = int(settings["eval_every"])
        self.rows, self.tokenizer = rows, tokenizer
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.stopper = EarlyStopping(
            settings["metric"],
            mode=settings["mode"],
            patience=settings["patience"],
            min_delta=settings["min_delta"],
            min_steps=min_step,
        )

    @property
    def stopped(self) -> bool:
        """Whether the last evaluation decided to stop (a resumed stopped run must not train on)."""
        last = self.stopper.last_decision
        return bool(last and last.stop)

    def due(self, step: int) -> bool:
        return step > 0 and step % self.every == 0

    def evaluate(self, model: Any, step: int) -> tuple[dict[str, float], Decision]:
        """Validation metrics at ``step`` (plus the stopper's state) and the stop decision."""
        metrics = greedy_validation_reward(
            model, self.tokenizer, self.rows, max_new_tokens=self.max_new_tokens, batch_size=self.batch_size
        )
        decision = self.stopper.update(step, metrics[self.stopper.metric])
        metrics["early_stopping/best_step"] = float(
            decision.best_step if decision.best_step is not None else -1
        )
        metrics["early_stopping/bad_evals"] = float(decision.bad_evals)
        log.info(
            "step %d: %s = %.4f (best %.4f at step %s, %d/%d evaluations without improvement)%s",
            step,
            self.stopper.metric,
            metrics[self.stopper.metric],
            decision.best_value if decision.best_value is not None else float("nan"),
            decision.best_step,
            decision.bad_evals,
            self.stopper.patience,
            " -> early stop" if decision.stop else "",
        )
        return metrics, decision

    def state_dict(self) -> dict[str, Any]:
        return self.stopper.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stopper.load_state_dict(state)


class EarlyStoppingCallback(TrainerCallback, ExportableState):
    """HF ``Trainer`` callback: validate every ``eval_every`` steps, save that step, stop when told.

    ``on_step_end`` runs after the optimizer step and before the Trainer's log/save decision, so
    asking for a save there checkpoints the evaluated weights. The validation metrics are added
    to that step's log row in ``on_log`` (this callback must come before the metrics-file
    callback). As an ``ExportableState`` its state is written into every checkpoint's
    ``trainer_state.json`` together with the rest of the trainer state; ``train_grpo`` restores
    it from there on resume.
    """

    def __init__(self, controller: ValidationEarlyStopping) -> None:
        self.controller = controller
        self.pending: dict[str, float] = {}
        self.stopped_at: int | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not self.controller.due(state.global_step):
            return
        metrics, decision = self.controller.evaluate(model, state.global_step)
        self.pending = metrics
        control.should_save = True
        control.should_log = True
        if decision.stop and state.global_step < state.max_steps:
            control.should_training_stop = True
            self.stopped_at = state.global_step

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if self.pending and logs is not None:
            logs.update(self.pending)
            self.pending = {}

    def state(self) -> dict[str, Any]:
        return {"args": {}, "attributes": {"early_stopping": self.controller.state_dict()}}
