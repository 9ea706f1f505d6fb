"""Config validation and run expansion: bad input fails with one line naming file and key."""

import copy
from pathlib import Path

import pytest
import yaml

from rlpipe.config import ConfigError, expand_runs, load_experiment, load_suite
from rlpipe.train.schedule import checkpoint_steps

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def cfg(**changes):
    config = copy.deepcopy(DEFAULT)
    config.update(changes)
    return config


def test_default_config_is_valid_and_expands():
    exp = load_experiment(copy.deepcopy(DEFAULT), ["config/config.yaml"])
    assert list(exp.runs) == ["grpo", "dr-grpo", "grpo-pcgrad", "grpo-lora", "grpo-lora-r4", "ppo"]
    assert exp.runs["ppo"]["method"] == "ppo" and exp.runs["grpo-pcgrad"]["pcgrad"]
    # the PCGrad run is the baseline plus projection: same algorithm and hyperparameters
    assert exp.runs["grpo-pcgrad"]["grpo"] == exp.runs["grpo"]["grpo"]
    assert exp.runs["dr-grpo"]["grpo"]["loss_type"] == "dr_grpo"
    # run_defaults are merged under each run's own settings
    assert (
        exp.runs["dr-grpo"]["grpo"]["num_generations"] == DEFAULT["run_defaults"]["grpo"]["num_generations"]
    )
    assert exp.runs["grpo-lora"]["lora"]["r"] == 16
    assert exp.base_runs == {"base": "base"}
    assert set(exp.suite["tasks"]) == {"add_digit", "sorting", "counter"}


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
    with pytest.raises(ConfigError, match="baseline: 'nope' is neither a run nor a configuration of seeds"):
        load_experiment(cfg(baseline="nope"), ["x.yaml"])
    config = cfg(runs=[{"name": "a"}, {"name": "a"}])
    config.pop("baseline")
    with pytest.raises(ConfigError, match="run name 'a' is used twice"):
        load_experiment(config, ["x.yaml"])


def test_baseline_may_name_a_configuration_of_seeds_and_statistics_are_validated():
    exp = load_experiment(cfg(seeds=[0, 1], baseline="grpo"), ["x.yaml"])
    assert "grpo_s0" in exp.runs and exp.config["baseline"] == "grpo"
    with pytest.raises(ConfigError, match="seed_sd_source"):
        load_experiment(cfg(statistics={"seed_sd": 0.01}), ["x.yaml"])
    with pytest.raises(ConfigError, match="equivalence_margin"):
        load_experiment(cfg(statistics={"equivalence_margin": 0}), ["x.yaml"])
    ok = load_experiment(cfg(statistics={"seed_sd": 0.014, "seed_sd_source": "3 seeds"}), ["x.yaml"])
    stats = ok.config["statistics"]
    assert stats == {"seed_sd": 0.014, "seed_sd_source": "3 seeds", "equivalence_margin": 0.01}


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


def es_config(**early_stopping):
    """The default with one GRPO run (16 prompts per step, 6000 training rows) that stops early."""
    config = cfg()
    config["runs"] = [{"name": "es", "steps": 100, "early_stopping": {"patience": 1, **early_stopping}}]
    config["baseline"] = "es"
    config["checkpoints"] = {"every": 50}
    config["run_defaults"]["grpo"].update(per_device_train_batch_size=128, num_generations=8)
    config["data"]["tasks"] = {"addition": 2000, "sorting": 2000, "program": 2000}
    return config


def test_early_stopping_gets_defaults_and_other_runs_are_untouched():
    exp = load_experiment(es_config(), ["x.yaml"])
    assert exp.runs["es"]["early_stopping"] == {
        "metric": "validation_reward",
        "mode": "max",
        "patience": 1,
        "min_delta": 0.0,
        "min_steps": 0,
        "min_epochs": 0,
        "eval_every": 50,  # the checkpoint interval
    }
    assert "early_stopping" not in load_experiment(cfg(), ["x.yaml"]).runs["grpo"]  # no rerun of old runs


def test_min_epochs_converts_to_steps():
    from rlpipe.train.methods import build_spec
    from rlpipe.train.schedule import early_stopping_min_step

    run = load_experiment(es_config(min_epochs=0.25, min_steps=10, eval_every=10), ["x.yaml"]).runs["es"]
    assert build_spec(run).prompts_per_step() == 16  # 128 completions / 8 per prompt
    assert early_stopping_min_step(build_spec(run), 6000) == 94  # ceil(0.25 * 6000 / 16) = ceil(93.75)
    run["early_stopping"]["min_steps"] = 120
    assert early_stopping_min_step(build_spec(run), 6000) == 120  # the later of the two
    # gradient accumulation takes more prompts per step, num_iterations reuses them
    run["grpo"].update(gradient_accumulation_steps=4, num_iterations=2)
    assert build_spec(run).prompts_per_step() == 32
    ppo = {
        "method": "ppo",
        "ppo": {"rollout_batch_size": 48},
        "early_stopping": {"min_epochs": 1, "min_steps": 0},
    }
    assert early_stopping_min_step(build_spec(ppo), 6000) == 125


