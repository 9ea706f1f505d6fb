"""The experiment config model: validation, run expansion (defaults, sweeps, seeds), suites.

Everything here runs while Snakemake parses the workflow, before any job starts, so a bad config
fails in seconds with one line naming the file and the key. The result is plain data the rules
read: ``Experiment.runs[name]`` is a complete, self-contained run spec, so a rule's ``params``
depend only on its own run and Snakemake reruns only what a change touched.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlpipe.data.splits import DEFAULT_VALIDATION_FRACTION

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "workflow" / "schemas"
SUITES = ROOT / "config" / "suites"
MAIN_MODEL = "base"
# PPO hyperparameters a run does not set (``ppo:`` section; see config.schema.yaml). Filled in only
# for PPO runs, so adding PPO never changes the params (and so never reruns) an existing GRPO run.
PPO_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1.0e-6,
    "critic_learning_rate": 1.0e-5,
    "critic": "separate",
    "gamma": 1.0,
    "lam": 0.95,
    "clip_eps": 0.2,
    "value_clip": 0.2,
    "vf_coef": 0.5,
    "entropy_coef": 0.0,
    "kl_mode": "reward",
    "kl_coef": 0.01,
    "kl_target": None,
    "kl_horizon": 10000,
    "kl_estimator": "k1",
    "pcgrad_critic": "sum",
    "ppo_epochs": 1,
    "minibatch_size": 32,
    "rollout_batch_size": 32,
    "samples_per_prompt": 4,
    "temperature": 1.0,
    "max_new_tokens": 256,
    "max_grad_norm": 1.0,
    "whiten_advantages": True,
    # Memory only (the update is the same): sequences per forward/backward on each process, the
    # minibatch's gradient accumulated over them (None: the whole per-process minibatch at once);
    # gradient checkpointing recomputes activations in the backward pass (policy and critic).
    "micro_batch_size": None,
    "gradient_checkpointing": False,
}
# Early-stopping settings a run does not set (``early_stopping:`` section); ``eval_every`` defaults
# to the run's checkpoint interval. Filled in only for runs that have the section.
EARLY_STOPPING_DEFAULTS: dict[str, Any] = {
    "metric": "validation_reward",
    "mode": "max",
    "min_delta": 0.0,
    "min_steps": 0,
    "min_epochs": 0,
}


class ConfigError(ValueError):
    """A config problem, with the file and key it concerns in its message."""


@dataclass
class Experiment:
    """A validated, expanded experiment."""

    name: str
    config: dict[str, Any]
    models: dict[str, dict[str, Any]]
    runs: dict[str, dict[str, Any]]
    suite: dict[str, Any]
    seeds: list[int]
    baseline: str | None
    sources: list[str] = field(default_factory=list)
    # data.sources resolved (rlpipe.config.load_train_sources): task -> {domain, scorer, source, validation}
    train_sources: dict[str, Any] = field(default_factory=dict)

    @property
    def out(self) -> str:
        """The results folder of this experiment."""
        return f"results/{self.name}"

    @property
    def hub_kernels(self) -> bool:
        """Whether jobs may load Hub kernels (``hub_kernels``; default off: nothing is fetched)."""
        return bool(self.config.get("hub_kernels", False))

    def base_run(self, model: str) -> str:
        """The pseudo-run that stands for a base model's policy at step 0."""
        return "base" if model == MAIN_MODEL else f"base-{model}"

    @property
    def base_runs(self) -> dict[str, str]:
        """Base pseudo-run name -> model name, for every model some run trains."""
        used = sorted({run["model"] for run in self.runs.values()})
        return {self.base_run(m): m for m in used}


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file; the error names the file."""
    try:
        with open(path) as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None


def _key_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _schema_registry() -> Any:
    """Every schema under ``workflow/schemas`` by file name, so one can ``$ref`` another's ``$defs``.

    The experiment schema reuses the suite schema's data-source definition (``data.sources``): one
    definition of a source, however it is used.
    """
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    return Registry().with_resources(
        (path.name, Resource.from_contents(load_yaml(path), default_specification=DRAFT202012))
        for path in sorted(SCHEMAS.glob("*.schema.yaml"))
    )


def validate(obj: Any, schema_name: str, source: str) -> None:
    """Validate ``obj`` against ``workflow/schemas/<schema_name>``; raise one readable line."""
    import jsonschema

    schema = load_yaml(SCHEMAS / schema_name)
    validator = jsonschema.Draft202012Validator(schema, registry=_schema_registry())
    errors = sorted(validator.iter_errors(obj), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if not errors:
        return
    # A failing subschema makes its keys "unevaluated" too; report the real failure first.
    specific = [e for e in errors if e.validator != "unevaluatedProperties"]
    err = jsonschema.exceptions.best_match(specific or errors)
    where = _key_path(err.absolute_path)
    message = err.message
    if err.validator in ("additionalProperties", "unevaluatedProperties"):
        message = f"unknown key(s): {message.split('(')[-1].rstrip(')')}"
    raise ConfigError(f"{source}: {where}: {message}")


def canonical(obj: Any) -> Any:
    """``obj`` with every mapping's keys sorted, recursively.

    Snakemake compares a job's params by their printed form, so key order would count as a
    change: reordering keys in a YAML file must not retrain anything.
    """
    if isinstance(obj, dict):
        return {k: canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [canonical(v) for v in obj]
    return obj


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _set_dotted(obj: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        obj = obj.setdefault(part, {})
        if not isinstance(obj, dict):
            raise ConfigError(f"sweep key {dotted!r}: {part!r} is not a section")
    obj[leaf] = value


def _value_tag(value: Any) -> str:
    return (
        str(value).replace(".", "p").replace("-", "m") if not isinstance(value, bool) else str(value).lower()
    )


def sweep_combinations(
    sweep: dict[str, list[Any]], paired: list[list[str]] | None = None, where: str = "sweep"
) -> list[dict[str, Any]]:
    """One ``{dotted key: value}`` per run of a sweep: the product over its axes.

    An axis is one key, or a ``paired`` group of keys whose lists are walked together (zip): with
    ``paired: [[lora.r, lora.alpha]]``, ``lora.r: [8, 16]`` and ``lora.alpha: [16, 32]`` give two
    combinations, not four -- how ``alpha = 2r`` is swept. Axes are ordered by their first key, so a
    sweep without ``paired`` expands exactly as before.
    """
    groups = [list(g) for g in paired or []]
    grouped = [key for group in groups for key in group]
    for key in grouped:
        if key not in sweep:
            raise ConfigError(f"{where}: paired key {key!r} is not a sweep key (sweep: {', '.join(sweep)})")
        if grouped.count(key) > 1:
            raise ConfigError(f"{where}: paired key {key!r} is in more than one group")
    for group in groups:
        lengths = {key: len(sweep[key]) for key in group}
        if len(set(lengths.values())) > 1:
            listed = ", ".join(f"{k}: {n}" for k, n in lengths.items())
            raise ConfigError(f"{where}: paired keys need lists of one length ({listed})")
    axes = [sorted(g) for g in groups] + [[k] for k in sweep if k not in grouped]
    axes.sort(key=lambda axis: axis[0])
    combos = []
    for picks in itertools.product(*(range(len(sweep[axis[0]])) for axis in axes)):
        combo = {key: sweep[key][i] for axis, i in zip(axes, picks, strict=True) for key in axis}
        combos.append({key: combo[key] for key in sorted(combo)})
    return combos


def expand_runs(config: dict[str, Any], source: str) -> dict[str, dict[str, Any]]:
    """Complete run specs: defaults merged, sweeps expanded (one run per combination), seeds applied.

    A sweep over ``{lora.r: [8, 16], grpo.beta: [0, 0.04]}`` of run ``lora`` yields runs
    ``lora_r8_beta0`` ... ; ``paired`` groups of sweep keys vary together (``sweep_combinations``);
    with several seeds every run gets a ``_s<seed>`` suffix.
    """
    defaults = config.get("run_defaults", {})
    seeds = config.get("seeds", [0])
    every = config.get("checkpoints", {}).get("every")
    runs: dict[str, dict[str, Any]] = {}
    for index, raw in enumerate(config["runs"]):
        spec = _deep_merge(defaults, {k: v for k, v in raw.items() if k not in ("sweep", "paired")})
        sweep = raw.get("sweep", {})
        keys = sorted(sweep)
        where = f"{source}: runs[{index}] ({raw['name']})"
        for combination in sweep_combinations(sweep, raw.get("paired"), where):
            combo = [combination[k] for k in keys]
            variant = copy.deepcopy(spec)
            suffix = ""
            for key, value in zip(keys, combo, strict=True):
                _set_dotted(variant, key, value)
                suffix += f"_{key.split('.')[-1]}{_value_tag(value)}"
            for seed in seeds:
                name = raw["name"] + suffix + (f"_s{seed}" if len(seeds) > 1 else "")
                if name in runs:
                    raise ConfigError(f"{source}: runs[{index}]: run name {name!r} is used twice")
                run = {**variant, "name": name, "family": raw["name"], "seed": seed}
                run.setdefault("method", "grpo")
                run.setdefault("model", MAIN_MODEL)
                run.setdefault("lora", None)
                run.setdefault("grpo", {})
                run.setdefault("resources", {})
                if run["method"] == "ppo":
                    run["ppo"] = {**PPO_DEFAULTS, **run.get("ppo", {})}
                if "steps" not in run:
                    raise ConfigError(
                        f"{source}: runs[{index}] ({name}): 'steps' is missing (set it or run_defaults.steps)"
                    )
                run["save_every"] = min(every or run["steps"], run["steps"])
                if run.get("early_stopping") is not None:
                    run["early_stopping"] = {
                        **EARLY_STOPPING_DEFAULTS,
                        "eval_every": run["save_every"],
                        **run["early_stopping"],
                    }
                run["sweep"] = dict(zip(keys, combo, strict=True))
                runs[name] = run
    return runs


def checkpoint_steps(run: dict[str, Any]) -> list[int]:
    """Steps at which a run saves a checkpoint: every ``save_every`` steps and the last step."""
    steps = list(range(run["save_every"], run["steps"] + 1, run["save_every"]))
    if steps[-1] != run["steps"]:
        steps.append(run["steps"])
    return steps


def training_domains(data: dict[str, Any]) -> list[str]:
    """The domains of the training mix: procedural tasks' and real datasets' (``data.sources``)."""
    from rlpipe.data.tasks import TASKS

    procedural = {TASKS[t].domain for t in data.get("tasks", {}) if t in TASKS}
    return sorted(procedural | {spec["domain"] for spec in data.get("sources", {}).values()})


def training_rows(data: dict[str, Any]) -> int:
    """Training problems the mix holds, as far as the config says: procedural counts plus each real
    dataset's ``subsample`` (a dataset without one counts as 0 here, so ``min_epochs`` is a lower bound)."""
    sources = data.get("sources", {}).values()
    return sum(data.get("tasks", {}).values()) + sum(s["source"].get("subsample") or 0 for s in sources)


