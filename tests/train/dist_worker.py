"""A launched training worker with test hooks: ``python -m dist_worker worker <launch.json>``.

The multi-process GRPO tests (test_distributed_grpo.py) run the launcher's own command
(``rlpipe.train.launch.job_command``) with this module in place of ``rlpipe.train.launch``; it installs
the hooks below and then calls ``rlpipe.train.launch.main`` unchanged, so every process trains
through the real worker, trainer, FSDP wrapping, saving and resuming. No hook skips rlpipe code;
they add a dense reward, fix the sampling, slow a rank down or kill one.

* A dense toy scorer (``test_char_sum``): a random tiny model earns 0 from the real scorers, and
  GRPO's advantages (and gradients) would all be 0.
* Sampling fixed per completion: the real batched ``generate`` samples, but each completion draws
  its tokens from its own generator, seeded with the training step and its position in the step's
  global batch (its rank's slice offset plus its row): ``RowSeeded``. One process with the whole
  batch and two with half of it each then sample the same completions, so their losses, gradients
  and weights can be compared (they would otherwise draw from differently seeded streams, and no
  tolerance could hold).
* ``RLPIPE_TEST_WORKER`` (JSON), for the save and kill tests:
  ``slow_save``: ``{rank: seconds}`` slept before that rank writes its own file of each checkpoint
  (``rng_state_<rank>.pth``, after the collective model and optimizer gathers): the main process
  must not commit the checkpoint without it;
  ``slow_commit``: seconds the main process sleeps after writing a checkpoint, before committing it
  (the other ranks wait in the barrier);
  ``kill``: ``[rank, step]``: that rank SIGKILLs itself while generating for ``step`` (mid-step).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

import torch

SCORER = "test_char_sum"
HOOKS: dict[str, Any] = json.loads(os.environ.get("RLPIPE_TEST_WORKER") or "{}")
# the first completion's seed (from the step and this rank's offset in the global batch) and the
# number of rows, while TRL generates
_CONTEXT: dict[str, int] = {}


def char_sum(response: str, ground_truth: Any, extra: Any = None) -> float:
    """A reward that differs between the random completions of a tiny model (their characters)."""
    return sum(map(ord, response)) % 97 / 96


class RowSeeded:
    """The last logits processor of a sampled ``generate`` (after temperature, top-k, top-p): each
    row draws its next token from that distribution with its own generator, and the scores then
    allow only that token, so ``generate``'s own multinomial draw picks it."""

    def __init__(self, seeds: Any) -> None:
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(scores.float(), dim=-1).cpu()
        picks = torch.stack(
            [torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(self.generators)]
        )
        only = torch.full_like(scores, float("-inf"))
        return only.scatter_(1, picks.to(scores.device), 0.0)


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _install() -> None:
    import transformers
    from transformers.generation.utils import GenerationMixin
    from trl import GRPOTrainer

    from rlpipe.rewards.registry import SCORERS
    from rlpipe.train import checkpoints

    SCORERS.setdefault(SCORER, char_sum)

    single_turn = GRPOTrainer._generate_single_turn

    def generate_single_turn(self: Any, prompt_ids: Any, *args: Any, **kwargs: Any) -> Any:
        step = self.state.global_step + 1
        if HOOKS.get("kill") and HOOKS["kill"] == [_rank(), step]:
            os.kill(os.getpid(), signal.SIGKILL)
        offset = self.accelerator.process_index * len(prompt_ids)
        _CONTEXT.update(first_seed=1_000_003 * step + offset, rows=len(prompt_ids))
        try:
            return single_turn(self, prompt_ids, *args, **kwargs)
        finally:
            _CONTEXT.clear()

    logits_processors = GenerationMixin._get_logits_processor

    def with_row_seeds(self: Any, *args: Any, **kwargs: Any) -> Any:
        processors = logits_processors(self, *args, **kwargs)
        if _CONTEXT:  # after temperature, top-k and top-p: the distribution generate samples from
            seeds = range(_CONTEXT["first_seed"], _CONTEXT["first_seed"] + _CONTEXT["rows"])
            processors.append(RowSeeded(seeds))
        return processors

    save_rng_state = transformers.Trainer._save_rng_state

    def slow_save_rng_state(self: Any, *args: Any, **kwargs: Any) -> Any:
        time.sleep(float(HOOKS.get("slow_save", {}).get(str(_rank()), 0)))
        return save_rng_state(self, *args, **kwargs)

    commit = checkpoints.commit_checkpoint

    def slow_commit(*args: Any, **kwargs: Any) -> Any:
        time.sleep(float(HOOKS.get("slow_commit", 0)))
        return commit(*args, **kwargs)

    GRPOTrainer._generate_single_turn = generate_single_turn
    GenerationMixin._get_logits_processor = with_row_seeds
    transformers.Trainer._save_rng_state = slow_save_rng_state
    checkpoints.commit_checkpoint = slow_commit


if __name__ == "__main__":
    _install()
    from rlpipe.train.launch import main

    main(sys.argv[1:])
