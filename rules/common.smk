# Shared names and input functions. All experiment logic (expansion, validation) lives in
# rlpipe.config; these helpers only map wildcards to paths and parameters.
import re
from pathlib import Path

from snakemake.exceptions import IncompleteCheckpointException

from rlpipe.train.checkpoints import EXPORTED
from rlpipe.train.schedule import checkpoint_steps
from rlpipe.resources import gpu_job_resources, model_gpu_resources
from rlpipe.tracking.manifest import sha256_file
from rlpipe.tracking.provenance import code_hash

OUT = EXP.out
RUNS = EXP.runs
SUITE = EXP.suite
THREADS = EXP.config["resources"]["threads"]
WARMUP = EXP.config.get("warmup")
HUB_KERNELS = EXP.hub_kernels
# Shared by the experiment's GPU jobs (rlpipe.runtime).
COMPILE_CACHE = f"{OUT}/cache/torch-compile"


wildcard_constraints:
    run=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    model=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    step=r"\d+",
    task=r"[A-Za-z0-9][A-Za-z0-9_.-]*",


def policy_dir(model):
    """The starting policy of runs on `model`: the SFT warm-up output, or the model itself."""
    stage = "warmup" if WARMUP and WARMUP["enabled"] else "init"
    return f"{OUT}/models/{model}/{stage}"


def run_model(run):
    """Model name of a run or of a base pseudo-run."""
    return EXP.base_runs[run] if run in EXP.base_runs else RUNS[run]["model"]


def train_inputs(wildcards):
    """A run trains from its model's policy on data/train.jsonl; early stopping also reads validation."""
    run = RUNS[wildcards.run]
    inputs = {"policy": policy_dir(run["model"]), "train": f"{OUT}/data/train.jsonl"}
    if run.get("early_stopping"):
        inputs["validation"] = f"{OUT}/data/validation.jsonl"
    return inputs


STEP_DIR = re.compile(r"^step_(\d+)$")


def saved_steps(name):
    """Steps whose checkpoint run `name` saved, or None while that is not known yet.

    Without early stopping: the static schedule (rlpipe.train.schedule.checkpoint_steps), known
    at parse time, so `snakemake -n` lists those evaluations. With it: the step_N folders that exist once
    the run's `train` checkpoint job is done; until then None (see `pending_checkpoints`).
    """
    run = RUNS[name]
    if not run.get("early_stopping"):
        return checkpoint_steps(run)
    try:
        folder = Path(checkpoints.train.get(run=name).output.checkpoints)
    except IncompleteCheckpointException:
        return None
    found = [STEP_DIR.match(p.name) for p in folder.iterdir() if p.is_dir()]
    return sorted(int(m.group(1)) for m in found if m)


def pending_checkpoints():
    """Checkpoint folders of early-stopping runs still to be trained.

    Jobs that need every evaluation take them as inputs, so they wait for those runs, and
    Snakemake re-plans them (adding those evaluations) when each `train` checkpoint job ends.
    The other runs' evaluations stay planned meanwhile, so a dry run still lists them.
    """
    pending = []
    for name in RUNS:
        try:
            if RUNS[name].get("early_stopping"):
                checkpoints.train.get(run=name)
        except IncompleteCheckpointException as exc:
            pending.append(exc.targetfile)
    return pending


def eval_targets():
    """(run, step) of every known evaluation: each base model at step 0, every saved checkpoint.

    Early-stopping runs count once trained; call this from input functions or params only.
    """
    targets = [(base, 0) for base in EXP.base_runs]
    for name in RUNS:
        targets += [(name, step) for step in saved_steps(name) or []]
    return targets


def summaries(wildcards=None):
    known = [
        f"{OUT}/eval/{run}/step_{step}/summary.csv" for run, step in eval_targets()
    ]
    return known + pending_checkpoints()


def products(wildcards=None):
    """Every evaluation output and every run's checkpoints and metrics (see `rule all`)."""
    files = [
        f"{OUT}/runs/{name}/{kind}"
        for name in RUNS
        for kind in ("checkpoints", "metrics.jsonl")
    ]
    for run, step in eval_targets():
        folder = f"{OUT}/eval/{run}/step_{step}"
        files += [f"{folder}/{name}" for name in EVAL_FILES]
    return files + pending_checkpoints()


#: The files of one evaluation (rules/eval.smk): generation's, then scoring's.
EVAL_FILES = (
    "completions.jsonl",
    "completions.sha256",
    "scores.jsonl",
    "summary.csv",
    "scores.sha256",
)


