"""Config validation and run expansion: bad input fails with one line naming file and key."""

import copy
from pathlib import Path

import pytest
import yaml

from rlpipe.config import ConfigError, checkpoint_steps, expand_runs, load_experiment, load_suite

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def cfg(**changes):
    config = copy.deepcopy(DEFAULT)
    config.update(changes)
    return config


def test_default_config_is_valid_and_expands():
    exp = load_experiment(copy.deepcopy(DEFAULT), ["config/config.yaml"])
    assert list(exp.runs) == ["grpo", "dr-grpo", "grpo-lora"]
    assert exp.runs["dr-grpo"]["grpo"]["loss_type"] == "dr_grpo"
    # run_defaults are merged under each run's own settings
    assert (
        exp.runs["dr-grpo"]["grpo"]["num_generations"] == DEFAULT["run_defaults"]["grpo"]["num_generations"]
    )
    assert exp.runs["grpo-lora"]["lora"]["r"] == 16
    assert exp.base_runs == {"base": "base"}
    assert set(exp.suite["tasks"]) == {"addition", "sorting", "program"}


def test_unknown_key_is_named_with_its_file():
    config = cfg(evalaution={"suite": "tiny"})
    with pytest.raises(ConfigError, match=r"^my.yaml: <top level>: unknown key\(s\): 'evalaution'"):
        load_experiment(config, ["my.yaml"])


def test_nested_unknown_key_and_wrong_type_name_the_path():
    config = cfg()
    config["runs"][1]["grpo"]["num_generation"] = 4
    with pytest.raises(ConfigError, match=r"runs\[1\]"):
        load_experiment(config, ["x.yaml"])
    config = cfg()
    config["run_defaults"]["grpo"]["beta"] = "high"
    with pytest.raises(ConfigError, match=r"x.yaml: run_defaults.grpo.beta: 'high' is not of type 'number'"):
        load_experiment(config, ["x.yaml"])


def test_missing_local_model_path_fails_early(tmp_path):
    config = cfg(model={"source": "local", "path": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match="model base: path .*nowhere.* is not a model directory"):
        load_experiment(config, ["x.yaml"])


def test_unknown_scorer_in_suite_fails_early(tmp_path):
    suite = yaml.safe_load((ROOT / "config" / "suites" / "tiny.yaml").read_text())
    suite["tasks"]["sorting"]["scorer"] = "sorted_match"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(suite))
    with pytest.raises(ConfigError, match=r"bad.yaml: tasks.sorting.scorer: unknown scorer 'sorted_match'"):
        load_suite(str(path))


def test_incompatible_grpo_batch_is_refused():
    config = cfg()
    config["runs"][0]["grpo"] = {"per_device_train_batch_size": 12, "num_generations": 8}
    with pytest.raises(
        ConfigError, match=r"run grpo: .*\(12\) must be divisible by grpo.num_generations \(8\)"
    ):
        load_experiment(config, ["x.yaml"])
    config["runs"][0]["grpo"] = {"num_generations": 1}
    with pytest.raises(ConfigError, match="num_generations"):
        load_experiment(config, ["x.yaml"])


def test_unknown_baseline_and_duplicate_names():
    with pytest.raises(ConfigError, match="baseline: 'ppo' is not a run"):
        load_experiment(cfg(baseline="ppo"), ["x.yaml"])
    config = cfg(runs=[{"name": "a"}, {"name": "a"}])
    config.pop("baseline")
    with pytest.raises(ConfigError, match="run name 'a' is used twice"):
        load_experiment(config, ["x.yaml"])