def evaluation_steps(run: dict[str, Any]) -> list[int]:
    """Steps at which an early-stopping run scores its validation split: every ``eval_every`` steps."""
    es = run.get("early_stopping")
    if not es:
        return []
    return list(range(es["eval_every"], run["steps"] + 1, es["eval_every"]))


def save_steps(run: dict[str, Any]) -> list[int]:
    """Every step a run may publish a checkpoint at: the schedule plus each validation step.

    Without early stopping this is ``checkpoint_steps(run)`` and every one of them is written.
    With it, training may stop at an evaluation step; the checkpoints that then exist are those of
    this list up to the stop, so the best evaluated one is always among them.
    """
    return sorted(set(checkpoint_steps(run)) | set(evaluation_steps(run)))


def prompts_per_step(run: dict[str, Any]) -> float:
    """Training prompts one training step consumes (what one step is, is method-specific).

    GRPO: an optimizer step takes ``per_device_train_batch_size * gradient_accumulation_steps``
    completions, ``num_generations`` per prompt, and each generated batch is reused for
    ``num_iterations`` steps. PPO: one step is one rollout of ``rollout_batch_size`` prompts.
    Single process (rlpipe trains on one device).
    """
    if run["method"] == "ppo":
        return float(run["ppo"]["rollout_batch_size"])
    hp = run["grpo"]
    completions = hp.get("per_device_train_batch_size", 8) * hp.get("gradient_accumulation_steps", 1)
    return completions / hp.get("num_generations", 8) / hp.get("num_iterations", 1)


