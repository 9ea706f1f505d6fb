"""PPO's checkpoint state: what a resumable checkpoint holds and how it is written, restored and
exported (the layout of ``rlpipe.train.checkpoints``: ``state_dir/checkpoint-N``, ``exported/step_N``).

A mixin of ``rlpipe.train.ppo.PPOTrainer``: the policy in HF/PEFT format, the critic's trainable
tensors, the optimizer, every rank's RNG state, the step, the data-order position, the KL controller,
the PCGrad generator and the early-stopping state.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlpipe.train import distributed as dp
from rlpipe.train.checkpoints import commit_checkpoint, staging_dir

log = logging.getLogger(__name__)

CRITIC_DIR = "critic"  # a sub-directory: ``export_step`` copies top-level files only, so it stays private


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _rng_file(rank: int) -> str:
    """Rank 0's RNG file keeps the one-process name; rank r's is ``rng_state_<r>.pth`` (as HF's Trainer)."""
    return "rng_state.pth" if rank == 0 else f"rng_state_{rank}.pth"


class PPOCheckpointState:
    """Save, restore and publish the trainer's resumable state."""

    def _critic_state(self) -> dict[str, Tensor]:
        """Trainable critic tensors only (LoRA: adapter + head, not the frozen backbone)."""
        trainable = {n for n, p in self.critic.named_parameters() if p.requires_grad}
        return {k: v.detach().cpu() for k, v in self.critic.state_dict().items() if k in trainable}

    def _load_state(self, ckpt: Path) -> None:
        state = json.loads((ckpt / "trainer_state.json").read_text())
        critic = torch.load(ckpt / CRITIC_DIR / "critic.pt", map_location=self.device, weights_only=True)
        missing = set(self._critic_state()) - set(critic)
        if missing:
            raise ValueError(
                f"{ckpt}: critic state lacks {sorted(missing)[:5]} (a different critic setting?)"
            )
        self.critic.load_state_dict(critic, strict=False)
        self.optimizer.load_state_dict(
            torch.load(ckpt / "optimizer.pt", map_location=self.device, weights_only=True)
        )
        rng = ckpt / _rng_file(self.rank)
        if rng.exists():
            _set_rng_state(torch.load(rng, weights_only=False))
        else:  # resumed with more processes than it was saved with: fresh, seeded streams
            log.warning("%s: no %s; rank %d samples from freshly seeded streams", ckpt, rng.name, self.rank)
        self.step = int(state["global_step"])
        self.optimizer_steps = int(state["optimizer_steps"])
        self.data_epoch, self.data_pos = int(state["data"]["epoch"]), int(state["data"]["pos"])
        self.elapsed_s = float(state["elapsed_s"])
        self.kl_ctl.load_state_dict(state["kl_controller"])
        self.pcgrad_gen.set_state(torch.tensor(state["pcgrad_generator"], dtype=torch.uint8))
        if self.early is not None:
            if "early_stopping" not in state:
                raise ValueError(f"{ckpt}: no early-stopping state in this checkpoint (made without it?)")
            self.early.load_state_dict(state["early_stopping"])
        log.info("resumed from %s (step %d, %d optimizer steps)", ckpt, self.step, self.optimizer_steps)

    def save(self) -> Path:
        """Commit ``state_dir/checkpoint-<step>`` (``checkpoints.commit_checkpoint``): written in the
        staging area, manifested, renamed into place, exported when the step is scheduled, and only
        then are older checkpoints dropped.

        Called on every rank: the ranks' RNG states are gathered, rank 0 writes (the models and the
        optimizer are replicas), and all ranks wait until the checkpoint is complete.
        """
        path = self.state_dir / f"checkpoint-{self.step}"
        rng_states = dp.all_gather_objects(_rng_state())
        if self.is_main:
            self._write_checkpoint(rng_states)
        dp.barrier()
        return path

    def _write_checkpoint(self, rng_states: list[dict[str, Any]]) -> None:
        staged = staging_dir(self.state_dir) / f"checkpoint-{self.step}"
        if staged.exists():
            shutil.rmtree(staged)
        staged.mkdir(parents=True)
        self.policy.save_pretrained(staged)
        (staged / CRITIC_DIR).mkdir()
        torch.save(self._critic_state(), staged / CRITIC_DIR / "critic.pt")
        torch.save(self.optimizer.state_dict(), staged / "optimizer.pt")
        for r, rng in enumerate(rng_states):
            torch.save(rng, staged / _rng_file(r))
        state = {
            "global_step": self.step,
            "max_steps": self.run["steps"],
            "optimizer_steps": self.optimizer_steps,
            "data": {"epoch": self.data_epoch, "pos": self.data_pos},
            "elapsed_s": self.elapsed_s,
            "kl_controller": self.kl_ctl.state_dict(),
            "pcgrad_generator": self.pcgrad_gen.get_state().tolist(),
            **({"early_stopping": self.early.state_dict()} if self.early is not None else {}),
            "method": "ppo",
            "run": self.run["name"],
        }
        (staged / "trainer_state.json").write_text(json.dumps(state, indent=1))
        commit_checkpoint(
            staged,
            self.state_dir,
            self.step,
            export_to=self.checkpoints_dir if self.step in self.schedule else None,
            tokenizer=self.tokenizer,
        )