def test_sweep_expands_to_one_run_per_combination_and_seed():
    config = cfg(
        seeds=[0, 1],
        runs=[
            {
                "name": "lora",
                "lora": {"r": 8, "alpha": 16},
                "sweep": {"lora.r": [8, 64], "grpo.beta": [0.0, 0.04]},
            }
        ],
    )
    runs = expand_runs(config, "x.yaml")
    assert len(runs) == 2 * 2 * 2
    run = runs["lora_beta0p04_r64_s1"]
    assert run["lora"] == {"r": 64, "alpha": 16}
    assert run["grpo"]["beta"] == 0.04
    assert run["seed"] == 1
    assert run["family"] == "lora"


def test_checkpoint_schedule_includes_last_step():
    assert checkpoint_steps({"steps": 100, "save_every": 50}) == [50, 100]
    assert checkpoint_steps({"steps": 70, "save_every": 30}) == [30, 60, 70]


def test_paired_sweep_keys_vary_together():
    """alpha = 2r: a paired group walks its lists together; the other keys still multiply."""
    from rlpipe.config import sweep_combinations

    sweep = {"lora.r": [8, 16, 64], "lora.alpha": [16, 32, 128], "grpo.beta": [0.0, 0.04]}
    combos = sweep_combinations(sweep, [["lora.r", "lora.alpha"]])
    assert combos == [
        {"grpo.beta": 0.0, "lora.alpha": 16, "lora.r": 8},
        {"grpo.beta": 0.0, "lora.alpha": 32, "lora.r": 16},
        {"grpo.beta": 0.0, "lora.alpha": 128, "lora.r": 64},
        {"grpo.beta": 0.04, "lora.alpha": 16, "lora.r": 8},
        {"grpo.beta": 0.04, "lora.alpha": 32, "lora.r": 16},
        {"grpo.beta": 0.04, "lora.alpha": 128, "lora.r": 64},
    ]
    # without `paired`, the same keys multiply (3 x 3 x 2), in the order sweeps always had
    assert len(sweep_combinations(sweep)) == 18
    assert sweep_combinations({"b": [1, 2], "a": [3]}) == [{"a": 3, "b": 1}, {"a": 3, "b": 2}]

    config = cfg(runs=[{"name": "lora", "lora": {"r": 1, "alpha": 1}, "sweep": sweep,
                        "paired": [["lora.r", "lora.alpha"]]}])  # fmt: skip
    runs = expand_runs(config, "x.yaml")
    assert len(runs) == 6
    assert all(run["lora"]["alpha"] == 2 * run["lora"]["r"] for run in runs.values())
    run = runs["lora_beta0p04_alpha128_r64"]
    assert run["sweep"] == {"grpo.beta": 0.04, "lora.alpha": 128, "lora.r": 64}
    assert "paired" not in run


def test_paired_sweep_errors_name_the_run():
    bad_length = cfg(runs=[{"name": "l", "sweep": {"lora.r": [8, 16], "lora.alpha": [16]},
                            "paired": [["lora.r", "lora.alpha"]]}])  # fmt: skip
    with pytest.raises(ConfigError, match=r"^x.yaml: runs\[0\] \(l\): paired keys need lists of one length"):
        expand_runs(bad_length, "x.yaml")
    not_swept = cfg(runs=[{"name": "l", "sweep": {"lora.r": [8]}, "paired": [["lora.r", "lora.alpha"]]}])
    with pytest.raises(ConfigError, match=r"paired key 'lora.alpha' is not a sweep key"):
        expand_runs(not_swept, "x.yaml")
    twice = cfg(runs=[{"name": "l", "sweep": {"a.x": [1], "a.y": [1], "a.z": [1]},
                       "paired": [["a.x", "a.y"], ["a.y", "a.z"]]}])  # fmt: skip
    with pytest.raises(ConfigError, match=r"paired key 'a.y' is in more than one group"):
        expand_runs(twice, "x.yaml")
    with pytest.raises(ConfigError, match=r"runs\[0\].paired\[0\]: \['a.x'\] is too short"):
        load_experiment(cfg(runs=[{"name": "l", "sweep": {"a.x": [1]}, "paired": [["a.x"]]}]), ["x.yaml"])
