# Config validation, wildcard constraints and input helpers. No rules here.
import json
import shlex

from snakemake.utils import validate


validate(config, "../schemas/config.schema.yaml")

for _task in config.get("compress_model", {}):
    if _task not in config["init_model"]:
        raise ValueError(f"config: compress_model.{_task} has no baseline under init_model.{_task}")


wildcard_constraints:
    task="[a-z0-9_]+",
    variant="[A-Za-z0-9_.]+",
    model="[A-Za-z0-9_.]+",


def get_variants(task):
    return list(config.get("compress_model", {}).get(task, {}))


def get_all_targets():
    targets = []
    for task in config["init_model"]:
        targets.append(f"results/params/{task}/baseline.json")
        targets += [f"results/params/{task}/{v}.json" for v in get_variants(task)]
    return targets


def get_share_flag(wildcards):
    share = config["init_model"][wildcards.task].get("share", "none")
    return {"none": "", "decoder_input_output": "--share-decoder-input-output-embed",
            "all": "--share-all-embeddings"}[share]


def get_compress_spec(wildcards):
    """The variant's options as shell-quoted JSON, written beside the model for provenance."""
    return shlex.quote(json.dumps(config["compress_model"][wildcards.task][wildcards.variant]))