def early_stopping_min_step(run: dict[str, Any], n_train: int) -> int:
    """The first step early stopping may stop at: ``min_steps`` or ``min_epochs`` passes, whichever is later.

    ``min_epochs`` converts to steps with the training-set size and the prompts one step consumes:
    ``ceil(min_epochs * n_train / prompts_per_step)``.
    """
    es = run["early_stopping"]
    epoch_steps = math.ceil(es["min_epochs"] * n_train / prompts_per_step(run) - 1e-9)
    return max(int(es["min_steps"]), epoch_steps, 0)


def _check_early_stopping(run: dict[str, Any], where: str, n_train: int) -> None:
    """Refuse early-stopping settings that cannot work: no evaluation, or no stop, within ``steps``."""
    es = run["early_stopping"]
    steps, every = run["steps"], es["eval_every"]
    if es["metric"] == "validation_reward" and es["mode"] != "max":
        raise ConfigError(
            f"{where}: early_stopping.mode {es['mode']!r} with metric validation_reward would stop while "
            "the reward rises; use mode: max"
        )
    if every > steps:
        raise ConfigError(
            f"{where}: early_stopping.eval_every ({every}) is more than steps ({steps}): the validation "
            "split would never be scored; lower eval_every or raise steps"
        )
    min_step = early_stopping_min_step(run, n_train)
    if min_step > steps:
        raise ConfigError(
            f"{where}: early_stopping needs at least {min_step} steps before it may stop (min_steps "
            f"{es['min_steps']}, min_epochs {es['min_epochs']} x {n_train} training rows / "
            f"{prompts_per_step(run):g} prompts per step) but steps is {steps}; raise steps or lower "
            "min_steps / min_epochs"
        )
    # The first evaluation is always the best so far; a stop needs `patience` worse ones after it.
    first_stop = max((es["patience"] + 1) * every, math.ceil(min_step / every) * every)
    if first_stop > steps:
        raise ConfigError(
            f"{where}: early_stopping can never stop this run: the earliest stop is at step {first_stop} "
            f"(patience {es['patience']} evaluations after the first, every {every} steps, not before "
            f"step {min_step}) but steps is {steps}; lower patience or eval_every, or raise steps"
        )


