"""What a workflow config costs in device-hours (GPU-hours on a GPU), from measured training
throughput (``lightformer bench train`` rows) and each training rule's token budget.

Per task: the baseline (the train: recipe's updates) and every fine-tuned variant (finetune:'s
updates; variants of budget full train for the baseline's, lightformer/grid.py), once per seed. Target tokens per update
come from the measured batches (at the measured max_tokens, scaled to the recipe's max_tokens x
update_freq); seconds from the measured tokens/s of the same architecture, the dense row for
baselines and the LightFormer row for variants. Not counted: validation, compression, decoding,
speed runs and GLUE (the note of every row says so).
"""
from __future__ import annotations

from lightformer import grid
from lightformer.config import PRESETS, model_config
from lightformer.errors import LightformerError
from lightformer.train.recipes import load_train_config

NOT_COUNTED = "training steps only: validation, compression, decoding, speed and GLUE not counted"


def arch_of(cfg) -> str:
    """The preset a model's dimensions match, or 'custom'."""
    dims = ("embed_dim", "encoder_layers", "decoder_layers", "encoder_ffn_dim", "decoder_ffn_dim", "encoder_heads",
            "decoder_heads", "normalize_before")
    for name in PRESETS:
        preset = model_config(name, cfg.src_vocab, cfg.tgt_vocab)
        if all(getattr(preset, d) == getattr(cfg, d) for d in dims):
            return name
    return "custom"


BENCH_NUMBERS = {"target_tokens": float, "steps": int, "max_tokens": int, "tokens_per_s": float}


def read_bench_csv(path: str) -> list[dict]:
    """``lightformer bench train`` rows, each number checked where it enters (finite, positive), with
    the file, line and field named: a negative or nan rate would price a grid at negative hours."""
    import csv
    import math

    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = sorted({"arch", "engine", "kind", *BENCH_NUMBERS} - set(reader.fieldnames or ()))
        if missing:
            raise LightformerError(f"{path}: not a `lightformer bench train` CSV (no column {', '.join(missing)})")
        rows = list(reader)
    for line, row in enumerate(rows, 2):
        if row.get("engine") != "lightformer":
            continue
        for field, kind in BENCH_NUMBERS.items():
            try:
                value = kind(row[field])
            except (TypeError, ValueError):
                raise LightformerError(f"{path}:{line}: {field} {row[field]!r} is not a number") from None
            if not (math.isfinite(value) and value > 0):
                raise LightformerError(f"{path}:{line}: {field} {row[field]!r} must be finite and positive")
    return rows


def _rate(rows: list[dict], arch: str, kind: str, lengths: str) -> dict:
    """The measured row of our engine for an architecture and kind ('dense' for baselines,
    'lightformer' for variants), preferring one measured with the task's sentence lengths, then
    one measured as ``lightformer train`` runs by default (eager; fused loss on GPU, dense on CPU)."""
    found = [r for r in rows if r["arch"] == arch and r["engine"] == "lightformer" and r["kind"] == kind]
    if not found:
        have = sorted({(r["arch"], r["kind"]) for r in rows if r["engine"] == "lightformer"})
        raise LightformerError(f"no measured {kind} row for {arch}; the bench CSV has {have}: run "
                               f"`lightformer bench train --paper-size TASK` for it")
    def usual(r: dict) -> bool:
        loss = "fused" if r.get("device") == "cuda" else "dense"
        return str(r.get("compile")) != "True" and r.get("loss", loss) in (loss, "")

    return min(found, key=lambda r: (r["lengths"] != lengths, not usual(r)))


def _hours(rate: dict, recipe_max_tokens: int, update_freq: int, updates: int) -> tuple[float, float]:
    """(target tokens, hours) of ``updates`` updates at the recipe's batch."""
    per_batch = float(rate["target_tokens"]) / int(rate["steps"]) * recipe_max_tokens / int(rate["max_tokens"])
    tokens = per_batch * update_freq * updates
    return tokens, tokens / float(rate["tokens_per_s"]) / 3600


