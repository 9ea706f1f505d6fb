"""End to end: the real workflow on a reduced config — real tiny model, real TRL steps, real evaluation.

One module-scoped run is shared by the artifact checks and the rerun-semantics checks (which use
dry runs); a second run in another directory checks that the same seed gives identical scores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from damage import alter_in_place

from rlpipe.tracking.logs import read_timing

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "configs" / "e2e.yaml"
EXP = "e2e"
TASKS = {"addition", "sorting", "program"}
RUNS = ("grpo", "grpo-lora")
# Secrets the workflow runs with: none may reach any file it writes (W&B stays offline by WANDB_MODE).
SENTINELS = {"WANDB_API_KEY": "sentinel-wandb-key-0123456789abcdef", "HF_TOKEN": "hf_sentinelTOKEN0123456789"}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
pytestmark = pytest.mark.e2e


def snakemake(workdir: Path, *args: str, configfile: Path = CONFIG, timeout: int = 1200) -> str:
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(configfile), "--cores", "2", *args,
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", **SENTINELS}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=workdir)
    if proc.returncode:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc.stdout + proc.stderr


def planned_jobs(output: str) -> tuple[Counter, list[str]]:
    """Job counts per rule and the `run` wildcards of planned train jobs, from a dry run's output."""
    counts: Counter = Counter()
    table = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)total", output, re.S)
    if table:
        for line in table.group(1).strip().splitlines():
            rule, count = line.split()
            counts[rule] = int(count)
    trained = re.findall(r"(?:rule|checkpoint) train:.*?wildcards: run=(\S+)", output, re.S)
    return counts, sorted(set(trained))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("wf")
    snakemake(workdir)
    return workdir