def model_layer_names(model: dict[str, Any]) -> list[str] | None:
    """Adaptable layer names of a base model, from its architecture alone (meta device, no weights).

    Tiny models are built from their ``arch``; local models from their config.json; hub models
    only when their config.json is already in the local HF cache (config validation never goes
    online). None when the architecture cannot be known here.
    """
    from rlpipe.train.lora import skeleton_modules

    if model["source"] == "tiny":
        from rlpipe.models import SPECIAL_TOKENS, tiny_config

        return skeleton_modules(tiny_config(model["arch"], len(SPECIAL_TOKENS) + 96, 0, 3))
    from transformers import AutoConfig

    try:
        if model["source"] == "local":
            config = AutoConfig.from_pretrained(model["path"])
        else:
            config = AutoConfig.from_pretrained(
                model["repo_id"], revision=model.get("revision"), local_files_only=True
            )
        return skeleton_modules(config)
    except Exception:  # not cached, or an architecture transformers cannot build: checked at train start
        return None


def _check_lora(run: dict[str, Any], models: dict[str, Any], where: str, cache: dict[str, Any]) -> None:
    """Refuse ``lora.target_modules`` that match no layer of the run's base model."""
    from rlpipe.train.lora import lora_target_problem

    if run["model"] not in cache:
        cache[run["model"]] = model_layer_names(models[run["model"]])
    names = cache[run["model"]]
    problem = names is not None and lora_target_problem(names, run["lora"], f"model {run['model']!r}")
    if problem:
        raise ConfigError(f"{where}: {problem}; change lora.target_modules")


