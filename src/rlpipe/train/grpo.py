"""GRPO and its loss variants through TRL's ``GRPOTrainer``, with rlpipe's scorers as rewards.

The trainer keeps its resumable state (optimizer, scheduler, RNG) in ``state_dir``; every
``save_every`` steps the policy weights (or LoRA adapter) are exported to
``checkpoints/step_N`` in Hugging Face / PEFT format, which is what evaluation loads.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rlpipe.rewards import score
from rlpipe.train import distributed as dp
from rlpipe.train.checkpoints import (
    CommitCallback,
    checkpoint_step,
    finished_step,
    latest_trainer_checkpoint,
    live_metrics,
    publish_metrics,
    recover_state,
    staging_dir,
)
from rlpipe.train.lora import check_lora_targets, lora_config
from rlpipe.train.schedule import early_stopping_min_step, save_steps
from rlpipe.train.signals import StopOnSignalCallback, StopRequest, TrainingInterrupted

if TYPE_CHECKING:
    from rlpipe.train.methods.base import Spec

log = logging.getLogger(__name__)


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


def train_grpo(
    policy_dir: str,
    rows: list[dict[str, Any]],
    *,
    spec: Spec,
    checkpoints_dir: str | os.PathLike[str],
    state_dir: str | os.PathLike[str],
    metrics_path: str | os.PathLike[str],
    validation_rows: list[dict[str, Any]] | None = None,
) -> None:
    """Train one GRPO (or GSPO) run; resumes from the latest complete trainer checkpoint in ``state_dir``.

    On SIGTERM/SIGUSR1 the step in progress finishes, a checkpoint is saved and
    ``TrainingInterrupted`` (a non-zero exit) is raised; ``pcgrad: true`` uses PCGrad over domains.
    With ``early_stopping`` the greedy reward on ``validation_rows`` is scored every
    ``eval_every`` steps (``rlpipe.train.validation``), each of those steps is checkpointed, and
    training ends at the step the stop rule says.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from rlpipe.models import hub_kernels_enabled, load_pretrained, resolve_model_dir
    from rlpipe.train.callbacks import MetricsFileCallback, ProgressCallback

    run, hp = spec.run, spec.settings
    src = resolve_model_dir(policy_dir)
    tokenizer = AutoTokenizer.from_pretrained(src)
    tokenizer.padding_side = "left"
    model = load_pretrained(AutoModelForCausalLM, src)
    check_lora_targets(model, run.get("lora"), src)
    args = GRPOConfig(
        # the trainer saves into a staging area; CommitCallback commits each save (checkpoints.py)
        output_dir=str(staging_dir(state_dir)),
        max_steps=run["steps"],
        save_strategy="steps",
        save_steps=run["save_every"],
        save_total_limit=None,
        logging_steps=1,
        report_to="none",
        seed=run["seed"],
        data_seed=run["seed"],
        use_cpu=not _cuda(),
        bf16=_cuda(),
        disable_tqdm=True,
        dataloader_num_workers=0,
        # ranks wait in collectives while the main process commits, exports or validates: the
        # default 30 minutes can be too short for a large model's export (as for PPO)
        ddp_timeout=int(dp.TIMEOUT.total_seconds()),
        # TRL loads the reference model itself (beta != 0): with rlpipe's Hub-kernel setting too
        model_init_kwargs={"use_kernels": hub_kernels_enabled()} if hp.beta else None,
        **hp.trl_kwargs(),
    )
    dataset = reward_dataset(rows)
    stop = StopRequest()
    stop_callback = StopOnSignalCallback(stop)
    # Validation must add its metrics to a step's log row before the metrics file writes it.
    early = early_stopping_callback(spec, validation_rows, tokenizer, len(rows), hp.max_completion_length)
    extra: dict[str, Any] = {}
    trainer_cls: Any = GRPOTrainer
    if run.get("pcgrad"):
        from rlpipe.train.grpo_pcgrad import PCGradGRPOTrainer

        trainer_cls = PCGradGRPOTrainer
        extra = {"pcgrad_seed": run["seed"]}
    from rlpipe.train.rollout import rollout_engine, rollout_max_batch, with_fast_rollouts

    engine = rollout_engine(run)
    if engine != "hf":  # CPU default stays TRL's own generate
        trainer_cls = with_fast_rollouts(trainer_cls, rollout_max_batch(run), engine)
        log.info("rollouts through rlpipe's %s engine (rollout.engine)", engine)
    trainer_cls = with_epoch_seeded_sampler(trainer_cls)
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
            CommitCallback(state_dir, checkpoints_dir, tokenizer, save_steps(run)),
            stop_callback,
        ],
        **extra,
    )
    if dp.is_main():  # one process repairs the shared state, the others wait
        recover_state(state_dir, out_dir=checkpoints_dir, tokenizer=tokenizer, schedule=save_steps(run))
    trainer.accelerator.wait_for_everyone()
    if finished_step(state_dir) is not None:
        log.info(
            "run %s finished before (step %d): its steps are published", run["name"], finished_step(state_dir)
        )
        publish_metrics(state_dir, metrics_path)
        return
    resume = latest_trainer_checkpoint(state_dir, hashes=False)  # recover_state verified the contents
    if resume and checkpoint_step(resume) >= run["steps"]:
        # transformers' loop takes one more step before it checks max_steps: a run killed after its
        # last save (before the workflow marked it finished) would train and log a step past the end
        log.info("run %s: %s is its last step: nothing to train", run["name"], resume.name)
        publish_metrics(state_dir, metrics_path)
        return
    if resume:
        log.info("resuming from %s", resume)
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