def test_every_artifact_is_there(run_dir):
    out = run_dir / "results" / EXP
    scores = pd.read_csv(out / "scores.csv")
    assert {"experiment", "run", "method", "step", "task", "domain", "n", "score"} <= set(scores.columns)
    expected = {("base", 0)} | {(r, s) for r in ("grpo", "grpo-lora") for s in (3, 6)}
    assert set(zip(scores["run"], scores["step"], strict=True)) == expected
    assert len(scores) == len(expected) * len(TASKS)
    assert set(scores["task"]) == TASKS
    assert scores["score"].between(0, 1).all()
    # n counts the test items: the rest of each task's 24 held-out items are its validation split
    for task in TASKS:
        rows = [
            json.loads(line) for line in (out / "data" / "suite" / f"{task}.jsonl").read_text().splitlines()
        ]
        n_test = sum(row["split"] == "test" for row in rows)
        assert len(rows) == 24 and 0 < n_test < 24
        assert (scores[scores["task"] == task]["n"] == n_test).all()
    # the model is real and was trained: some sampled answer (either split, any checkpoint) is right;
    # the 40-step warm-up leaves it weak, so on ~20 test items per task its avg@2 may well be 0
    samples = [json.loads(line) for p in (out / "eval").glob("*/step_*/scores.jsonl") for line in p.open()]
    assert len(samples) == 5 * 24 * len(TASKS) * 2 and any(r["score"] > 0 for r in samples)

    for plot in ("evolution_tasks.png", "evolution_domains.png"):
        data = (out / "plots" / plot).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000

    report = (out / "report.md").read_text()
    sections = ["## Summary", "## Recommendations", "## Runs", "## Scores at the final checkpoint",
                "## Checkpoint selection", "## Did training help?", "## Comparison with the baseline `grpo`",
                "## Learning diagnostics", "## Pre-flight checks", "## Cost", "## Checkpoint evolution",
                "## Weights & Biases", "## Reproducibility"]  # fmt: skip
    positions = [report.index(section) for section in sections]
    assert positions == sorted(positions)
    for plot in ("plots/evolution_domains.png", "plots/comparison.png", "plots/training/grpo.png"):
        assert f"]({plot})" in report and (out / plot).stat().st_size > 10_000
    assert not re.search(r"\bnan\b", report, re.I)
    # checkpoints chosen on the suite's validation items, one estimand, Holm families named
    assert "Best checkpoints are chosen on the suite's validation items" in report
    assert "| validation |" in report
    assert 'Every overall score ("mean") is the mean over tasks' in report
    assert "vs baseline: domains and tasks × runs" in report
    assert re.search(r"\| grpo \| \*\*(learning|flat|unstable)\*\* \|", report)
    assert "| grpo | 48 × 4 |" in report  # pre-flight: 48 prompts x the run's 4 generations
    assert re.search(
        r"\| grpo \| \d+\.\d \| 0 \| 0\.\d+ \| 2 \| \d+\.\d \|", report
    )  # cost: wall, GPU-h, CPU-h
    assert "Offline runs; upload them with `wandb sync --include-offline" in report
    for table in ("comparison", "checkpoints", "diagnostics", "preflight", "cost"):
        assert len(pd.read_csv(out / "tables" / f"{table}.csv")) > 0, table
    for task in TASKS:
        assert (out / "plots" / "evolution" / f"{task}.png").exists()

    for run in RUNS:
        pre = json.loads((out / "preflight" / f"{run}.json").read_text())
        assert pre["loss_mask"]["passed"] and pre["signal"]["n_prompts"] == 48
        assert pre["loss_mask"]["positions"]["completion_padding"] > 0
        verdict = json.loads((out / "diagnostics" / f"{run}.json").read_text())
        assert verdict["verdict"] in ("learning", "flat", "unstable") and verdict["line"].startswith(run)
        # the DAG ran the pre-flight check before training, and every job recorded its timing
        pre_t, train_t = (read_timing(out / "logs" / rule / f"{run}.log") for rule in ("preflight", "train"))
        assert pre_t[-1]["status"] == train_t[-1]["status"] == "ok"
        assert pre_t[-1]["end"] <= train_t[-1]["start"]
    manifest = json.loads((out / "wandb" / "runs.json").read_text())
    assert manifest["mode"] == "offline" and set(manifest["runs"]) == set(RUNS)
    assert len(list((out / "wandb").glob("offline-run-*"))) == 2 * len(RUNS)

    metrics = (out / "runs" / "grpo" / "metrics.jsonl").read_text().splitlines()
    assert len([m for m in metrics if '"reward"' in m]) == 6

    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out / "runs" / "grpo" / "checkpoints" / "step_6")
    assert (out / "runs" / "grpo-lora" / "checkpoints" / "step_6" / "adapter_config.json").exists()
    samples = (out / "eval" / "grpo-lora" / "step_6" / "completions.jsonl").read_text().splitlines()
    assert len(samples) == 3 * 24 * 2
    rules = ("prepare_model", "warmup", "preflight", "train", "generate", "score", "aggregate", "diagnose")
    for rule in (*rules, "wandb", "report"):
        assert list((out / "logs").glob(f"{rule}*")), rule


def test_gpu_acceptance_checks_pass_on_the_cpu_run(run_dir):
    """bench/gpu_e2e.py's artifact checks, run here so a refactor cannot break them unseen."""
    sys.path.insert(0, str(ROOT / "bench"))
    import gpu_e2e

    checks = gpu_e2e.check_artifacts(run_dir / "results" / EXP, yaml.safe_load(CONFIG.read_text()))
    assert checks and all(c["ok"] for c in checks.values()), checks
    # The engine each evaluation job logged (the GPU run requires RefillGenerator; CPU: generate).
    jobs = gpu_e2e.eval_jobs(run_dir / "results" / EXP)
    assert jobs and {job.get("engine") for job in jobs} == {"transformers"}, jobs


def test_nothing_written_contains_a_secret(run_dir):
    leaks = []
    for root in (run_dir / "results", run_dir / ".snakemake"):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                leaks += [f"{path}: {k}" for k, v in SENTINELS.items() if v.encode() in data]
    assert not leaks, leaks