def _check_run(
    run: dict[str, Any],
    models: dict[str, Any],
    source: str,
    data: dict[str, Any] | None = None,
    layer_cache: dict[str, Any] | None = None,
) -> None:
    where = f"{source}: run {run['name']}"
    if run["model"] not in models:
        raise ConfigError(f"{where}: model {run['model']!r} is not defined (known: {', '.join(models)})")
    if run.get("lora") and run["lora"].get("target_modules", "all-linear") != "all-linear":
        _check_lora(run, models, where, {} if layer_cache is None else layer_cache)
    if run.get("pcgrad"):
        domains = training_domains(data or {})
        if len(domains) < 2:
            raise ConfigError(
                f"{where}: pcgrad: true needs tasks of at least two domains in data.tasks / data.sources "
                f"(found {domains or 'none'}); PCGrad projects one domain's gradient against another's"
            )
    _check_launch(run, where)
    if run.get("early_stopping"):
        _check_early_stopping(run, where, training_rows(data or {}))
    if run["method"] == "ppo":
        _check_ppo(run["ppo"], where, max(1, run["resources"].get("gpus", 0)))
        return
    hp = run["grpo"]
    gens = hp.get("num_generations", 8)
    # TRL generates per_device_train_batch_size * processes * steps_per_generation completions per
    # generation round and groups them by num_generations across processes.
    processes = max(1, run["resources"].get("gpus", 0))
    batch = hp.get("per_device_train_batch_size", 8) * hp.get("steps_per_generation", 1) * processes
    if batch % gens:
        raise ConfigError(
            f"{where}: grpo.per_device_train_batch_size x steps_per_generation x resources.gpus ({batch}) "
            f"must be divisible by grpo.num_generations ({gens}); change one of them"
        )


def _check_launch(run: dict[str, Any], where: str) -> None:
    """A multi-GPU run's topology and ``accelerate`` config (see ``rlpipe.train.launch``)."""
    from rlpipe.train.launch import LaunchError, accelerate_config, processes_per_node, single_process_only

    if run["resources"].get("gpus", 0) <= 1 and run["resources"].get("nodes", 1) <= 1:
        return
    try:
        processes_per_node(run)
        accelerate_config(run)
    except LaunchError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    reason = single_process_only(run)  # what the launcher would refuse at job start
    if reason:
        raise ConfigError(f"{where}: {reason}; or set resources.gpus: 1")


