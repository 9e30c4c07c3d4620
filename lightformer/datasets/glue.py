"""GLUE from the Hub's parquet (nyu-mll/glue): read, check and write each task's train and dev
splits as JSON lines (texts + label). Tokenization belongs to the model being fine-tuned (the
GLUE experiments); the test splits are not prepared, their labels being hidden (-1).
"""
from __future__ import annotations

import json
from pathlib import Path

from lightformer.datasets.glue_tasks import TASKS
from lightformer.errors import LightformerError

DEV_SPLITS = {t: tuple(task.dev) for t, task in TASKS.items()}


def check_task(task: str) -> str:
    if task not in TASKS:
        raise LightformerError(f"unknown GLUE task {task!r}; allowed: {', '.join(TASKS)}")
    return task


def read_split(raw: Path, task: str, split: str) -> dict[str, list]:
    """Columns (the task's texts, label) of one split, labels checked against the task's range."""
    import pyarrow.parquet as pq

    check_task(task)
    shards = sorted((Path(raw) / task).glob(f"{split}-*.parquet"))
    if not shards:
        raise LightformerError(f"{raw}/{task}: no {split}-*.parquet; fetch glue first")
    names = [*TASKS[task].columns, "label"]
    cols = {c: [] for c in names}
    for path in shards:
        try:
            table = pq.read_table(path)
        except Exception as e:
            raise LightformerError(f"{path}: not a readable parquet file ({e}); delete it and fetch again") from None
        missing = set(names) - set(table.column_names)
        if missing:
            raise LightformerError(f"{path}: columns {sorted(missing)} missing for {task} (has {table.column_names})")
        for c in names:
            cols[c] += table.column(c).to_pylist()
    labels = cols["label"]
    if TASKS[task].num_labels == 1:
        bad = sorted({x for x in labels if x is None or not 0.0 <= x <= 5.0})
        allowed = "scores in [0, 5]"
    else:
        bad = sorted({x for x in labels if x not in range(TASKS[task].num_labels)}, key=str)
        allowed = f"class ids 0..{TASKS[task].num_labels - 1}"
    if bad:
        raise LightformerError(f"{task} {split}: unexpected labels {bad[:5]} (expected {allowed}); test splits "
                               f"have hidden labels (-1) and cannot be used for training or scoring")
    if not labels:
        raise LightformerError(f"{task} {split}: empty split")
    return cols


def prepare_glue(raw: Path, out: Path, tasks: tuple[str, ...] = tuple(TASKS), expected: dict | None = None) -> dict:
    counts = {}
    for task in map(check_task, tasks):
        (out / task).mkdir(parents=True, exist_ok=True)
        for split in ("train",) + DEV_SPLITS[task]:
            cols = read_split(raw, task, split)
            keys = list(cols)
            with open(out / task / f"{split}.jsonl", "w") as f:
                for row in zip(*cols.values()):
                    f.write(json.dumps(dict(zip(keys, row))) + "\n")
            counts[f"{task}/{split}"] = len(cols["label"])
    meta = {"dataset": "glue", "tasks": list(tasks), "sentences": counts,
            "columns": {t: list(TASKS[t].columns) for t in tasks}, "num_labels": {t: TASKS[t].num_labels for t in tasks}}
    if expected:  # published dev sizes
        meta["expected"] = expected
        meta["drift"] = {k: counts[k] - v for k, v in expected.items() if k in counts}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return counts | {"drift": meta.get("drift", {})}
