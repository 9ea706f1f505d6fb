"""What every training method provides, and the typed run spec it trains from.

A method is one module under ``rlpipe.train.methods`` holding a ``Settings`` dataclass (its
hyperparameter section of a run: every field carries its default, ``__post_init__`` checks the
fields together, as TRL's ``GRPOConfig`` does) and a ``Method`` subclass registered under its name
(``rlpipe.train.methods.register``). Config loading, pre-flight, the launcher and the training job
only ever ask the registry, so nothing outside it branches on a method's name.

This module (and every method module at import time) must stay importable without torch: the config
builds specs while Snakemake parses the workflow. Trainers are imported inside ``train`` and
``mask_probe``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


class SpecError(ValueError):
    """A run spec its method cannot train; the message names the key to change."""


@dataclass(frozen=True)
class Settings:
    """A method's hyperparameter section. Subclasses declare the fields; this base parses a mapping."""

    @classmethod
    def from_section(cls, section: Mapping[str, Any] | None, where: str) -> Settings:
        """Parse a run's section (``where`` is its key, e.g. ``ppo``); unknown keys are refused by name."""
        section = dict(section or {})
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(section) - set(known))
        if unknown:
            raise SpecError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
        return cls(**section)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Spec:
    """One training run as its method sees it: the expanded run and the method's typed settings.

    ``run`` is the run spec ``rlpipe.config`` expanded (name, seed, steps, save_every, lora, pcgrad,
    early_stopping, rollout, resources, ...): plain data, so it can be a Snakemake param and travel to
    launched workers as JSON. ``settings`` is parsed from ``run[method.section]``.
    """

    run: Mapping[str, Any]
    method: Method
    settings: Any

    @property
    def name(self) -> str:
        return str(self.run["name"])

    @property
    def seed(self) -> int:
        return int(self.run["seed"])

    @property
    def steps(self) -> int:
        return int(self.run["steps"])

    @property
    def processes(self) -> int:
        """Training processes the run is launched with (``resources.gpus``; at least one)."""
        return max(1, int(self.run.get("resources", {}).get("gpus", 0)))

    def prompts_per_step(self) -> float:
        """Training prompts one training step consumes (what a step is, is the method's)."""
        return self.method.prompts_per_step(self.settings)


class Method:
    """A training method: its settings, its trainer, and the hooks config, pre-flight and launch use."""

    #: The name runs give as ``method:``.
    name: ClassVar[str]
    #: The run key holding the method's hyperparameters (several methods may share one).
    section: ClassVar[str]
    #: The method's hyperparameter dataclass.
    settings_cls: ClassVar[type[Settings]]
    #: ``accelerate launch`` config (a name under config/accelerate/) when the run names none.
    accelerate_default: ClassVar[str]
    #: Hyperparameters that change neither sampling nor the loss: the pre-flight job ignores them,
    #: so changing one does not rerun pre-flight (and the run waiting for it).
    preflight_irrelevant: ClassVar[frozenset[str]] = frozenset()

    def section_of(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """The run's section as it is stored in the expanded run (the default: as written)."""
        return dict(run.get(self.section) or {})

    def spec(self, run: Mapping[str, Any]) -> Spec:
        """The run's typed spec; ``SpecError`` names what cannot work."""
        settings = self.settings_cls.from_section(run.get(self.section), self.section)
        spec = Spec(run=run, method=self, settings=settings)
        self.check(spec)
        return spec

    def check(self, spec: Spec) -> None:
        """Checks that need more of the run than the settings section (processes, pcgrad, ...)."""

    def prompts_per_step(self, settings: Any) -> float:
        raise NotImplementedError

    def sampling(self, spec: Spec) -> dict[str, Any]:
        """The rollouts' group size and sampling: ``k``, ``temperature``, ``top_p``, ``max_new_tokens``."""
        raise NotImplementedError

    def single_process_reason(self, spec: Spec, distributed_type: str) -> str | None:
        """Why the run cannot train as several processes under an accelerate config of this
        ``distributed_type``, or None when it can."""
        return None

    def train(self, spec: Spec, paths: Mapping[str, Any]) -> None:
        """Train (or resume) the run. ``paths``: ``policy`` (starting weights), ``train`` and
        ``validation`` (JSONL rows; validation only with early stopping), ``checkpoints``,
        ``state_dir``, ``metrics``."""
        raise NotImplementedError

    def mask_probe(self, policy_dir: str, rows: Sequence[Mapping[str, Any]], spec: Spec) -> dict[str, Any]:
        """One batch through the method's own loss under the pre-flight gradient probe
        (``rlpipe.train.preflight.probe_loss``): the loss-mask result, with ``loss_path``."""
        raise NotImplementedError


def trainer_paths(paths: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments every trainer takes from ``Method.train``'s ``paths`` (validation rows
    are read only when early stopping asked for them)."""
    from rlpipe.tracking.io import read_jsonl

    return dict(
        checkpoints_dir=paths["checkpoints"],
        state_dir=paths["state_dir"],
        metrics_path=paths["metrics"],
        validation_rows=read_jsonl(paths["validation"]) if paths.get("validation") else None,
    )


def check_pcgrad_domains(domains: Sequence[str]) -> None:
    """PCGrad projects one domain's gradient against another's: it needs at least two domains."""
    if len(set(domains)) < 2:
        raise SpecError(
            f"pcgrad: true needs tasks of at least two domains in data.tasks / data.sources "
            f"(found {sorted(set(domains)) or 'none'}); PCGrad projects one domain's gradient against "
            "another's"
        )