def with_epoch_seeded_sampler(trainer_cls: type) -> type:
    """``trainer_cls`` whose prompt order in each epoch depends on the seed and the epoch only.

    TRL's ``RepeatSampler`` shuffles every epoch with one generator seeded once, so epoch ``e``'s
    order is the ``e``-th draw of that generator. A resumed run builds a new sampler and transformers
    starts it at the resumed epoch (it no longer replays earlier epochs): from epoch 1 on, a resumed
    run trained epoch 0's order again, not the order the uninterrupted run saw (found by the
    multi-process resume test: step 3 of a 2-steps-per-epoch run trained step 1's prompts). Given
    ``set_epoch``, which accelerate's data loader forwards to it before each epoch, the sampler
    reseeds with ``seed + epoch``: epoch 0 keeps TRL's order, and any epoch's order is the same
    whether the run was resumed or not.
    """

    class EpochSeeded(trainer_cls):  # type: ignore[misc, valid-type]
        def _get_train_sampler(self, *args: Any, **kwargs: Any) -> Any:
            sampler = super()._get_train_sampler(*args, **kwargs)
            seed, generator = getattr(sampler, "seed", None), getattr(sampler, "generator", None)
            if seed is not None and generator is not None and not hasattr(sampler, "set_epoch"):
                sampler.set_epoch = lambda epoch: generator.manual_seed(int(seed) + int(epoch))
            return sampler

    EpochSeeded.__name__ = EpochSeeded.__qualname__ = f"EpochSeeded{trainer_cls.__name__}"
    return EpochSeeded


