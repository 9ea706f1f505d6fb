"""rlpipe: the whole lifecycle of an RL post-training experiment as one Snakemake DAG.

Sub-packages: ``data`` (task generators, dataset preparation), ``rewards`` (scorers, shared by
evaluation and training), ``train`` (SFT warm-up, GRPO, PPO, PCGrad), ``eval`` (generation and
metrics), ``analysis`` (aggregation, plots, report) and ``tracking`` (logging, W&B).

This module deliberately imports nothing heavy: CPU-only rules (scoring, analysis) must not pay
for importing torch.
"""

__version__ = "0.1.0"
