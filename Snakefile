# rlpipe: the whole lifecycle of an RL post-training experiment as one DAG.
# data -> SFT warm-up -> training runs -> evaluation of every checkpoint -> scores, curves, report.
#
# The embedded default is config/config.yaml; `--configfile config/experiments/X.yaml` runs another
# experiment, which must be complete (it replaces the default rather than merging into it).
from rlpipe.config import load_experiment

if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


EXP = load_experiment(config, workflow.configfiles, workdir=workflow.basedir)


# Only used with --sdm apptainer: `--sdm conda apptainer` builds envs/*.yaml inside this image
# (profiles/slurm/README.md: software environments; rlpipe's own image: snakemake --containerize).
container: "docker://condaforge/miniforge3:24.11.3-0"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/preflight.smk"
include: "rules/train.smk"
include: "rules/eval.smk"
include: "rules/analysis.smk"


rule all:
    input:
        f"{OUT}/report.md",
        f"{OUT}/scores.csv",
        # every intermediate is a product too: Snakemake rebuilds a deleted (or set-aside) one only
        # if something asks for it, not when the files made from it are up to date
        products,