def early_stopping_callback(
    spec: Spec,
    validation_rows: list[dict[str, Any]] | None,
    tokenizer: Any,
    n_train: int,
    max_new_tokens: int,
) -> Any:
    """The run's ``EarlyStoppingCallback``, or None when it has no ``early_stopping`` section."""
    run = spec.run
    settings = run.get("early_stopping")
    if not settings:
        return None
    from rlpipe.train.validation import EarlyStoppingCallback, ValidationEarlyStopping

    if not validation_rows:
        raise ValueError(f"run {run['name']}: early_stopping needs validation rows (data/validation.jsonl)")
    controller = ValidationEarlyStopping(
        settings,
        validation_rows,
        tokenizer,
        min_step=early_stopping_min_step(spec, n_train),
        max_new_tokens=max_new_tokens,
    )
    return EarlyStoppingCallback(controller)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def grpo_mask_probe(policy_dir: str, rows: Sequence[Mapping[str, Any]], spec: Spec) -> dict[str, Any]:
    """Pre-flight's loss-mask probe through TRL's public ``GRPOTrainer.compute_loss`` (the run's settings).

    The batch is built here, as TRL lays it out (left-padded prompts, right-padded completions with a
    mask up to and including EOS, one advantage per completion), from completions the run's policy
    samples: two prompts of different lengths, ``num_generations`` completions each, every other one
    ended early, advantages of alternating sign.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from rlpipe.models import hub_kernels_enabled, load_pretrained, resolve_model_dir
    from rlpipe.train.mask_probe import end_early, mask_rows, probe_loss

    run, hp = spec.run, spec.settings
    src = resolve_model_dir(policy_dir)
    tokenizer = AutoTokenizer.from_pretrained(src)
    tokenizer.padding_side = "left"
    model = load_pretrained(AutoModelForCausalLM, src)
    cuda = torch.cuda.is_available()

    def render(row: Mapping[str, Any]) -> str:
        return tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)

    chosen = mask_rows(rows, lambda row: len(tokenizer(render(row), add_special_tokens=False).input_ids))
    k = hp.num_generations
    with tempfile.TemporaryDirectory(prefix="rlpipe-preflight-") as tmp:
        settings = {
            **hp.trl_kwargs(),
            "per_device_train_batch_size": k * len(chosen),
            "gradient_accumulation_steps": 1,
            "steps_per_generation": 1,
        }
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
            model_init_kwargs={"use_kernels": hub_kernels_enabled()} if hp.beta else None,
            **settings,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=make_reward_fn(),
            args=args,
            train_dataset=reward_dataset([dict(r) for r in rows]),
            processing_class=tokenizer,
            peft_config=lora_config(run.get("lora")),
        )
        trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop, which is not run here
        policy = trainer.model
        device = next(policy.parameters()).device
        enc = tokenizer(
            [render(r) for r in chosen for _ in range(k)],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to(device)
        policy.eval()
        with torch.no_grad():
            sequences = policy.generate(
                input_ids=enc.input_ids,
                attention_mask=enc.attention_mask,
                do_sample=True,
                temperature=hp.temperature,
                top_p=hp.top_p,
                max_new_tokens=hp.max_completion_length,
                pad_token_id=tokenizer.pad_token_id,
            )
        ids = sequences[:, enc.input_ids.shape[1] :].clone()
        is_eos = ids == tokenizer.eos_token_id
        mask = ((is_eos.cumsum(dim=1) - is_eos.long()) == 0).long()  # up to and including the first EOS
        ids[mask == 0] = tokenizer.pad_token_id
        n = len(ids)
        end_early(ids, mask, range(0, n, 2), tokenizer.eos_token_id, tokenizer.pad_token_id)
        inputs: dict[str, Any] = {
            "prompt_ids": enc.input_ids,
            "prompt_mask": enc.attention_mask,
            "completion_ids": ids,
            "completion_mask": mask,
            "advantages": torch.tensor([1.0 if i % 2 else -1.0 for i in range(n)], device=device),
            "num_items_in_batch": mask.sum(),
        }
        policy.train()
        if hp.beta:  # the KL term's reference: the policy itself (a constant; the mask is what is probed)
            with torch.no_grad():
                inputs["ref_per_token_logps"] = _completion_logprobs(policy, inputs, hp.temperature)
        result = probe_loss(
            policy,
            lambda: trainer.compute_loss(policy, inputs),
            inputs["prompt_mask"],
            inputs["completion_mask"],
        )
    result["loss_path"] = f"trl.GRPOTrainer.compute_loss (loss_type={args.loss_type})"
    return result


def _completion_logprobs(model: Any, inputs: Mapping[str, Any], temperature: float) -> Any:
    """Per-token log-probs of the completion tokens, as TRL computes them (logits / temperature)."""
    import torch

    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    t = inputs["completion_ids"].shape[1]
    logits = model(input_ids=ids, attention_mask=attention, logits_to_keep=t + 1).logits[:, :-1]
    logprobs = torch.log_softmax(logits.float() / temperature, dim=-1)
    return logprobs.gather(-1, inputs["completion_ids"][..., None]).squeeze(-1)
