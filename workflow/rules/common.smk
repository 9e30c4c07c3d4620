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
    device="cpu|cuda",
    protocol="latency|throughput",


def get_variants(task):
    return list(config.get("compress_model", {}).get(task, {}))


def get_all_targets():
    targets = []
    for task in config["init_model"]:
        targets.append(f"results/params/{task}/baseline.json")
        targets += [f"results/params/{task}/{v}.json" for v in get_variants(task)]
    if get_speed_csvs():
        targets.append("results/tables/speed.csv")
    return targets


def get_speed_settings():
    return config.get("measure_speed", {})


def get_speed_csvs():
    s = get_speed_settings()
    if not s:
        return []
    return [f"results/speed/{task}/{device}_{protocol}.csv" for task in config["init_model"]
            for device in s.get("devices", ["cpu"]) for protocol in s.get("protocols", ["latency"])]


def get_speed_models(wildcards):
    """The baseline first: speedups are relative to the first checkpoint."""
    task = wildcards.task
    return [f"results/models/{task}/baseline.safetensors"] + [
        f"results/models/{task}/{v}.safetensors" for v in get_variants(task)]


def get_speed_flags(wildcards):
    s = get_speed_settings()
    t = s.get("tasks", {}).get(wildcards.task, {})
    flags = [f"--device {wildcards.device}", f"--protocol {wildcards.protocol}", f"--dtype {s.get('dtype', 'fp32')}",
             f"--runs {s.get('runs', 300)}", f"--warmup {s.get('warmup', 5)}", f"--beam {t.get('beam', 5)}",
             f"--lenpen {t.get('lenpen', 1.0)}", f"--src-len {t.get('src_len', 23)}",
             f"--batch {s.get('batch', 128)}", f"--sentences {s.get('sentences', 512)}"]
    if wildcards.device == "cpu":
        flags.append(f"--threads {s.get('threads', 2)}")
    if wildcards.device == "cuda" and s.get("cuda_graph", False):
        flags.append("--cuda-graph")
    return " ".join(flags)


def get_share_flag(wildcards):
    share = config["init_model"][wildcards.task].get("share", "none")
    return {"none": "", "decoder_input_output": "--share-decoder-input-output-embed",
            "all": "--share-all-embeddings"}[share]


def get_compress_spec(wildcards):
    """The variant's options as shell-quoted JSON, written beside the model for provenance."""
    return shlex.quote(json.dumps(config["compress_model"][wildcards.task][wildcards.variant]))
