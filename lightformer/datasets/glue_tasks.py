"""The GLUE tasks, once: each task's text columns (in the Hub's order), label type, number of
labels, dev metrics, dev splits and their published sizes (docs/reference.md §5). Data
preparation, metrics, the dataset pins and the workflow all read this table."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GlueTask:
    columns: tuple[str, ...]  # text columns, in the Hub's order
    num_labels: int  # 1 = regression (STS-B scores in [0, 5])
    metrics: tuple[str, ...]  # dev metrics, x100
    dev: dict  # dev split -> published size

    @property
    def label_type(self) -> str:
        return "float32" if self.num_labels == 1 else "int64"


TASKS = {
    "cola": GlueTask(("sentence",), 2, ("matthews",), {"validation": 1_043}),
    "sst2": GlueTask(("sentence",), 2, ("accuracy",), {"validation": 872}),
    "mrpc": GlueTask(("sentence1", "sentence2"), 2, ("accuracy", "f1"), {"validation": 408}),
    "qqp": GlueTask(("question1", "question2"), 2, ("accuracy", "f1"), {"validation": 40_430}),
    "stsb": GlueTask(("sentence1", "sentence2"), 1, ("pearson", "spearman"), {"validation": 1_500}),
    "mnli": GlueTask(("premise", "hypothesis"), 3, ("accuracy",),
                     {"validation_matched": 9_815, "validation_mismatched": 9_832}),
    "qnli": GlueTask(("question", "sentence"), 2, ("accuracy",), {"validation": 5_463}),
    "rte": GlueTask(("sentence1", "sentence2"), 2, ("accuracy",), {"validation": 277}),
    "wnli": GlueTask(("sentence1", "sentence2"), 2, ("accuracy",), {"validation": 71}),
}


def dev_split_name(task: str, split: str) -> str:
    """How a dev split is named in scores: the task, or for MNLI ``mnli_matched``/``mnli_mismatched``."""
    return task if len(TASKS[task].dev) == 1 else f"{task}_{split.removeprefix('validation_')}"


# metrics by scored name: every task, and each dev split of a task with several
SCORED = {name: TASKS[t].metrics for t in TASKS for name in {t, *(dev_split_name(t, s) for s in TASKS[t].dev)}}
