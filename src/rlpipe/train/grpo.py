"""GRPO and its loss variants through TRL's ``GRPOTrainer``, with rlpipe's scorers as rewards.

The trainer keeps its resumable state (optimizer, scheduler, RNG) in ``state_dir``; every
``save_every`` steps the policy weights (or LoRA adapter) are exported to
``checkpoints/step_N`` in Hugging Face / PEFT format, which is what evaluation loads.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from typing import Any

from rlpipe.rewards import score
from rlpipe.train.checkpoints import (
    ExportCallback,
    latest_trainer_checkpoint,
    live_metrics,
    publish_metrics,
)
from rlpipe.train.lora import check_lora_targets, lora_config
from rlpipe.train.signals import StopOnSignalCallback, StopRequest, TrainingInterrupted

log = logging.getLogger(__name__)

# Run-config keys passed to GRPOConfig under TRL's own names.
GRPO_KEYS = (
    "loss_type",
    "scale_rewards",
    "beta",
    "num_generations",
    "epsilon",
    "epsilon_high",
    "mask_truncated_completions",
    "temperature",
    "top_p",
    "learning_rate",
    "max_grad_norm",
    "max_completion_length",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_iterations",
    "steps_per_generation",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "gradient_checkpointing",
)


# Dataset column holding each row's ground truth and extra_info as JSON text (see ``reward_dataset``).
REWARD_INPUT = "reward_input"


def reward_dataset(rows: list[dict[str, Any]]) -> Any:
    """The ``datasets.Dataset`` GRPO trains on: prompt, scorer, domain, task and ``reward_input``.

    Rows from real datasets mix ground-truth types (a string for maths, a grid for ARC, a dict for
    zebra puzzles) and ``extra_info`` layouts (code prefixes, IFEval kwargs) that Arrow cannot hold in
    one column, and several scorers need ``extra_info``. Both travel as one JSON string per row and
    are decoded in the reward function, so every row is scored exactly as evaluation scores it.
    """
    from datasets import Dataset

    return Dataset.from_list(
        [
            {
                **{k: r[k] for k in ("prompt", "scorer", "domain", "task")},
                REWARD_INPUT: json.dumps([r["ground_truth"], r.get("extra_info") or {}]),
            }
            for r in rows
        ]
    )


def make_reward_fn() -> Any:
    """A TRL reward function scoring completions with each row's own scorer, ground truth and extra_info.

    Reads the ``reward_input`` column of ``reward_dataset``; a dataset with a plain ``ground_truth``
    column (no extra_info) is scored too. Per-domain mean rewards are logged through TRL's
    ``log_metric`` so learning can be read per domain in ``metrics.jsonl``.
    """

    def reward(
        prompts: list[Any],
        completions: list[Any],
        scorer: list[str],
        domain: list[str],
        reward_input: list[str] | None = None,
        ground_truth: list[Any] | None = None,
        log_metric: Any = None,
        **kwargs: Any,
    ) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        if reward_input is not None:
            truths = [json.loads(x) for x in reward_input]
        elif ground_truth is not None:
            truths = [[g, None] for g in ground_truth]
        else:
            raise ValueError("the training dataset has neither a reward_input nor a ground_truth column")
        rewards = [score(s, t, g, e) for s, t, (g, e) in zip(scorer, texts, truths, strict=True)]
        if log_metric is not None:
            by_domain: dict[str, list[float]] = defaultdict(list)
            for d, r in zip(domain, rewards, strict=True):
                by_domain[d].append(r)
            for d, values in sorted(by_domain.items()):
                log_metric(f"reward/{d}", sum(values) / len(values))
        return rewards

    reward.__name__ = "verifiable"
    return reward


class ScheduledExportCallback(ExportCallback):
    """Export only the scheduled checkpoints: a save forced by a stop signal is for resuming only."""

    def __init__(self, state_dir: Any, out_dir: Any, tokenizer: Any, steps: set[int]) -> None:
        super().__init__(state_dir, out_dir, tokenizer)
        self.steps = steps

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step in self.steps:
            super().on_save(args, state, control, **kwargs)


def train_grpo(
    policy_dir: str,
    rows: list[dict[str, Any]],
    *,
    run: dict[str, Any],
    checkpoints_dir: str | os.PathLike[str],
    state_dir: str | os.PathLike[str],
    metrics_path: str | os.PathLike[str],
    validation_rows: list[dict[str, Any]] | None = None,
) -> None:
    """Train one GRPO run; resumes from the latest complete trainer checkpoint in ``state_dir``.

    On SIGTERM/SIGUSR1 the step in progress finishes, a checkpoint is saved and
    ``TrainingInterrupted`` (a non-zero exit) is raised; ``pcgrad: true`` uses PCGrad over domains.
    With ``early_stopping`` the greedy reward on ``validation_rows`` is scored every
    ``eval_every`` steps (``rlpipe.train.validation``), each of those steps is checkpointed, and
    training ends at the step the stop rule says.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from rlpipe.config import save_steps
    from rlpipe.models import hub_kernels_enabled, load_pretrained, resolve_model_dir
    from rlpipe.train.callbacks import MetricsFileCallback, ProgressCallback

    src = resolve_model_dir(policy_dir)
    tokenizer = AutoTokenizer.from_pretrained(src)
    tokenizer.padding_side = "left"
    model = load_pretrained(AutoModelForCausalLM, src)
    check_lora_targets(model, run.get("lora"), src)
    hp = run["grpo"]
    args = GRPOConfig(
        output_dir=str(state_dir),
        max_steps=run["steps"],
        save_strategy="steps",
        save_steps=run["save_every"],
        save_total_limit=1,
        logging_steps=1,
        report_to="none",
        seed=run["seed"],
        data_seed=run["seed"],
        use_cpu=not _cuda(),
        bf16=_cuda(),
        disable_tqdm=True,
        dataloader_num_workers=0,
        # TRL loads the reference model itself (beta != 0): with rlpipe's Hub-kernel setting too
        model_init_kwargs={"use_kernels": hub_kernels_enabled()} if hp.get("beta") else None,
        **{k: hp[k] for k in GRPO_KEYS if k in hp},
    )
    dataset = reward_dataset(rows)
    stop = StopRequest()
    stop_callback = StopOnSignalCallback(stop)
    # Validation must add its metrics to a step's log row before the metrics file writes it.
    early = early_stopping_callback(
        run, validation_rows, tokenizer, len(rows), hp.get("max_completion_length", 512)
    )
    extra: dict[str, Any] = {}
    trainer_cls: Any = GRPOTrainer
    if run.get("pcgrad"):
        from rlpipe.train.grpo_pcgrad import PCGradGRPOTrainer

        trainer_cls = PCGradGRPOTrainer
        extra = {"pcgrad_seed": run["seed"]}
    from rlpipe.train.rollout import rollout_engine, with_fast_rollouts

    if rollout_engine(run) == "fast":  # CPU default stays TRL's own generate
        trainer_cls = with_fast_rollouts(trainer_cls, (run.get("rollout") or {}).get("max_batch_size"))
        log.info("rollouts through FastHFGenerator (rollout.engine)")
    trainer = trainer_cls(
        model=model,
        reward_funcs=make_reward_fn(),
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(run.get("lora")),
        callbacks=[
            ProgressCallback(f"grpo[{run['name']}]"),
            *([early] if early else []),
            MetricsFileCallback(live_metrics(state_dir), {"run": run["name"]}),
            ScheduledExportCallback(state_dir, checkpoints_dir, tokenizer, set(save_steps(run))),
            stop_callback,
        ],
        **extra,
    )
    resume = latest_trainer_checkpoint(state_dir)
    if resume:
        log.info("resuming from %s", resume)
        ExportCallback(state_dir, checkpoints_dir, tokenizer).restore()
        if early:
            saved = json.loads((resume / "trainer_state.json").read_text()).get("stateful_callbacks", {})
            state = saved.get(type(early).__name__)
            if state is None:
                raise ValueError(f"{resume}: no early-stopping state in this checkpoint (made without it?)")
            early.controller.load_state_dict(state["attributes"]["early_stopping"])
            if early.controller.stopped:
                log.info("run %s already stopped early at step %s", run["name"], resume.name)
                publish_metrics(state_dir, metrics_path)
                return
    with stop:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if stop_callback.stopped_at is not None:
        raise TrainingInterrupted.logged(stop.requested or 0, stop_callback.stopped_at)
    if early and early.stopped_at is not None:
        best = early.controller.stopper
        log.info(
            "early stop at step %d of %d: best %s %.4f at step %s",
            early.stopped_at,
            run["steps"],
            best.metric,
            best.best_value if best.best_value is not None else float("nan"),
            best.best_step,
        )
    publish_metrics(state_dir, metrics_path)


def early_stopping_callback(
    run: dict[str, Any],
    validation_rows: list[dict[str, Any]] | None,
    tokenizer: Any,
    n_train: int,
    max_new_tokens: int,
) -> Any:
    """The run's ``EarlyStoppingCallback``, or None when it has no ``early_stopping`` section."""
    settings = run.get("early_stopping")
    if not settings:
        return None
    from rlpipe.config import early_stopping_min_step
    from rlpipe.train.validation import EarlyStoppingCallback, ValidationEarlyStopping

    if not validation_rows:
        raise ValueError(f"run {run['name']}: early_stopping needs validation rows (data/validation.jsonl)")
    controller = ValidationEarlyStopping(
        settings,
        validation_rows,
        tokenizer,
        min_step=early_stopping_min_step(run, n_train),
        max_new_tokens=max_new_tokens,
    )
    return EarlyStoppingCallback(controller)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
