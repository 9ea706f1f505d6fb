"""The experiment config: load, validate, expand sweeps and seeds, and build each run's method spec.

Everything here runs while Snakemake parses the workflow, before any job starts, so a bad config
fails in seconds with one line naming the file and the key. The result is plain data the rules
read: ``Experiment.runs[name]`` is a complete, self-contained run spec, so a rule's ``params``
depend only on its own run and Snakemake reruns only what a change touched. What a method needs and
checks lives with the method (``rlpipe.train.methods``), the schedules with training
(``rlpipe.train.schedule``); this module only asks them. Its imports point down only.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlpipe.data.splits import DEFAULT_VALIDATION_FRACTION
from rlpipe.train.methods import DEFAULT_METHOD, SpecError, build_spec, check_pcgrad_domains, get_method
from rlpipe.train.schedule import check_early_stopping, early_stopping_settings, save_every

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "workflow" / "schemas"
SUITES = ROOT / "config" / "suites"
MAIN_MODEL = "base"


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
    def hyperparameters(self) -> dict[str, dict[str, Any]]:
        """Each run's hyperparameter section: its method's (``grpo`` for GRPO and GSPO, ``ppo``)."""
        return {name: run[get_method(run["method"]).section] for name, run in self.runs.items()}

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


def with_defaults(obj: Any, schema: dict[str, Any]) -> Any:
    """``obj`` with the schema's ``default`` of every property it leaves unset, recursively.

    Settings outside a run (evaluation, data, warm-up) take their defaults from the schema and only
    from there: the rules and scripts read the filled config. A section that is absent stays absent
    (``warmup`` unset means no warm-up); ``$ref``-ed definitions carry no defaults.
    """
    if not isinstance(obj, dict):
        return obj
    out = dict(obj)
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        elif key in out:
            out[key] = with_defaults(out[key], sub)
    return out


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
                run.setdefault("method", DEFAULT_METHOD)
                run.setdefault("model", MAIN_MODEL)
                run.setdefault("lora", None)
                run.setdefault("grpo", {})
                run.setdefault("resources", {})
                if "steps" not in run:
                    raise ConfigError(
                        f"{source}: runs[{index}] ({name}): 'steps' is missing (set it or run_defaults.steps)"
                    )
                try:
                    method = get_method(run["method"])
                    run[method.section] = method.section_of(run)
                except SpecError as exc:
                    raise ConfigError(f"{source}: runs[{index}] ({name}): {exc}") from None
                run["save_every"] = save_every(run["steps"], every)
                if run.get("early_stopping") is not None:
                    run["early_stopping"] = early_stopping_settings(run["early_stopping"], run["save_every"])
                run["sweep"] = dict(zip(keys, combo, strict=True))
                runs[name] = run
    return runs


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
    """Checks across the run and the experiment; the method's own live in its spec (``build_spec``)."""
    where = f"{source}: run {run['name']}"
    if run["model"] not in models:
        raise ConfigError(f"{where}: model {run['model']!r} is not defined (known: {', '.join(models)})")
    if run.get("lora") and run["lora"].get("target_modules", "all-linear") != "all-linear":
        _check_lora(run, models, where, {} if layer_cache is None else layer_cache)
    try:
        if run.get("pcgrad"):
            check_pcgrad_domains(training_domains(data or {}))
        _check_launch(run, where)
        spec = build_spec(run)
        if run.get("early_stopping"):
            check_early_stopping(spec, training_rows(data or {}))
    except SpecError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check_launch(run: dict[str, Any], where: str) -> None:
    """A multi-GPU run's topology and ``accelerate`` config (see ``rlpipe.train.launch``)."""
    from rlpipe.train.launch import LaunchError, accelerate_config, processes_per_node, single_process_only

    if run["resources"].get("gpus", 0) <= 1 and run["resources"].get("nodes", 1) <= 1:
        return
    try:
        processes_per_node(run)
        accelerate_config(run)
        reason = single_process_only(run)  # what the launcher would refuse at job start
    except LaunchError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if reason:
        raise ConfigError(f"{where}: {reason}; or set resources.gpus: 1")


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
            "validation": spec.get("validation", data["validation_per_task"]),
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
    return {"name": suite["name"], "path": _portable(path, workdir), "tasks": tasks}


def _portable(path: Path, workdir: str | Path) -> str:
    """``path`` relative to the project (``workdir``) when it lies inside it, else as given: rule
    params hold it, and an absolute path there would rerun every job of a moved or cloned project."""
    try:
        return str(Path(path).resolve().relative_to(Path(workdir).resolve()))
    except ValueError:
        return str(path)


def load_experiment(
    config: dict[str, Any], sources: list[str] | None = None, workdir: str | Path = "."
) -> Experiment:
    """Validate ``config`` (as Snakemake merged it from ``sources``) and expand it."""
    source = ", ".join(str(s) for s in sources) if sources else "config"
    validate(config, "config.schema.yaml", source)
    config = with_defaults(config, load_yaml(SCHEMAS / "config.schema.yaml"))
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
    from rlpipe.analysis.compare import families  # the report's grouping of seeds into configurations

    if baseline is not None and baseline not in runs and baseline not in families(runs):
        raise ConfigError(
            f"{source}: baseline: {baseline!r} is neither a run nor a configuration of seeds "
            f"(runs: {', '.join(runs)})"
        )
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
