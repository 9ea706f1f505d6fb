"""Snakemake adapter: learning verdict of a finished run (warned about on the console) + its curves."""

import sys

from rlpipe.analysis.diagnostics import format_verdict, warn_at_run_end
from rlpipe.analysis.plots import plot_training
from rlpipe.tracking.io import write_json
from rlpipe.tracking.logs import script_logging
from rlpipe.tracking.metrics import read_metrics

with script_logging(snakemake.log[0]) as log:
    run, metrics = snakemake.wildcards.run, snakemake.input[0]
    verdict = warn_at_run_end(metrics, run, log)
    line = format_verdict(verdict, run)
    if verdict.verdict != "learning":  # the log is redirected; the console is where a person looks
        print(f"rlpipe WARNING: training run {line}", file=sys.__stderr__, flush=True)
    write_json(
        snakemake.output.verdict,
        {
            "run": run,
            "verdict": verdict.verdict,
            "causes": verdict.causes,
            "evidence": verdict.evidence,
            "line": line,
        },
    )
    plot_training(read_metrics(metrics), run, snakemake.params.color, verdict.verdict, snakemake.output.plot)
