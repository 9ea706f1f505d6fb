"""Base models: chat templates checked at preparation; several base models in one experiment."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlpipe.models import build_char_tokenizer, build_tiny_model, check_chat_template

ROOT = Path(__file__).resolve().parents[1]
E2E = yaml.safe_load((ROOT / "tests" / "configs" / "e2e.yaml").read_text())
ARCH = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_layers": 1,
    "num_heads": 2,
    "num_kv_heads": 1,
    "max_positions": 32,
}


def model_with_template(path: Path, template: str | None) -> Path:
    """A tiny model directory whose tokenizer carries ``template`` (None: no chat template at all)."""
    build_tiny_model(path, ARCH, seed=0)
    tokenizer = build_char_tokenizer()
    tokenizer.chat_template = template
    tokenizer.save_pretrained(path)
    config = json.loads((path / "tokenizer_config.json").read_text())
    if template is None:
        config.pop("chat_template", None)
        (path / "tokenizer_config.json").write_text(json.dumps(config))
        (path / "chat_template.jinja").unlink(missing_ok=True)
    return path


def test_tiny_model_template_is_usable(tmp_path):
    build_tiny_model(tmp_path / "m", ARCH, seed=0)
    check_chat_template(tmp_path / "m", "base")


@pytest.mark.parametrize(
    "template, message",
    [
        (None, r"model 'llama' \(.*\) has no chat template: set tokenizer.chat_template"),
        (
            "{{ raise_exception('system role required') }}",
            r"cannot render a user prompt: system role required",
        ),
        (
            "{% for m in messages %}<|im_start|>{{ m['role'] }}<|im_end|>{% endfor %}",
            r"drops the user message",
        ),
    ],
)
def test_missing_or_unusable_chat_template_is_refused(tmp_path, template, message):
    path = model_with_template(tmp_path / "m", template)
    with pytest.raises(ValueError, match=message):
        check_chat_template(path, "llama")


def snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile), "--cores", "1", *args]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=workdir)


def test_each_base_model_is_prepared_warmed_up_and_evaluated_as_its_own_step_0(tmp_path):
    config = copy.deepcopy(E2E)
    config["models"] = {"wide": {"source": "tiny", "arch": {**E2E["model"]["arch"], "hidden_size": 96}}}
    config["runs"][1]["model"] = "wide"
    proc = snakemake(tmp_path, config, "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    dry = proc.stdout
    targets = ["models/base/init", "models/wide/init", "models/base/warmup", "models/wide/warmup"]
    targets += ["eval/base/step_0/", "eval/base-wide/step_0/", "eval/grpo/step_6/", "eval/grpo-lora/step_6/"]
    for target in targets:
        assert f"results/e2e/{target}" in dry, target
    assert "eval/base-wide/step_3" not in dry and "eval/base/step_3" not in dry
    # each run starts from its own model's warm-up
    assert "input: results/e2e/models/wide/warmup, results/e2e/data/train.jsonl" in dry


def test_a_local_model_without_chat_template_fails_at_preparation(tmp_path):
    path = model_with_template(tmp_path / "no-template", None)
    config = copy.deepcopy(E2E)
    config["model"] = {"source": "local", "path": str(path)}
    config.pop("warmup")
    proc = snakemake(tmp_path, config, "results/e2e/models/base/init")
    assert proc.returncode != 0
    log = (tmp_path / "results" / "e2e" / "logs" / "prepare_model" / "base.log").read_text()
    assert f"model 'base' ({path}) has no chat template" in log
    assert not (tmp_path / "results" / "e2e" / "models" / "base" / "init").exists()
