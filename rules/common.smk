# Shared names and input functions. All experiment logic (expansion, validation) lives in
# rlpipe.config; these helpers only map wildcards to paths and parameters.
from rlpipe.config import checkpoint_steps

OUT = EXP.out
RUNS = EXP.runs
SUITE = EXP.suite
THREADS = EXP.config.get("resources", {}).get("threads", 1)
WARMUP = EXP.config.get("warmup")


wildcard_constraints:
    run=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    model=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    step=r"\d+",
    task=r"[A-Za-z0-9][A-Za-z0-9_.-]*",


def policy_dir(model):
    """The starting policy of runs on `model`: the SFT warm-up output, or the model itself."""
    stage = "warmup" if WARMUP and WARMUP.get("enabled", True) else "init"
    return f"{OUT}/models/{model}/{stage}"


def run_model(run):
    """Model name of a run or of a base pseudo-run."""
    return EXP.base_runs[run] if run in EXP.base_runs else RUNS[run]["model"]


def eval_targets():
    """(run, step) of every evaluation: each base model at step 0, every checkpoint of every run."""
    targets = [(base, 0) for base in EXP.base_runs]
    for name, run in RUNS.items():
        targets += [(name, step) for step in checkpoint_steps(run)]
    return targets


def summaries():
    return [f"{OUT}/eval/{run}/step_{step}/summary.csv" for run, step in eval_targets()]


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


def run_gpus(wildcards):
    """GPUs of a run's jobs; a base pseudo-run is evaluated on as many as the runs that train its model."""
    run = RUNS.get(wildcards.run)
    if run is None:
        model = EXP.base_runs.get(wildcards.run)
        trained = [r for r in RUNS.values() if r["model"] == model]
        return max((r["resources"].get("gpus", 0) for r in trained), default=0)
    return run["resources"].get("gpus", 0)


BASE_OF = {name: EXP.base_run(run["model"]) for name, run in RUNS.items()}


def sample_scores():
    """(run, step) -> per-sample scores file, for paired comparisons in the report."""
    return {
        (run, step): f"{OUT}/eval/{run}/step_{step}/scores.jsonl"
        for run, step in eval_targets()
    }


# --- pre-flight, diagnostics, cost and W&B (rules/preflight.smk, rules/analysis.smk) ---------
from rlpipe.analysis.preflight import DEFAULTS as PREFLIGHT_DEFAULTS, preflight_spec
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