@pytest.mark.parametrize(
    "settings, message",
    [
        (
            {"mode": "min"},
            r"run es: early_stopping.mode 'min' with metric validation_reward .* use mode: max",
        ),
        ({"eval_every": 150}, r"run es: early_stopping.eval_every \(150\) is more than steps \(100\)"),
        (
            {"min_epochs": 10, "eval_every": 10},
            r"run es: early_stopping needs at least 3750 steps .*min_epochs 10 x 6000 training rows / 16 "
            r"prompts per step\) but steps is 100",
        ),
        ({"min_steps": 101}, r"run es: early_stopping needs at least 101 steps"),
        (
            {"patience": 2},
            r"run es: early_stopping can never stop this run: the earliest stop is at step 150 \(patience 2",
        ),
        (
            {"patience": 3, "eval_every": 30},
            r"run es: early_stopping can never stop this run: the earliest stop is at step 120",
        ),
    ],
)
def test_early_stopping_refusals(settings, message):
    with pytest.raises(ConfigError, match=r"^x.yaml: " + message):
        load_experiment(es_config(**settings), ["x.yaml"])


def test_early_stopping_that_can_stop_only_at_the_last_step_is_accepted():
    # min_steps 95 with evaluations every 10 steps: the first allowed stop is at step 100 = steps
    load_experiment(es_config(eval_every=10, min_steps=95), ["x.yaml"])
    load_experiment(es_config(patience=9, eval_every=10), ["x.yaml"])  # 10 evaluations fit exactly


def lora_run(config: dict) -> dict:
    return next(r for r in config["runs"] if r["name"] == "grpo-lora")


def test_lora_targets_that_match_no_layer_are_refused_at_validation(tmp_path):
    config = cfg()
    lora_run(config)["lora"]["target_modules"] = ["q_proj", "c_attn"]  # one of them matches: fine
    load_experiment(config, ["x.yaml"])
    lora_run(config)["lora"]["target_modules"] = ["c_attn", "c_proj"]  # GPT-2 names on a Qwen2 model
    with pytest.raises(
        ConfigError,
        match=r"run grpo-lora: lora.target_modules \['c_attn', 'c_proj'\] matches no layer .*q_proj",
    ):
        load_experiment(config, ["x.yaml"])
    lora_run(config)["lora"]["target_modules"] = r".*\.attn\..*"  # a regex over full names
    with pytest.raises(ConfigError, match="matches no layer"):
        load_experiment(config, ["x.yaml"])


def test_lora_targets_checked_on_a_local_model_from_its_config_json(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64).save_pretrained(tmp_path)
    config = cfg(models={"gpt2ish": {"source": "local", "path": str(tmp_path)}})
    lora_run(config).update(model="gpt2ish")
    lora_run(config)["lora"]["target_modules"] = ["q_proj", "v_proj"]
    with pytest.raises(
        ConfigError, match=r"matches no layer of model 'gpt2ish'; its layers are named .*c_attn"
    ):
        load_experiment(config, ["x.yaml"])
    lora_run(config)["lora"]["target_modules"] = ["c_attn"]
    load_experiment(config, ["x.yaml"])


def test_lora_targets_of_an_uncached_hub_model_are_left_to_train_start(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    config = cfg(models={"hub": {"source": "hub", "repo_id": "nobody/not-cached"}})
    lora_run(config).update(model="hub")
    lora_run(config)["lora"]["target_modules"] = ["nothing_like_this"]
    load_experiment(config, ["x.yaml"])  # unknown architecture: no refusal here


def test_pcgrad_needs_two_domains():
    config = cfg()
    config["runs"][0]["pcgrad"] = True
    load_experiment(config, ["x.yaml"])
    config["data"]["tasks"] = {"addition": 100}
    with pytest.raises(ConfigError, match=r"run grpo: pcgrad: true needs tasks of at least two domains"):
        load_experiment(config, ["x.yaml"])


def test_the_suite_path_in_rule_params_is_relative_to_the_project(tmp_path):
    """Issue 23: moving or cloning a finished project must not change any rule's params."""
    import shutil

    from rlpipe.config import load_suite

    root = Path(__file__).resolve().parents[1]
    here = load_suite("tiny", root)
    assert here["path"] == "config/suites/tiny.yaml"
    moved = tmp_path / "moved"
    shutil.copytree(root / "config", moved / "config")
    assert load_suite("tiny", moved) == here
