"""Snakemake adapter: collect every checkpoint summary into scores.csv."""

from rlpipe.analysis.aggregate import aggregate
from rlpipe.tracking.logs import script_logging

with script_logging(snakemake.log[0]):
    aggregate(list(snakemake.input), snakemake.output[0])