# Runs inside the Snakemake report page: shows every category, opens the evolution plot as a user
# clicking it would (the app's own setView), checks that every embedded PNG decodes, records it.
PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const pngs = Object.keys(results).filter(k => results[k].mime_type === "image/png");
  const images = {};
  for (const k of pngs) { images[k] = new Image(); images[k].src = results[k].data_uri; }
  const key = pngs.find(k => k.endsWith("plots/evolution_domains.png"));
  app.showCategory("Evaluation");
  app.setView({content: "img", contentPath: results[key].data_uri, resultPath: key});
  setTimeout(() => {
    const sizes = {};
    for (const k of pngs) { sizes[k] = [images[k].naturalWidth, images[k].naturalHeight]; }
    const shown = [...document.querySelectorAll("img")].filter(i => i.src.startsWith("data:image/png"))
      .map(i => [i.naturalWidth, i.naturalHeight]);
    const pre = document.createElement("pre"); pre.id = "rlpipe-probe"; pre.style.display = "none";
    pre.textContent = JSON.stringify({sizes, shown, categories, nav: document.body.innerText});
    document.body.appendChild(pre);
  }, 1500);
}, 300));
</script>"""


def _ensure_chromium() -> bool:
    """Whether Chromium is here; in CI (``CI=true``, root, Debian) it is installed first, as the SLURM
    tests install their cluster, so the HTML check runs there instead of skipping."""
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return True
    if os.environ.get("CI") != "true" or os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
    ):
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL
        )
        assert proc.returncode == 0, f"{' '.join(cmd)} failed in CI: {proc.stderr[-2000:]}"
    return shutil.which("chromium") is not None


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_html_report_embeds_plots_and_tables(run_dir, tmp_path):
    html = run_dir / "results" / EXP / "report.html"
    snakemake(run_dir, "--report", str(html))
    text = html.read_text()
    for name in ("evolution_tasks.png", "evolution_domains.png", "scores.csv", "report.md", "comparison.png",
                 "training/grpo.png", "preflight/grpo.json", "cost.csv"):  # fmt: skip
        assert name in text, name
    assert html.stat().st_size > 100_000
    if not _ensure_chromium():
        pytest.skip(
            "headless Chromium not installed (Debian: apt-get install -y chromium); HTML not rendered"
        )

    page = tmp_path / "report_probe.html"
    cut = text.rindex("</body>")
    page.write_text(text[:cut] + PROBE + text[cut:])
    dom = _chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile-dom")
    found = re.search(r'<pre id="rlpipe-probe"[^>]*>(.*?)</pre>', dom.stdout, re.S)
    assert found, f"the report page did not render: {dom.stderr[-2000:]}"
    probe = json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert set(probe["categories"]) == {"Training", "Evaluation", "Comparison", "Diagnostics"}
    assert set(probe["categories"]["Evaluation"]) == {"overview", "per task"}
    expected = {f"results/{EXP}/plots/{p}.png" for p in ("evolution_tasks", "evolution_domains", "comparison",
                "training/grpo", "training/grpo-lora", *(f"evolution/{t}" for t in TASKS))}  # fmt: skip
    assert expected <= set(probe["sizes"]), sorted(probe["sizes"])
    assert all(w > 400 and h > 300 for w, h in probe["sizes"].values()), probe["sizes"]
    assert probe["shown"] and probe["shown"][0][0] > 500  # the evolution plot is on screen, decoded
    for category in ("Training", "Evaluation", "Comparison", "Diagnostics"):
        assert category in probe["nav"]

    shot = run_dir / "results" / EXP / "report_screenshot.png"
    _chromium(
        f"--screenshot={shot}", "--window-size=1400,900", page.as_uri(), profile=tmp_path / "profile-shot"
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    print(f"HTML report screenshot: {shot}")


def test_complete_run_has_nothing_to_do(run_dir):
    output = snakemake(run_dir, "-n")
    assert "Nothing to be done" in output, output[-2000:]


def test_a_moved_project_reruns_nothing(run_dir, tmp_path):
    """Issue 23: no rule's input or params hold the project's own location (the suite file, the
    report template): the workflow copied elsewhere and run on the finished results plans nothing."""
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("Snakefile", "rules", "workflow", "config", "envs", "profiles", "tests/configs"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, moved / name)
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(moved / "Snakefile"), "--directory", str(run_dir),
         "--configfile", str(moved / CONFIG.relative_to(ROOT)), "--cores", "2", "-n"],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=run_dir, timeout=600,
    )  # fmt: skip
    assert "Nothing to be done" in out.stdout + out.stderr, (out.stdout + out.stderr)[-3000:]


def test_changing_one_run_reruns_only_that_run(run_dir, tmp_path):
    config = yaml.safe_load(CONFIG.read_text())
    config["runs"][1]["grpo"]["learning_rate"] = 5e-4
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    counts, trained = planned_jobs(snakemake(run_dir, "-n", configfile=changed))
    assert trained == ["grpo-lora"]
    assert counts == Counter(
        {
            "train": 1,
            "generate": 2,
            "score": 2,
            "aggregate": 1,
            "plot_evolution": 1,
            "diagnose": 1,
            "wandb": 1,
            "report": 1,
            "all": 1,
        }
    )


def planned_after_appending(run_dir: Path, path: Path, text: str) -> Counter:
    """Jobs a dry run plans while ``path`` ends with ``text`` (restored afterwards).

    Snakemake ignores a newer mtime when the content checksum is unchanged: really edit it.
    """
    original = path.read_text()
    try:
        path.write_text(original + text)
        return planned_jobs(snakemake(run_dir, "-n"))[0]
    finally:
        path.write_text(original)


def test_editing_the_report_template_reruns_only_the_report(run_dir):
    template = ROOT / "workflow" / "templates" / "report.md.j2"
    counts = planned_after_appending(run_dir, template, "{# edited by test_workflow_e2e #}\n")
    assert counts == Counter({"report": 1, "all": 1})


def test_editing_package_code_reruns_the_jobs_that_run_it(run_dir):
    """A rule's ``code`` param hashes its layer's sources and those below (rlpipe.tracking.provenance)."""
    import rlpipe

    package = Path(rlpipe.__file__).resolve().parent  # the installed (editable) package the jobs import

    def planned_after_editing(relative: str) -> Counter:
        return planned_after_appending(run_dir, package / relative, "\n# edited by test_workflow_e2e\n")

    # The analysis jobs, and W&B logging downstream of their scores.csv; no training or evaluation.
    analysis = planned_after_editing("analysis/report.py")
    assert set(analysis) == {"aggregate", "plot_evolution", "diagnose", "wandb", "report", "all"}
    scoring = planned_after_editing("eval/scoring.py")  # below train: everything but the data jobs
    assert {"warmup", "train", "generate", "score", "report"} <= set(scoring)
    assert not {"prepare_model", "prepare_train_data", "prepare_suite_task"} & set(scoring)
    assert "Nothing to be done" in snakemake(run_dir, "-n")  # restored: up to date again


def job_pids(workdir: Path, script: str = ".py") -> list[int]:
    """Processes running a Snakemake ``script:`` of this workflow (``.snakemake/scripts/tmp*<script>``)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and f"{workdir}/.snakemake/scripts/" in cmdline and script in cmdline:
            pids.append(int(proc.name))
    return pids


