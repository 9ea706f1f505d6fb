"""Job sizes (rlpipe.resources) and what the rules of a real DAG request from them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rlpipe.resources import gpu_job_resources, host_mem_mb, model_billions, model_gpu_resources

ROOT = Path(__file__).resolve().parents[1]
HUB_7B = {"source": "hub", "repo_id": "Qwen/Qwen2.5-7B-Instruct"}
TINY = {
    "source": "tiny",
    "arch": {
        "hidden_size": 128,
        "intermediate_size": 384,
        "num_layers": 4,
        "num_heads": 4,
        "num_kv_heads": 2,
        "max_positions": 64,
    },
}


@pytest.mark.parametrize(
    ("model", "billions"),
    [
        (HUB_7B, 7.0),
        ({"source": "hub", "repo_id": "Qwen/Qwen2.5-0.5B"}, 0.5),
        ({"source": "hub", "repo_id": "Qwen/Qwen2.5-1.5B-Instruct"}, 1.5),
        ({"source": "hub", "repo_id": "Qwen/Qwen2.5-3B-Instruct", "revision": "main"}, 3.0),
        ({"source": "local", "path": "/models/Llama-3.1-8B"}, 8.0),
        ({"source": "hub", "repo_id": "openai-community/gpt2"}, None),  # no size tag: unknown
        ({"source": "hub", "repo_id": "org/model-v2b"}, None),  # "v2b" is not a size
    ],
)
def test_model_size_from_the_name(model, billions):
    assert model_billions(model) == billions


def test_tiny_model_size_matches_the_built_model(tmp_path):
    from rlpipe.models import build_tiny_model

    built = build_tiny_model(tmp_path / "m", TINY["arch"], seed=0)
    assert model_billions(TINY) * 1e9 == pytest.approx(built, rel=0.05)


def test_training_job_uses_every_gpu_and_grows_with_the_attempt():
    res = {"gpus": 2, "gpu_model": "h100", "constraint": "h100|a100"}
    first = gpu_job_resources("train", HUB_7B, res, attempt=1)
    # 2048 + 4096 MB per billion parameters per process: 2048 + 4096 * 7 * 2 = 59392
    assert first == {
        "gpu": 2,
        "gpu_model": "h100",
        "constraint": "h100|a100",
        "nodes": None,
        "mem_mb": 59392,
        "runtime": 240,
        "slurm_extra": "--signal=URG@300",
    }
    third = gpu_job_resources("train", HUB_7B, res, attempt=3)
    assert (third["mem_mb"], third["runtime"]) == (3 * 59392, 720)


def test_run_limits_override_the_estimate_and_the_warning_fits_the_limit():
    res = {"gpus": 1, "runtime": 10, "mem_mb": 3000, "warning_s": 900}
    job = gpu_job_resources("train", HUB_7B, res, attempt=2)
    # the warning is capped at half the limit of this attempt: 20 min -> 600 s
    assert (job["mem_mb"], job["runtime"], job["slurm_extra"]) == (6000, 20, "--signal=URG@600")


def test_warmup_and_generation_take_one_gpu_and_ignore_training_limits():
    res = {"gpus": 3, "runtime": 10, "mem_mb": 3000, "gpu_model": "h100"}
    for kind, runtime in (("warmup", 120), ("generate", 60)):
        job = gpu_job_resources(kind, HUB_7B, res)
        assert job == {
            "gpu": 1,
            "gpu_model": "h100",
            "constraint": None,
            "nodes": None,
            "mem_mb": 2048 + 4096 * 7,  # one process
            "runtime": runtime,
            "slurm_extra": None,
        }


def test_multi_node_training_sizes_memory_per_node():
    job = gpu_job_resources("train", HUB_7B, {"gpus": 8, "nodes": 2})
    # --gpus is the total, --mem is per node: 4 processes per node
    assert (job["gpu"], job["nodes"], job["mem_mb"]) == (8, 2, 2048 + 4096 * 7 * 4)


def test_generation_asks_for_the_tensor_parallel_size():
    assert gpu_job_resources("generate", HUB_7B, {"gpus": 1}, generation_gpus=4)["gpu"] == 4
    assert gpu_job_resources("generate", HUB_7B, {}, generation_gpus=4)["gpu"] == 0  # a CPU experiment
    assert gpu_job_resources("warmup", HUB_7B, {"gpus": 2}, generation_gpus=4)["gpu"] == 1


def test_cpu_runs_ask_for_no_gpu_type():
    job = gpu_job_resources("train", TINY, {"gpu_model": "h100", "constraint": "h100"})
    assert (job["gpu"], job["gpu_model"], job["constraint"]) == (0, None, None)
    assert job["mem_mb"] == host_mem_mb(TINY) == 2048 + round(4096 * model_billions(TINY))


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="unknown GPU rule family 'score'"):
        gpu_job_resources("score", TINY, {})


def test_base_model_jobs_follow_the_first_gpu_run_on_that_model():
    runs = {
        "b": {"model": "base", "resources": {"gpus": 2, "gpu_model": "a100"}},
        "a": {"model": "base", "resources": {}},
        "c": {"model": "other", "resources": {"gpus": 4}},
    }
    assert model_gpu_resources(runs, "base") == {"gpus": 2, "gpu_model": "a100"}
    assert model_gpu_resources(runs, "nothing") == {}


def _dry_run_resources(configfile: Path, workdir: Path) -> dict[str, list[dict[str, str]]]:
    """rule -> the resources of each of its jobs, from a dry run's job listing."""
    cmd = [
        sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(configfile), "--cores", "2",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    jobs: dict[str, list[dict[str, str]]] = {}
    for rule, resources in re.findall(
        r"^(?:rule|checkpoint) (\w+):\n(?:    .*\n)*?    resources: (.*)$", out, re.M
    ):
        jobs.setdefault(rule, []).append(dict(kv.split("=", 1) for kv in resources.split(", ")))
    return jobs


def test_dag_gpu_rules_request_gpus_and_cpu_rules_none(tmp_path):
    jobs = _dry_run_resources(ROOT / "tests" / "configs" / "slurm.yaml", tmp_path)
    assert {r for r in jobs if r != "all"} == {
        "prepare_model", "prepare_train_data", "prepare_suite_task", "warmup", "preflight", "train",
        "generate", "score", "diagnose", "aggregate", "plot_evolution", "wandb", "report",
    }  # fmt: skip
    for rule, listed in jobs.items():
        for res in listed:
            if rule in {"warmup", "preflight", "train", "generate"}:
                assert res["gpu"] == "1", (rule, res)
            elif rule != "all":
                assert res["gpu"] == "0", (rule, res)
    (train,) = jobs["train"]
    assert (train["runtime"], train["mem_mb"], train["slurm_extra"]) == ("10", "3000", "--signal=URG@60")