def _check_shape(config) -> None:
    """What pricing reads from a workflow config, refused by name when it is not there."""
    if not isinstance(config, dict) or not isinstance(config.get("tasks", {}), dict):
        raise LightformerError("the workflow config must be a mapping with a `tasks:` mapping")
    for name, task in config.get("tasks", {}).items():
        stages = ("train", "finetune") if isinstance(task, dict) and (task.get("grid") or task.get("ablation")) \
            else ("train",)
        for stage in stages:
            run = task.get(stage) if isinstance(task, dict) else None
            if not isinstance(run, dict) or not isinstance(run.get("recipe"), str):
                raise LightformerError(f"tasks.{name}.{stage}.recipe is missing: a config that `snakemake -n` accepts "
                                       f"has it")
            if not isinstance(run.get("overrides") or {}, dict):
                raise LightformerError(f"tasks.{name}.{stage}.overrides must be a mapping of TrainConfig keys")
        for block in grid.BLOCKS:
            grid_block = task.get(block)
            if grid_block is not None and not (isinstance(grid_block, dict) and all(
                    isinstance(grid_block.get(axis), list) for axis in ("ratio", "share_layers", "init"))):
                raise LightformerError(f"tasks.{name}.{block} needs lists ratio, share_layers and init")


def plan_cost(config: dict, rows: list[dict]) -> list[dict]:
    """One row per (task, stage): runs, updates per run, target tokens, device-hours; then the total."""
    _check_shape(config)
    out = []
    for name, task in config.get("tasks", {}).items():
        base = load_train_config(task["train"]["recipe"], None,
                                 [f"{k}={v}" for k, v in (task["train"].get("overrides") or {}).items()])
        arch = base.arch if base.arch in PRESETS else "custom"
        seeds = len(config.get("seeds", [1]))
        stages = [("baseline", "train", "dense", seeds)]
        variants = list(grid.task_variants(task).values())
        full = sum(v.budget == "full" for v in variants)
        stages += [("fine-tune", "finetune", "lightformer", seeds * (len(variants) - full)),
                   ("variants on the baseline's budget", "train", "lightformer", seeds * full),
                   # dense_small and shared-layer controls: priced at the dense rate (an upper bound:
                   # they are narrower, or as deep as the baseline with the same FLOPs per token)
                   ("light-weight controls", "train", "dense", seeds * len(grid.task_controls(task)))]
        for label, stage, kind, runs in stages:
            if not runs:
                continue
            run = task[stage]
            cfg = load_train_config(run["recipe"], None, [f"{k}={v}" for k, v in (run.get("overrides") or {}).items()])
            if not cfg.max_updates:
                raise LightformerError(f"tasks.{name}.{stage}: no max_updates, so its cost is unbounded")
            rate = _rate(rows, arch, kind, task["dataset"])
            tokens, hours = _hours(rate, cfg.max_tokens, cfg.effective_update_freq(), cfg.max_updates)
            out.append({"task": name, "stage": label, "arch": arch, "runs": runs, "updates": cfg.max_updates,
                        "tokens_per_update": round(tokens / cfg.max_updates), "device_hours": hours * runs,
                        "measured_tokens_per_s": float(rate["tokens_per_s"]), "device": rate["device_name"],
                        "dtype": rate["dtype"], "note": NOT_COUNTED + (
                            "" if rate["lengths"] == task["dataset"] else
                            f"; timed on {rate['lengths']}-like sentence lengths")})
    if out:
        out.append({"task": "total", "stage": "", "arch": "", "runs": sum(r["runs"] for r in out), "updates": "",
                    "tokens_per_update": "", "device_hours": sum(r["device_hours"] for r in out),
                    "measured_tokens_per_s": "", "device": out[0]["device"], "dtype": out[0]["dtype"],
                    "note": NOT_COUNTED})
    return out