def _check_ppo(hp: dict[str, Any], where: str, processes: int = 1) -> None:
    """Refuse PPO settings that are valid one by one but do not work together.

    ``processes`` is the run's training processes (resources.gpus): each takes
    ``minibatch_size / processes`` sequences of a minibatch, in micro-batches of ``micro_batch_size``.
    """
    samples = hp["rollout_batch_size"] * hp["samples_per_prompt"]
    if samples % hp["minibatch_size"]:
        raise ConfigError(
            f"{where}: ppo.minibatch_size ({hp['minibatch_size']}) must divide ppo.rollout_batch_size * "
            f"ppo.samples_per_prompt ({hp['rollout_batch_size']} * {hp['samples_per_prompt']} = {samples})"
        )
    if hp["kl_target"] is not None and hp["kl_coef"] <= 0:
        raise ConfigError(
            f"{where}: ppo.kl_target needs ppo.kl_coef > 0 (the adaptive coefficient is multiplied, "
            "so it would stay 0)"
        )
    if hp["kl_mode"] == "loss" and hp["kl_estimator"] == "k1" and (hp["kl_coef"] > 0 or hp["kl_target"]):
        raise ConfigError(
            f"{where}: ppo.kl_estimator k1 as a loss term (kl_mode: loss) has zero expected gradient and "
            "does not keep the policy near the reference; use k3 (or k2), or kl_mode: reward"
        )
    micro = hp.get("micro_batch_size")
    local = hp["minibatch_size"] // processes
    if micro is not None and (hp["minibatch_size"] % processes or local % micro):
        raise ConfigError(
            f"{where}: ppo.micro_batch_size ({micro}) must divide the sequences each process takes per "
            f"minibatch, ppo.minibatch_size / resources.gpus ({hp['minibatch_size']} / {processes})"
        )


def _check_model(name: str, model: dict[str, Any], source: str) -> None:
    where = f"{source}: model {name}"
    kind = model["source"]
    if kind == "tiny" and "arch" not in model:
        raise ConfigError(f"{where}: source 'tiny' needs 'arch'")
    if kind == "hub" and "repo_id" not in model:
        raise ConfigError(f"{where}: source 'hub' needs 'repo_id'")
    if kind == "local":
        path = model.get("path")
        if not path:
            raise ConfigError(f"{where}: source 'local' needs 'path'")
        if not (Path(path) / "config.json").exists():
            raise ConfigError(f"{where}: path {path!r} is not a model directory (no config.json there)")


def resolve_source(
    source: dict[str, Any], where: str, workdir: str | Path = ".", require_cached: bool = False
) -> dict[str, Any]:
    """A data source checked and resolved at parse time, so a bad one fails before any job starts.

    A pinned hub revision, local files that exist (relative paths resolved against ``workdir``), and
    ``RLPIPE_DATA_ROOT`` (a local mirror of the hub, e.g. tests/fixtures/hf) redirecting every hub
    source. ``require_cached``: offline (``HF_HUB_OFFLINE=1``) without a mirror, every hub file must
    already be in the Hugging Face cache; the error names the dataset and the command that fetches it.
    """
    import os

    from rlpipe.data.sources import (
        SourceError,
        check_cached,
        check_source,
        with_data_root,
        with_local_path,
    )

    try:
        check_source(source)
        source = with_local_path(source, workdir)
        if os.environ.get("RLPIPE_DATA_ROOT"):
            source = with_data_root(source, os.environ["RLPIPE_DATA_ROOT"])
        if require_cached:
            check_cached(source)
    except SourceError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return source


def load_train_sources(config: dict[str, Any], source: str, workdir: str | Path = ".") -> dict[str, Any]:
    """``data.sources`` with scorers checked and every source resolved (see ``resolve_source``).

    Each entry gets ``validation`` (rows carved out for the validation split; default
    ``data.validation_per_task``). A name may not repeat a procedural task of ``data.tasks``: the name
    is every row's task label.
    """
    from rlpipe.rewards import SCORERS

    data = config["data"]
    out = {}
    for name, spec in data.get("sources", {}).items():
        where = f"{source}: data.sources.{name}"
        if name in data.get("tasks", {}):
            raise ConfigError(f"{where}: {name!r} is also a procedural task in data.tasks; rename one")
        if spec["scorer"] not in SCORERS:
            raise ConfigError(
                f"{where}.scorer: unknown scorer {spec['scorer']!r} (known: {', '.join(sorted(SCORERS))})"
            )
        if spec["source"]["type"] == "procedural":
            raise ConfigError(f"{where}.source: procedural tasks go in data.tasks (task -> n)")
        resolved = resolve_source(spec["source"], f"{where}.source", workdir, require_cached=True)
        out[name] = {
            **spec,
            "source": resolved,
            "validation": spec.get("validation", data.get("validation_per_task", 100)),
        }
    return out


