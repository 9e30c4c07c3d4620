# Config validation, wildcard constraints and input helpers. No rules here.
import hashlib
import json
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

try:  # the grid's names and wildcard come from the library (lightformer/grid.py), never copied here
    from lightformer import grid
except ImportError as e:
    raise WorkflowError(f"the workflow needs the lightformer package where Snakemake runs ({e}); "
                        f"install it with `pip install -e '.[workflow]'` (README)") from None


validate(config, "../schemas/config.schema.yaml")
config.setdefault("tasks", {})  # a GLUE-only config has no sequence-to-sequence tasks

DATA = config.get("data", {})
DATA_ROOT = DATA.get("root", "results/data")


def check_config_or_stop():
    """The checks the schema cannot express (lightformer.workflow_checks), all reported together
    before any job; skipped with a warning where Snakemake runs without the lightformer package."""
    try:
        from lightformer.workflow_checks import check_config
    except ImportError:
        print("warning: lightformer is not importable here; config checks beyond the schema skipped", file=sys.stderr)
        return
    problems = check_config(config, DATA_ROOT)
    if problems:
        raise WorkflowError("the config cannot run as written:\n  - " + "\n  - ".join(problems))


check_config_or_stop()
MIRROR = DATA.get("mirror")
EMBEDDED = DATA.get("embedded", False)
SEEDS = config.get("seeds", [1])


wildcard_constraints:
    task="|".join(config["tasks"]) or "^$",  # so results/tables/speed.csv is never read as a task table
    gtask="|".join(config.get("glue", {}).get("tasks", [])) or "^$",  # the schema's enum lists the GLUE tasks
    dataset="[a-z0-9_]+",
    model="[A-Za-z0-9_.]+",
    variant=grid.wildcard_pattern(),
    control=grid.control_pattern(),
    seed="[0-9]+",
    device="cpu|cuda",
    protocol="latency|throughput",


# Threads and resources per rule. These defaults (paper scale on one GPU node), overridden key by
# key by the config's `resources:` (its `default` entry applies to every rule). On SLURM the plugin
# maps threads -> --cpus-per-task, runtime (minutes) -> -t, mem_mb -> --mem, gpu/gpu_model -> --gpus;
# slurm_partition, slurm_account and slurm_extra pass through (docs/reference.md §7).
RULE_RESOURCES = {
    "write_embedded_mirror": {"threads": 1, "mem_mb": 1000, "runtime": 5},
    "fetch_data": {"threads": 1, "mem_mb": 2000, "runtime": 120},
    "prepare_data": {"threads": 2, "mem_mb": 8000, "runtime": 240},
    "train_baseline": {"threads": 2, "mem_mb": 16000, "runtime": 1440, "gpu": 1},
    "compress_model": {"threads": 2, "mem_mb": 8000, "runtime": 30},
    "init_control": {"threads": 1, "mem_mb": 4000, "runtime": 10},
    "train_control": {"threads": 2, "mem_mb": 16000, "runtime": 1440, "gpu": 1},
    "finetune_model": {"threads": 2, "mem_mb": 16000, "runtime": 720, "gpu": 1},
    "evaluate_model": {"threads": 2, "mem_mb": 8000, "runtime": 120, "gpu": 1},
    "count_params": {"threads": 1, "mem_mb": 4000, "runtime": 5},
    "evaluate_transfer": {"threads": 2, "mem_mb": 8000, "runtime": 120, "gpu": 1},
    "ablation_transfer_table": {"threads": 1, "mem_mb": 2000, "runtime": 10},
    # threads 0 = every core Snakemake was given, so no other job runs beside a timing (see rule_threads)
    "measure_speed": {"threads": 0, "mem_mb": 16000, "runtime": 120},
    "task_table": {"threads": 1, "mem_mb": 2000, "runtime": 10},
    "convergence_table": {"threads": 1, "mem_mb": 2000, "runtime": 10},
    "lightweight_table": {"threads": 1, "mem_mb": 2000, "runtime": 10},
    "summary_tables": {"threads": 1, "mem_mb": 2000, "runtime": 10},
    "speed_table": {"threads": 1, "mem_mb": 2000, "runtime": 10},
    "glue_init": {"threads": 1, "mem_mb": 4000, "runtime": 10},
    "glue_train_baseline": {"threads": 2, "mem_mb": 16000, "runtime": 240, "gpu": 1},
    "glue_compress": {"threads": 2, "mem_mb": 8000, "runtime": 30},
    "glue_finetune": {"threads": 2, "mem_mb": 16000, "runtime": 240, "gpu": 1},
    "glue_speed": {"threads": 0, "mem_mb": 8000, "runtime": 60},
    "glue_table": {"threads": 1, "mem_mb": 2000, "runtime": 10},
}


