"""Snakemake adapter: build the tiny model, or resolve a hub / local base model."""

from rlpipe.models import build_tiny_model, check_chat_template, fetch_hub_model
from rlpipe.tracking.io import atomic_path
from rlpipe.tracking.logs import script_logging

with script_logging(snakemake.log[0]):
    spec, out = snakemake.params.model, snakemake.output[0]
    if spec["source"] == "tiny":
        build_tiny_model(out, spec["arch"], snakemake.params.seed)
    elif spec["source"] == "hub":
        fetch_hub_model(spec["repo_id"], spec.get("revision"), out)
    else:
        import json

        with atomic_path(out, directory=True) as tmp:
            (tmp / "source.json").write_text(json.dumps({"path": spec["path"]}))
    check_chat_template(out, snakemake.wildcards.model)
