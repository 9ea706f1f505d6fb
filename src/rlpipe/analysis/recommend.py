"""The report's recommendations: sentences generated from the numbers, never written by hand.

Each rule reads one kind of evidence (comparisons, training diagnostics, pre-flight, checkpoint
selection, cost) and speaks only when the evidence is significant or a check failed, so an
experiment where nothing is significant says exactly that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def _ci(d: Mapping[str, Any]) -> str:
    return f"{d['delta']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"


def _claim(d: Mapping[str, Any]) -> str:
    """What a delta is a claim about, in the words every sentence ends with."""
    if d.get("claim") == "configuration":
        src = "declared seed sd" if d.get("seed_source") == "declared" else f"{_seeds(d)} seeds"
        return f"configuration-level, {src}"
    return "checkpoint-level: these two training runs, one seed each; not a claim about the configurations"


def _stop_ci(sel: Mapping[str, Any]) -> str:
    return f"{sel['stop_delta']:+.3f} [{sel['stop_lo']:+.3f}, {sel['stop_hi']:+.3f}]"


def _seeds(d: Mapping[str, Any]) -> str:
    a, b = d.get("n_seeds", (1, 1))
    return f"{a}" if a == b else f"{a} vs {b}"


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def recommendations(
    *,
    baseline: str | None,
    vs_baseline: Sequence[Mapping[str, Any]],
    vs_base: Sequence[Mapping[str, Any]],
    selection: Mapping[str, Mapping[str, Any]],
    diagnostics: Mapping[str, Mapping[str, Any]],
    preflight: Mapping[str, Mapping[str, Any]],
    cost: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """Markdown bullet texts, most decision-relevant first."""
    out: list[str] = []

    # 1. what beats the baseline, where, and at what price elsewhere
    for row in vs_baseline:
        ups = [
            f"{name} by {_ci(d)}" for name, d in row["domains"].items() if d["significant"] and d["delta"] > 0
        ]
        downs = [
            f"{name} ({_ci(d)})" for name, d in row["domains"].items() if d["significant"] and d["delta"] < 0
        ]
        widths = [(d["hi"] - d["lo"]) / 2 for d in row["domains"].values() if not math.isnan(d["hi"])]
        width = max(widths, default=math.nan)
        name = f"`{row['run']}`"
        claim = _claim(next(iter(row["domains"].values()), row["mean"]))
        if ups and downs:
            out.append(f"{name} helps {_join(ups)} over `{baseline}` but costs {_join(downs)} ({claim}).")
        elif ups:
            out.append(
                f"{name} beats `{baseline}` on {_join(ups)}, with no significant regression ({claim})."
            )
        elif downs:
            out.append(f"{name} is worse than `{baseline}` on {_join(downs)} ({claim}).")
        elif width == 0.0:
            out.append(f"{name} and `{baseline}` scored identically on every test item.")
        else:
            out.append(
                f"{name} vs `{baseline}`: no significant difference on any domain (95 % CIs about "
                f"±{width:.3f} wide; {claim})."
            )
        mean, needed = row["mean"], row.get("seeds_needed")
        if (
            mean.get("claim") == "configuration"
            and not mean["significant"]
            and mean["delta"] == mean["delta"]
        ):
            seeds = (
                f"about {needed} seeds per configuration would separate them (80 % power, from the measured "
                "seed and item variance)"
                if needed
                else "more than 64 seeds per configuration would be needed to separate them"
            )
            out.append(f"{name} vs `{baseline}` overall {_ci(mean)}: at this difference {seeds}.")

    # 2. did training help at all
    for row in vs_base:
        mean = row["mean"]
        if mean["significant"]:
            verb = "improved" if mean["delta"] > 0 else "degraded"
            out.append(
                f"Training `{row['run']}` {verb} the mean score over its base model by {_ci(mean)} "
                f"({_claim(mean)})."
            )
        else:
            out.append(
                f"`{row['run']}` is not significantly better than its base model overall ({_ci(mean)}; "
                f"{_claim(mean)})."
            )

    # 3. runs that did not learn
    for run, diag in diagnostics.items():
        if diag["verdict"] != "learning":
            causes = "; ".join(diag["causes"][:2]) or "no recognised cause"
            out.append(f"`{run}` is **{diag['verdict']}**: {causes}.")

    # 4. pre-flight problems
    for run, pf in preflight.items():
        sig = pf["signal"]
        if not pf["loss_mask"]["passed"]:
            out.append(f"`{run}`: the loss-mask check FAILED ({'; '.join(pf['loss_mask']['problems'])}).")
        if sig["no_signal"]:
            out.append(
                f"`{run}` started without a learning signal ({sig['frac_zero_std']:.0%} of prompt groups had "
                "identical rewards): warm up longer, use easier data or sample more completions per prompt."
            )
        else:
            for domain, d in sig.get("by_domain", {}).items():
                if d["frac_zero_std"] >= 0.95:
                    out.append(
                        f"`{run}`: domain {domain} had no learning signal at the start "
                        f"({d['frac_zero_std']:.0%} zero-std groups, mean reward {d['reward_mean']:.3f})."
                    )

    # 5. when to stop
    for run, sel in selection.items():
        final = sel["final_step"]
        if sel["overfitting"]:
            out.append(
                f"`{run}` overfits: step {sel['overfit_step']} is significantly below the best step "
                f"{sel['best']['overall']['step']} ({sel['overfit_delta']:+.3f} [{sel['overfit_lo']:+.3f}, "
                f"{sel['overfit_hi']:+.3f}]); keep step {sel['best']['overall']['step']}."
            )
        if final and sel["best"]["overall"]["step"] == 0:
            out.append(
                f"`{run}`: its best checkpoint is the base model (step 0): "
                "training did not raise the test score."
            )
        elif final and sel["verdict"] == "equivalent" and sel["stop_step"] < final:
            out.append(
                f"`{run}`: step {sel['stop_step']} is within ±{sel['margin']:g} of its best checkpoint "
                f"(equivalence test, {_stop_ci(sel)}); "
                f"training beyond it ({(1 - sel['stop_fraction']):.0%} of the steps) bought no gain larger "
                "than the margin."
            )
        elif final and sel["verdict"] == "undetermined":
            out.append(
                f"`{run}`: whether training beyond step {sel['undetermined_step']} helped is undetermined: "
                f"it is {_stop_ci(sel)} from the best "
                f"checkpoint, neither significantly below it nor shown within ±{sel['margin']:g} of it."
            )

    # 6. cost effectiveness
    rated = {r: c for r, c in cost.items() if c.get("per_hour") is not None and not math.isnan(c["per_hour"])}
    if len(rated) > 1 and any(c["gain"] > 0 for c in rated.values()):
        unit = next(iter(rated.values()))["unit"]
        if all(c["unit"] == unit for c in rated.values()):
            best = max(rated, key=lambda r: rated[r]["per_hour"])
            out.append(
                f"Most score per {unit}: `{best}` ({rated[best]['per_hour']:+.3f} per {unit}, "
                f"{rated[best]['gain']:+.3f} for {rated[best]['hours']:.3g} {unit}s)."
            )
    return out