def test_faults_are_survived_by_rerunning_the_same_command_with_identical_scores(run_dir, tmp_path):
    """Issue 23, fault injection: the same workflow in a second directory, with the controller and its
    jobs killed (SIGKILL, as a lost node) at a random training step, which leaves Snakemake's lock
    (the one failure answered with ``--unlock``), and a torn metrics line; then a published
    checkpoint and a completions file altered in place (size and mtime kept) and a scores file
    deleted. Otherwise the same command is rerun without any other action; the final scores.csv must
    equal the clean run's byte for byte (which is also the same-seed determinism check)."""
    import random
    import signal
    import time

    rng = random.Random()
    kill_after = rng.randint(1, 5)  # training steps of grpo-lora logged before the kill
    why = f"(controller and jobs SIGKILLed after grpo-lora's step {kill_after})"
    out = tmp_path / "results" / EXP
    live = out / "runs" / "grpo-lora" / "state" / "metrics.jsonl"
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
        "--configfile", str(CONFIG), "--cores", "2",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", **SENTINELS}
    with open(tmp_path / "faulted.log", "w") as log:
        controller = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        deadline = time.monotonic() + 900
        killed = []
        while controller.poll() is None and time.monotonic() < deadline and not killed:
            steps = (
                sum(1 for line in live.read_text().splitlines() if '"reward"' in line) if live.exists() else 0
            )
            if steps >= kill_after:  # the controller and every job it runs: as a lost node would
                os.kill(controller.pid, signal.SIGKILL)
                for pid in job_pids(tmp_path):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.05)
        controller.wait(timeout=900)
    assert killed, (
        f"grpo-lora never reached step {kill_after}: {(tmp_path / 'faulted.log').read_text()[-3000:]}"
    )
    assert controller.returncode == -signal.SIGKILL
    if live.read_text().endswith("\n"):
        with live.open("a") as fh:
            fh.write('{"step": 99, "rew')  # what a kill mid-append leaves
    with pytest.raises(AssertionError, match="--unlock"):
        snakemake(tmp_path)  # the killed controller's lock: Snakemake's error says what to run
    snakemake(tmp_path, "--unlock")
    snakemake(tmp_path)  # the same command: resumes and finishes
    log = (out / "logs" / "train" / "grpo-lora.log").read_text()
    assert "dropping a torn last line" in log, why

    step = out / "runs" / "grpo-lora" / "checkpoints" / "step_3"
    alter_in_place(step / "adapter_model.safetensors")
    alter_in_place(out / "eval" / "grpo-lora" / "step_3" / "completions.jsonl")
    (out / "eval" / "grpo-lora" / "step_3" / "scores.jsonl").unlink()
    with pytest.raises(AssertionError, match="completions.jsonl: content differs"):
        snakemake(tmp_path)  # scoring reads the altered completions: refused, set aside
    assert (out / "eval" / "grpo-lora" / "step_3" / "completions.jsonl.corrupt").exists()
    snakemake(tmp_path)  # regenerates them, from the checkpoint restored from training's export
    generate_log = (out / "logs" / "generate" / "grpo-lora" / "step_3.log").read_text()
    assert "restoring it from training's verified export" in generate_log
    first = (run_dir / "results" / EXP / "scores.csv").read_bytes()
    assert (out / "scores.csv").read_bytes() == first, why
    assert "Nothing to be done" in snakemake(tmp_path, "-n")


def test_a_changed_run_retrains_from_scratch_not_from_its_old_state(run_dir, tmp_path):
    """Snakemake reruns the changed run's training; its state from the old spec must not be resumed.

    Kept last in this module: it retrains a run inside the shared workflow directory.
    """
    out = run_dir / "results" / EXP / "runs" / "grpo-lora"

    def learning_rates() -> list[float]:
        lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        return [m["learning_rate"] for m in lines if "reward" in m]

    before = learning_rates()
    config = yaml.safe_load(CONFIG.read_text())
    config["runs"][1]["grpo"]["learning_rate"] = 5e-4
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    snakemake(run_dir, configfile=changed)
    log = (run_dir / "results" / EXP / "logs" / "train" / "grpo-lora.log").read_text()
    assert "was made by a different run" in log and "starting this run from scratch" in log
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines if "reward" in m] == list(range(1, 7))
    # every step trained again with the new learning rate, none re-published from the old run
    assert [lr / 5e-4 for lr in learning_rates()] == pytest.approx([lr / 1e-3 for lr in before])
    assert "Nothing to be done" in snakemake(run_dir, "-n", configfile=changed)
