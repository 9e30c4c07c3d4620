"""GLUE dev metrics per task (docs/reference.md §5): accuracy, F1, Matthews, Pearson/Spearman."""
from __future__ import annotations

import numpy as np
from scipy import stats

from lightformer.datasets.glue_tasks import SCORED
from lightformer.errors import LightformerError


def _binary_f1(pred: np.ndarray, gold: np.ndarray) -> float:
    tp = float(((pred == 1) & (gold == 1)).sum())
    fp = float(((pred == 1) & (gold == 0)).sum())
    fn = float(((pred == 0) & (gold == 1)).sum())
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def _matthews(pred: np.ndarray, gold: np.ndarray) -> float:
    tp = float(((pred == 1) & (gold == 1)).sum())
    tn = float(((pred == 0) & (gold == 0)).sum())
    fp = float(((pred == 1) & (gold == 0)).sum())
    fn = float(((pred == 0) & (gold == 1)).sum())
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 0.0 if denom == 0 else (tp * tn - fp * fn) / denom


def glue_metrics(task: str, predictions, labels) -> dict:
    if task not in SCORED:
        raise LightformerError(f"GLUE task {task!r} is unknown; allowed: {', '.join(SCORED)}")
    pred, gold = np.asarray(predictions), np.asarray(labels)
    if pred.shape != gold.shape or pred.size == 0:
        raise LightformerError(f"need as many predictions as labels, got {pred.size} and {gold.size}")
    if task != "stsb" and (gold < 0).any():
        raise LightformerError("labels contain -1: GLUE test labels are hidden; score the dev split")
    out = {}
    for m in SCORED[task]:
        if m == "accuracy":
            out[m] = 100 * float((pred == gold).mean())
        elif m == "f1":
            out[m] = 100 * _binary_f1(pred, gold)
        elif m == "matthews":
            out[m] = 100 * _matthews(pred, gold)
        elif m == "pearson":
            out[m] = 100 * float(stats.pearsonr(pred, gold)[0])
        elif m == "spearman":
            out[m] = 100 * float(stats.spearmanr(pred, gold)[0])
    return {"metric": f"glue_{task}", "scores": out, "label": f"GLUE {task} dev: {', '.join(SCORED[task])} x100"}


def task_score(task: str, scores: dict) -> float:
    """One number per task: the mean of its metrics (MRPC/QQP: F1 and accuracy; STS-B: Pearson
    and Spearman), as the GLUE leaderboard's average uses them."""
    return float(np.mean(list(scores.values())))


def glue_average(per_task: dict[str, dict], exclude=()) -> float:
    """The GLUE average over the tasks given: each task's mean metric, MNLI as the mean of
    matched and mismatched; ``exclude`` drops tasks (BERT-style reports drop WNLI)."""
    values = {}
    for name, scores in per_task.items():
        task = "mnli" if name.startswith("mnli") else name
        if task not in exclude:
            values.setdefault(task, []).append(task_score(name, scores))
    if not values:
        raise LightformerError("no GLUE task scores to average")
    return float(np.mean([np.mean(v) for v in values.values()]))
