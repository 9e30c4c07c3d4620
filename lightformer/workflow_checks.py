"""What the workflow checks when it parses its config, beyond what the JSON schema can say:
override keys and values against the training config, each grid point against the compressor's
own planning code (sharing groups, ratio reachability), GLUE roles, speed task names, seeds.
All problems are collected and reported together, each by its config path, before any job."""
from __future__ import annotations

import json
from pathlib import Path

from lightformer.compress.plan import make_plan
from lightformer.compress.spec import CompressionSpec
from lightformer.config import model_config
from lightformer.data import prepared_dir
from lightformer.datasets.pipeline import recipe_default
from lightformer.errors import LightformerError
from lightformer.grid import BLOCKS
from lightformer.train.recipes import load_train_config


def _vocab_sizes(prepared: Path, bpe_merges: int) -> list[int]:
    """The prepared dictionary's size, or (data not prepared yet) a low and a high estimate from
    the BPE merges, so that an unreachable ratio is reported only if it is so at both."""
    meta = prepared / "meta.json"
    if meta.is_file():
        try:
            src = json.loads(meta.read_text())["src"]
            return [sum(1 for _ in open(prepared / f"dict.{src}.txt")) + 4]
        except (OSError, ValueError, KeyError):
            pass
    return [bpe_merges + 100, 4 * bpe_merges + 1000]


def _train_config(task: dict, stage: str, where: str, problems: list[str]):
    run = task.get(stage, {})
    pairs = [f"{k}={v}" for k, v in run.get("overrides", {}).items()]
    try:
        return load_train_config(run.get("recipe"), None, pairs)
    except LightformerError as e:
        problems.append(f"{where}.{stage}: {e}")
        return None


def _grid_problems(name: str, task: dict, data_root: str, problems: list[str]) -> None:
    cfg = _train_config(task, "train", f"tasks.{name}", problems)
    _train_config(task, "finetune", f"tasks.{name}", problems)
    if cfg is None:  # still check the grid against the recipe's own architecture
        cfg = _train_config({"train": {"recipe": task.get("train", {}).get("recipe")}}, "train", "", [])
    if cfg is None:
        return
    folder = task["corpus"]["name"] if task.get("dataset") == "text" else task["dataset"]
    merges = task.get("bpe_merges") or recipe_default(task["dataset"], "bpe_merges") or 10_000
    vocabs = _vocab_sizes(prepared_dir(data_root, folder), int(merges))
    seen = set()
    for block in BLOCKS:
        if task.get(block):
            _block_problems(name, block, task[block], cfg, vocabs, seen, problems)


def _block_problems(name, block, grid, cfg, vocabs, seen, problems):
    for ratio in grid["ratio"]:
        for k in grid["share_layers"]:
            errors = []
            for vocab in vocabs:
                try:
                    model = model_config(cfg.arch, vocab, vocab, **cfg.model)
                    make_plan(model, CompressionSpec.from_any(ratio=ratio, share_layers=k,
                                                              share_qkv=grid.get("share_qkv", False),
                                                              roles=grid.get("roles")))
                except LightformerError as e:
                    errors.append(str(e))
            if len(errors) == len(vocabs) and errors[0] not in seen:
                seen.add(errors[0])
                estimated = "" if len(vocabs) == 1 else " (vocabulary estimated from bpe_merges: data not prepared)"
                problems.append(f"tasks.{name}.{block} (ratio {ratio}, share_layers {k}): {errors[0]}{estimated}")


def _corpus_problems(name: str, task: dict, corpora: dict, problems: list[str]) -> None:
    """A task's own corpus: its spec must load, and tasks naming one corpus must describe it alike."""
    from lightformer.datasets.corpus import from_spec

    spec = (task.get("corpus") or {}) | (task.get("prepare") or {})
    try:
        from_spec(spec)
    except LightformerError as e:
        problems.append(f"tasks.{name}.corpus: {e}")
        return
    first = corpora.setdefault(spec["name"], (name, spec))
    if first[1] != spec:
        problems.append(f"tasks.{name}.corpus: {spec['name']!r} is also task {first[0]}'s corpus, described "
                        f"differently; one corpus name, one description")


def check_config(config: dict, data_root: str = "results/data") -> list[str]:
    """Every problem found, as 'config.path: what is wrong'; empty when the config can run."""
    problems = []
    for i, seed in enumerate(config.get("seeds", [1])):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            problems.append(f"seeds[{i}]: {seed!r} is invalid: expected an integer >= 0")
    tasks = config.get("tasks", {})
    corpora = {}
    for name, task in tasks.items():
        if task.get("dataset") == "text":
            _corpus_problems(name, task, corpora, problems)
        _grid_problems(name, task, data_root, problems)
    speed_tasks = config.get("measure_speed", {}).get("tasks", {}) or {}
    for name in speed_tasks:
        if name not in tasks:
            problems.append(f"measure_speed.tasks.{name}: no such task; tasks: {', '.join(tasks) or 'none'}")
    glue = config.get("glue")
    if glue:
        if "random_full" in glue.get("grid", {}).get("init", []):
            problems.append("glue.grid.init: random_full is for translation and summarization tasks (GLUE "
                            "variants fine-tune with glue.finetune); use random")
        roles = glue.get("grid", {}).get("roles", ["body"])
        try:
            CompressionSpec.from_any(rank=1, roles=roles)
        except LightformerError as e:
            problems.append(f"glue.grid.roles: {e}")
        for stage in ("train", "finetune"):
            from lightformer.glue.train import GlueConfig

            items = glue.get(stage, {}) or {}
            unknown = sorted(set(items) - set(GlueConfig.__dataclass_fields__))
            if unknown:
                problems.append(f"glue.{stage}: unknown keys {unknown}; allowed: {', '.join(GlueConfig.__dataclass_fields__)}")
    return problems