def generate_inputs(wildcards):
    """A base pseudo-run evaluates its policy directory; a run, its checkpoints folder."""
    model = run_model(wildcards.run)
    inputs = {"base": policy_dir(model)}
    if wildcards.run not in EXP.base_runs:
        inputs["checkpoints"] = f"{OUT}/runs/{wildcards.run}/checkpoints"
    inputs["data"] = [
        f"{OUT}/data/suite/{task}.jsonl" for task in sorted(SUITE["tasks"])
    ]
    return inputs


def state_dir(wildcards):
    """A run's resumable training state: kept across reruns, outside the declared outputs."""
    return f"{OUT}/runs/{wildcards.run}/state"


def exported_dir(wildcards):
    """Training's own verified copies of a run's published steps (`rlpipe.train.checkpoints`):
    evaluation restores a damaged published step from there. None for a base pseudo-run.
    """
    if wildcards.run in EXP.base_runs:
        return None
    return f"{state_dir(wildcards)}/{EXPORTED}"


GENERATION_GPUS = EXP.config["evaluation"]["tensor_parallel_size"]


def gpu_resource(kind, key):
    """Resource callable: ``key`` of a ``kind`` job (train, warmup, generate, preflight), by rlpipe.resources.

    A run's jobs follow its ``resources``; warm-up and base-model generation follow the first GPU
    run on that model. Grows with the retry attempt.
    """

    def resource(wildcards, attempt):
        run = RUNS.get(wildcards.get("run"))
        if run is not None:
            model, res = run["model"], run["resources"]
        else:
            model = wildcards.model if kind == "warmup" else run_model(wildcards.run)
            res = model_gpu_resources(RUNS, model)
        return gpu_job_resources(
            kind, EXP.models[model], res, attempt, generation_gpus=GENERATION_GPUS
        )[key]

    resource.__name__ = f"{kind}_{key}"
    return resource


BASE_OF = {name: EXP.base_run(run["model"]) for name, run in RUNS.items()}


def sample_scores(wildcards=None):
    """(run, step) -> per-sample scores file, for paired comparisons in the report."""
    return {
        (run, step): f"{OUT}/eval/{run}/step_{step}/scores.jsonl"
        for run, step in eval_targets()
    }


def sample_score_files(wildcards=None):
    """Input of every job that reads all per-sample scores.

    The pending `train` checkpoints must be inputs too: only then does Snakemake re-evaluate the
    job's inputs and params once those runs have trained, instead of freezing them without the
    early-stopping runs' evaluations (which re-planned the job on every later run).
    """
    return list(sample_scores().values()) + pending_checkpoints()


# --- pre-flight, diagnostics, cost and W&B (rules/preflight.smk, rules/analysis.smk) ---------
from rlpipe.train.preflight import DEFAULTS as PREFLIGHT_DEFAULTS, preflight_spec
from rlpipe.analysis.plots import run_colors

PREFLIGHT = {**PREFLIGHT_DEFAULTS, **EXP.config.get("preflight", {})}
WANDB = EXP.config.get("tracking", {}).get("wandb", {})


def preflight_result(wildcards):
    """The pre-flight result a training run waits for (none when pre-flight is disabled)."""
    return [f"{OUT}/preflight/{wildcards.run}.json"] if PREFLIGHT["enabled"] else []


def preflight_results():
    return (
        {run: f"{OUT}/preflight/{run}.json" for run in RUNS}
        if PREFLIGHT["enabled"]
        else {}
    )


def job_logs():
    """Every job's log by kind, for the cost table (each job records its timing next to its log)."""
    shared = {
        f"prepare_model/{m}": f"{OUT}/logs/prepare_model/{m}.log" for m in EXP.models
    }
    shared.update({f"warmup/{m}": f"{OUT}/logs/warmup/{m}.log" for m in EXP.models})
    shared["prepare_train_data"] = f"{OUT}/logs/prepare_train_data.log"
    shared.update(
        {
            f"prepare_suite_task/{t}": f"{OUT}/logs/prepare_suite_task/{t}.log"
            for t in sorted(SUITE["tasks"])
        }
    )
    return {
        "train": {run: f"{OUT}/logs/train/{run}.log" for run in RUNS},
        "preflight": (
            {run: f"{OUT}/logs/preflight/{run}.log" for run in RUNS}
            if PREFLIGHT["enabled"]
            else {}
        ),
        "generate": {
            (r, s): f"{OUT}/logs/generate/{r}/step_{s}.log" for r, s in eval_targets()
        },
        "score": {
            (r, s): f"{OUT}/logs/score/{r}/step_{s}.log" for r, s in eval_targets()
        },
        "shared": shared,
    }