def check_resource_rules():
    """`resources:` names rules (or `default`) that RULE_RESOURCES lists; a typo is refused with the closest name."""
    import difflib

    known = ["default", *RULE_RESOURCES]
    for name in config.get("resources", {}):
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            raise WorkflowError(f"resources: unknown rule {name!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                                + f" Allowed: {', '.join(known)}")


check_resource_rules()


def flags(*pairs):
    """`--name value ...`, every value shell-quoted (config values never reach the shell raw)."""
    return " ".join(f"{name} {shlex.quote(str(value))}" for name, value in pairs)


def record_flag(task, model, seed=None):
    """`--record JSON`: the identity a producer writes into its output (task, model, seed), which the
    reports group by instead of reading directory names."""
    record = {"task": task, "model": model} | ({"seed": int(seed)} if seed is not None else {})
    return flags(("--record", json.dumps(record, sort_keys=True)))


def set_flags(values, *keys):
    """The command's flags for what the config sets (all of ``values``, or ``keys`` of it), named as
    the command's options; anything unset keeps the library's default (lightformer.options)."""
    from lightformer.options import command_flags

    chosen = {k: v for k, v in values.items() if not keys or k in keys}
    return " ".join(shlex.quote(word) for word in command_flags(chosen))


def _rule_settings(rule):
    over = config.get("resources", {})
    return RULE_RESOURCES[rule] | over.get("default", {}) | over.get(rule, {})


def rule_threads(rule):
    """threads 0: every core Snakemake was given; on a cluster (no --cores), the timing threads."""
    n = _rule_settings(rule)["threads"]
    if n:
        return n
    return workflow._cores or config.get("measure_speed", {}).get("threads", 2)


def rule_resources(rule, **fixed):
    """Resources of `rule` (without threads); `fixed` values (e.g. callables of wildcards) win."""
    return {k: v for k, v in _rule_settings(rule).items() if k != "threads"} | fixed


GLUE = config.get("glue", {})


def get_glue_models():
    return ["baseline"] + list(grid.expand(GLUE["grid"])) if GLUE else []


def glue_metrics_path(task, model, seed):
    return f"results/glue/{task}/{model}/seed{seed}/metrics.json"


def glue_checkpoint_dir(task, model, seed):
    """The baseline's checkpoint is its seed directory; a variant's sits in <seed>/model."""
    seed_dir = f"results/glue/{task}/{model}/seed{seed}"
    return seed_dir if model == "baseline" else f"{seed_dir}/model"


def glue_init_flags(wildcards):
    if GLUE.get("model") == "bert_base_uncased":
        return flags(("--pretrained", f"{DATA_ROOT}/bert_base_uncased/raw"))
    tiny = GLUE.get("tiny", {})
    return flags(*((f"--{k.replace('_', '-')}", v) for k, v in tiny.items()))


def glue_run_args(stage):
    return " ".join(shlex.quote(f"{k}={v}") for k, v in GLUE.get(stage, {}).items())


def glue_compress_flags(wildcards):
    v = grid.expand(GLUE["grid"])[wildcards.variant]
    roles = ",".join(GLUE["grid"].get("roles", ["body"]))
    out = flags(("--ratio", v.ratio), ("--share-layers", v.share_layers), ("--init", v.init),
                ("--seed", wildcards.seed), ("--roles", roles))
    return f"{out} --share-qkv" if v.share_qkv else out


def get_glue_speed_csvs():
    s = get_speed_settings()
    if not (GLUE and s):
        return []
    return [f"results/speed/glue/{d}_{p}.csv" for d in s.get("devices", ["cpu"]) for p in s.get("protocols", ["latency"])]


def glue_speed_flags(wildcards):
    """Encoder-only timing of the first GLUE task's models (the encoders are the same for every
    task; only the heads differ), under the config's measure_speed settings."""
    s = get_speed_settings()
    out = flags(("--device", wildcards.device), ("--protocol", wildcards.protocol))
    seq = flags(("--seq-len", s["glue_seq_len"])) if "glue_seq_len" in s else ""
    names = " ".join(shlex.quote(m) for m in get_glue_models())
    threads = flags(("--threads", s.get("threads", 2))) if wildcards.device == "cpu" else ""
    return f"{out} {set_flags(s, 'dtype', 'runs', 'warmup', 'batch')} {seq} --names {names} {threads}"


def get_variants(task):
    """Variant name -> grid.Variant, for the task's grid and its transfer ablation."""
    return grid.task_variants(config["tasks"][task])


def ablation_variants(task):
    return grid.ablation_names(config["tasks"][task])


def ablation_tasks():
    return [t for t in config["tasks"] if ablation_variants(t)]


def get_controls(task):
    """Control name -> grid.Control (dense_small, sharing alone): trained from scratch like the baseline."""
    return grid.task_controls(config["tasks"][task])


def get_models(task):
    return ["baseline"] + list(get_variants(task)) + list(get_controls(task))


def config_sha256():
    """Short hash of the resolved config (defaults filled by the schema), recorded in table rows."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def data_dir(t):
    """A task's folder under the data root: its dataset's name, or its own corpus's name."""
    return t["corpus"]["name"] if t["dataset"] == "text" else t["dataset"]


def task_using(dataset):
    """The (first) task whose data lives in <root>/<dataset>."""
    return next((t for t in config["tasks"].values() if data_dir(t) == dataset), None)


def is_corpus(dataset):
    t = task_using(dataset)
    return t is not None and t["dataset"] == "text"


def corpus_flag(t):
    """--corpus with the task's corpus spec inline, its recipe options (prepare:) merged in."""
    return flags(("--corpus", json.dumps(t["corpus"] | t.get("prepare", {}), sort_keys=True)))


def manifest(task):
    return f"{DATA_ROOT}/{data_dir(config['tasks'][task])}/raw/manifest.json"


def data_kind(wildcards):
    """The dataset argument of `lightformer data`: the name, or `text` for a task's own corpus."""
    return "text" if is_corpus(wildcards.dataset) else wildcards.dataset


def prepare_flags(wildcards):
    """`lightformer data prepare` options of the (first) task that uses this dataset: only what the
    config sets, so a dataset's own recipe defaults (lightformer.datasets.pipeline.PREPARERS) apply."""
    task = task_using(wildcards.dataset) or {}
    merges = [("--bpe-merges", task["bpe_merges"])] if "bpe_merges" in task else []  # else the recipe's own
    if is_corpus(wildcards.dataset):
        return f"{flags(*merges)} {corpus_flag(task)}"
    return flags(*merges, *((f"--{k.replace('_', '-')}", v) for k, v in task.get("prepare", {}).items()))


def fetch_flags(wildcards):
    """Where the raw files come from: the mirror (the embedded fixtures, or an offline copy),
    DDTP's language pair (the first task's `prepare: pair`), or a task's own corpus spec."""
    task = task_using(wildcards.dataset) or {}
    words = []
    if is_corpus(wildcards.dataset):  # its own sources; a mirror only outside the embedded smoke run
        if MIRROR and not EMBEDDED:
            words.append(flags(("--mirror", MIRROR)))
        return " ".join([*words, corpus_flag(task)])
    if MIRROR or EMBEDDED:
        words.append(flags(("--mirror", MIRROR or "results/mirror")))
    if EMBEDDED:
        words.append("--embedded")
    pair = task.get("prepare", {}).get("pair")
    if wildcards.dataset == "ddtp" and pair:
        words.append(flags(("--pair", pair)))
    return " ".join(words)


def fetch_inputs(wildcards):
    """The embedded smoke run writes its fixtures into the mirror first (not for own corpora)."""
    if EMBEDDED and not is_corpus(wildcards.dataset):
        return [f"{MIRROR or 'results/mirror'}/{wildcards.dataset}/SHA256SUMS"]
    return []


def prepared(task):
    return f"{DATA_ROOT}/{data_dir(config['tasks'][task])}/prepared"


def run_dir_of(task, model, seed):
    """Where a model's training outputs (model, curve) land: train/ (baseline), controls/, finetune/."""
    stage = "train" if model == "baseline" else "controls" if model in get_controls(task) else "finetune"
    return f"results/{stage}/{task}/{model}/seed{seed}"


def model_path(task, model, seed):
    return f"{run_dir_of(task, model, seed)}/model.safetensors"


def curve_path(task, model, seed):
    return f"{run_dir_of(task, model, seed)}/curve.csv"


def record_path(task, model):
    """The JSON that says what a model is (reports group by its fields): a compress report or a control's record."""
    if model in get_controls(task):
        return f"results/controls/{task}/{model}/seed{SEEDS[0]}/control.json"
    return f"results/compress/{task}/{model}/seed{SEEDS[0]}/report.json"


def lr_override(task, stage, scale):
    """`lr=` at ``scale`` times the stage's recipe learning rate (the sweep); nothing at 1."""
    if scale == 1:
        return ""
    from lightformer.train.recipes import load_train_config

    run = config["tasks"][task][stage]
    cfg = load_train_config(run["recipe"], None, [f"{k}={v}" for k, v in run.get("overrides", {}).items()])
    return shlex.quote(f"lr={cfg.lr * scale:g}")


def control_train_args(wildcards):
    """The baseline's recipe and budget, at the control's learning-rate scale. dense_small's init
    checkpoint has its own, narrower shapes, so the recipe's shape overrides are left out for it
    (lightformer train refuses a width that differs from init_from's); the sharing controls have
    the baseline's shapes, which the recipe restates."""
    c = get_controls(wildcards.task)[wildcards.control]
    args = run_args(wildcards.task, "train", shapes=c.control != "dense_small")
    return f"{args} {lr_override(wildcards.task, 'train', c.lr_scale)}".strip()


def control_init_flags(wildcards):
    c = get_controls(wildcards.task)[wildcards.control]
    run = config["tasks"][wildcards.task]["train"]
    pairs = [shlex.quote(f"{k}={v}") for k, v in run.get("overrides", {}).items()]
    identity = c.record() | {"task": wildcards.task, "seed": int(wildcards.seed)}
    out = flags(("--recipe", run["recipe"]), ("--seed", wildcards.seed), ("--identity", json.dumps(identity, sort_keys=True)),
                *((("--ratio", c.ratio),) if c.ratio is not None else ()))
    return " ".join([out, *pairs])


def finetune_args(wildcards):
    """The fine-tuning recipe; for budget full, the baseline's own recipe and update budget
    (random init trained as long as the model it is compared with, not just the fine-tuning steps)."""
    v = get_variants(wildcards.task)[wildcards.variant]
    stage = "train" if v.budget == "full" else "finetune"
    return f"{run_args(wildcards.task, stage)} {lr_override(wildcards.task, stage, v.lr_scale)}".strip()


def run_args(task, stage, shapes=True):
    """`--recipe R key=value ...` for lightformer train, shell-quoted; ``shapes=False`` leaves out
    the model overrides other than dropout (the init checkpoint's own shapes stand)."""
    from lightformer.config import DROPOUTS

    run = config["tasks"][task][stage]
    pairs = [shlex.quote(f"{k}={v}") for k, v in run.get("overrides", {}).items()
             if shapes or not k.startswith("model.") or k.removeprefix("model.") in DROPOUTS]
    return " ".join(["--recipe", shlex.quote(run["recipe"]), *pairs])


def compress_flags(wildcards):
    v = get_variants(wildcards.task)[wildcards.variant]
    record = v.record() | {"task": wildcards.task, "seed": int(wildcards.seed)}
    out = flags(("--ratio", v.ratio), ("--share-layers", v.share_layers), ("--init", v.init),
                ("--rank-alloc", v.rank_alloc), ("--seed", wildcards.seed), ("--calib-data", prepared(wildcards.task)),
                ("--record", json.dumps(record, sort_keys=True)))
    compress = config["tasks"][wildcards.task].get("compress", {})  # CompressionSpec fields the task sets
    return " ".join(filter(None, [out, "--share-qkv" if v.share_qkv else "", set_flags(compress)]))


def generate_flags(wildcards):
    """`lightformer generate`'s search and metric flags for what the task's `generate:` sets."""
    return set_flags(config["tasks"][wildcards.task].get("generate", {}))


def get_speed_settings():
    return config.get("measure_speed", {})


def get_speed_csvs():
    s = get_speed_settings()
    if not s:
        return []
    return [f"results/speed/{task}/{device}_{protocol}.csv" for task in config["tasks"]
            for device in s.get("devices", ["cpu"]) for protocol in s.get("protocols", ["latency"])]


def get_paper_size_csvs():
    """Paper-size random-weight timings (lightformer speed --paper-size) for the tasks that have a
    paper size, when measure_speed.paper_size_runs asks for them."""
    from lightformer.paper import SIZES

    if not get_speed_settings().get("paper_size_runs", 0):
        return []
    return [f"results/speed/paper_size/{task}.csv" for task in config["tasks"] if task in SIZES]


def get_paper_size_flags(wildcards):
    s = get_speed_settings()
    t = s.get("tasks", {}).get(wildcards.task, {})
    out = flags(("--task", wildcards.task), ("--protocol", "latency"), ("--device", "cpu"),
                ("--threads", s.get("threads", 2)), ("--runs", s.get("paper_size_runs", 0)),
                ("--warmup", min(2, s.get("warmup", 2))))  # random weights: a short warm-up suffices
    return f"{out} {set_flags(t, 'beam', 'lenpen', 'src_len')}"


def get_speed_models(wildcards):
    """The baseline first (speedups are relative to the first), then every variant; seed 1."""
    return [model_path(wildcards.task, m, SEEDS[0]) for m in get_models(wildcards.task)]


def get_speed_flags(wildcards):
    """`lightformer speed` flags: the measurement's device and protocol, and what measure_speed and its
    per-task block set (SpeedConfig's defaults otherwise)."""
    s = get_speed_settings()
    t = s.get("tasks", {}).get(wildcards.task, {})
    out = flags(("--task", wildcards.task), ("--device", wildcards.device), ("--protocol", wildcards.protocol))
    names = " ".join(shlex.quote(m) for m in get_models(wildcards.task))
    threads = flags(("--threads", s.get("threads", 2))) if wildcards.device == "cpu" else ""
    graph = "--cuda-graph" if wildcards.device == "cuda" and s.get("cuda_graph", False) else ""
    given = f"{set_flags(s, 'dtype', 'runs', 'warmup', 'batch', 'sentences')} {set_flags(t)}"
    return f"{out} {given} --names {names} {threads} {graph}"


def get_all_targets():
    targets = [f"results/tables/{task}.csv" for task in config["tasks"]]
    targets += [f"results/tables/{kind}_{task}.csv" for task in config["tasks"] for kind in ("convergence", "lightweight")]
    if GLUE:
        targets.append("results/tables/glue.csv")
    if config["tasks"]:
        targets += ["results/tables/paper_comparison.csv", "results/figures/metric_vs_params.png"]
    if get_speed_csvs():
        targets.append("results/tables/speed.csv")
    if ablation_tasks():
        targets.append("results/tables/ablation_transfer.csv")
    return targets