def load_suite(ref: str, workdir: str | Path = ".") -> dict[str, Any]:
    """Load and validate a suite by name (``config/suites/<name>.yaml``) or path; apply defaults."""
    from rlpipe.rewards import SCORERS

    if Path(ref).suffix in (".yaml", ".yml"):
        candidates = [Path(ref), Path(workdir) / ref]
    else:
        candidates = [Path(workdir) / "config" / "suites" / f"{ref}.yaml", SUITES / f"{ref}.yaml"]
    path = next((p for p in candidates if p.exists()), candidates[0])
    suite = load_yaml(path)
    validate(suite, "suite.schema.yaml", str(path))
    defaults = suite.get("defaults", {})
    tasks = {}
    for name, task in suite["tasks"].items():
        merged = _deep_merge(defaults, task)
        merged.setdefault("samples", 1)
        merged.setdefault("chat_template", True)
        merged.setdefault("validation_fraction", DEFAULT_VALIDATION_FRACTION)
        gen = merged.setdefault("generation", {})
        gen.setdefault("temperature", 1.0)
        gen.setdefault("top_p", 1.0)
        gen.setdefault("max_new_tokens", 512)
        if merged["scorer"] not in SCORERS:
            raise ConfigError(
                f"{path}: tasks.{name}.scorer: unknown scorer {merged['scorer']!r} "
                f"(known: {', '.join(sorted(SCORERS))})"
            )
        src = merged["source"]
        if src["type"] == "procedural":
            from rlpipe.data.tasks import TASKS

            if src.get("task") not in TASKS:
                raise ConfigError(
                    f"{path}: tasks.{name}.source.task: unknown procedural task {src.get('task')!r}"
                )
        else:
            merged["source"] = resolve_source(src, f"{path}: tasks.{name}.source", workdir)
        tasks[name] = merged
    return {"name": suite["name"], "path": str(path), "tasks": tasks}


def load_experiment(
    config: dict[str, Any], sources: list[str] | None = None, workdir: str | Path = "."
) -> Experiment:
    """Validate ``config`` (as Snakemake merged it from ``sources``) and expand it."""
    source = ", ".join(str(s) for s in sources) if sources else "config"
    validate(config, "config.schema.yaml", source)
    from rlpipe.data.tasks import TASKS

    if not config["data"].get("tasks") and not config["data"].get("sources"):
        raise ConfigError(
            f"{source}: data: no training data; give data.tasks (procedural task -> n) and/or "
            "data.sources (datasets)"
        )
    for task in config["data"].get("tasks", {}):
        if task not in TASKS:
            raise ConfigError(
                f"{source}: data.tasks.{task}: unknown procedural task (known: {', '.join(TASKS)})"
            )
    models = {MAIN_MODEL: config["model"], **config.get("models", {})}
    for name, model in models.items():
        _check_model(name, model, source)
    train_sources = load_train_sources(config, source, workdir)
    runs = expand_runs(config, source)
    layer_cache: dict[str, Any] = {}  # model -> layer names, built once per model
    for run in runs.values():
        _check_run(run, models, source, config["data"], layer_cache)
    baseline = config.get("baseline")
    if baseline is not None and baseline not in runs:
        raise ConfigError(f"{source}: baseline: {baseline!r} is not a run (runs: {', '.join(runs)})")
    suite = load_suite(config["evaluation"]["suite"], workdir)
    return Experiment(
        name=config["name"],
        config=canonical(config),
        models=canonical(models),
        runs={name: canonical(run) for name, run in runs.items()},
        suite=canonical(suite),
        seeds=config.get("seeds", [0]),
        baseline=baseline,
        sources=list(sources or []),
        train_sources=canonical(train_sources),
    )
