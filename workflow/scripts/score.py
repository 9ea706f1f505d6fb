"""Snakemake adapter: score one checkpoint's completions (CPU only; code runs sandboxed)."""

from rlpipe.eval.scoring import score_completions
from rlpipe.tracking.logs import script_logging

with script_logging(snakemake.log[0]):
    score_completions(
        snakemake.input.completions,
        list(snakemake.input.data),
        snakemake.params.suite,
        snakemake.params.meta,
        snakemake.output.scores,
        snakemake.output.summary,
    )
