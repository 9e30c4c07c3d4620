"""Pinned sources (docs/reference.md §5). A mirror holds the same files as ``<mirror>/<dataset>/<name>``.

sha256 = None means no official checksum exists: the first fetch records it in the dataset's
manifest and every later fetch or verify checks against that (trust on first use).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lightformer.datasets.glue_tasks import TASKS as GLUE_TASK_TABLE
from lightformer.datasets.hub import HubSource, RemoteFile
from lightformer.errors import LightformerError

__all__ = ["DATASETS", "Dataset", "RemoteFile", "get_dataset"]


@dataclass(frozen=True)
class Dataset:
    name: str
    files: tuple[RemoteFile, ...]
    notes: str = ""
    expected: dict = field(default_factory=dict)  # split sizes the real data gives
    hub: HubSource | None = None  # files listed by the Hub at a commit (lightformer.datasets.hub)


IWSLT14 = Dataset(
    "iwslt14",
    (RemoteFile("de-en.tgz", "http://dl.fbaipublicfiles.com/fairseq/data/iwslt14/de-en.tgz"),),
    notes="fairseq's mirror since Jan 2021 (the WIT3 URL 404s); no official checksum: trust on first use",
    expected={"train": 160_239, "valid": 7_283, "test": 6_750},
)

WMT14 = Dataset(
    "wmt14",
    (
        RemoteFile("training-parallel-europarl-v7.tgz", "http://statmt.org/wmt13/training-parallel-europarl-v7.tgz",
                   "0224c7c710c8a063dfd893b0cc0830202d61f4c75c17eb8e31836103d27d96e7", 657_632_379),
        RemoteFile("training-parallel-commoncrawl.tgz", "http://statmt.org/wmt13/training-parallel-commoncrawl.tgz",
                   "c7a74e2ea01ac6c920123108627e35278d4ccb5701e15428ffa34de86fa3a9e5", 918_311_367),
        RemoteFile("training-parallel-nc-v9.tgz", "http://statmt.org/wmt14/training-parallel-nc-v9.tgz",
                   "cb8953f292298e6877ae433c98912b927cb0766b303f4540512ddd286c748485", 80_418_416),
        RemoteFile("dev.tgz", "http://data.statmt.org/wmt19/translation-task/dev.tgz",
                   "7a7deccf82ebb05ba508dba5eb21356492224e8f630ec4f992132b029b4b25e7", 38_654_961),
    ),
    notes="fairseq prepare-wmt14en2de.sh --icml17; dev.tgz holds newstest2013 and newstest2014 (full, 3,003)",
    expected={"test": 3_003},
)

# Hub datasets: no commit could be looked up when this was written (no network), so the revision
# is the branch, resolved on the first fetch and recorded in the manifest (trust on first use);
# pin a commit with `--revision SHA` or by editing these lines once known.
CNNDM = Dataset(
    "cnndm",
    (),
    notes="abisee/cnn_dailymail config 3.0.0 (cased, non-anonymized; highlights joined by newlines)",
    expected={"train": 287_113, "valid": 13_368, "test": 11_490},
    hub=HubSource("abisee/cnn_dailymail", "main", ("3.0.0",)),
)

GLUE_TASKS = tuple(GLUE_TASK_TABLE)
GLUE = Dataset(
    "glue",
    (),
    notes="nyu-mll/glue parquet per task; test labels are hidden (-1): train and dev only",
    # dev sizes (docs/reference.md §5); MNLI: matched / mismatched
    expected={f"{t}/{split}": n for t, task in GLUE_TASK_TABLE.items() for split, n in task.dev.items()},
    hub=HubSource("nyu-mll/glue", "main", GLUE_TASKS),
)

WMT14_HUB = Dataset(
    "wmt14_hub",
    (),
    notes="the Hub's wmt/wmt14 de-en parquet, an alternative to the statmt archives (same recipe after reading)",
    expected={"test": 3_003},  # train 4,508,785 and valid 3,000 before cleaning (docs/reference.md §5)
    hub=HubSource("wmt/wmt14", "main", ("de-en",)),
)

# Models fetched the same way (pinned, checksummed, mirror-able): the GLUE baseline.
BERT_BASE_UNCASED = Dataset(
    "bert_base_uncased",
    (),
    notes="google-bert/bert-base-uncased: config, WordPiece vocabulary and safetensors weights",
    hub=HubSource("google-bert/bert-base-uncased", "main", (),
                  ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "model.safetensors"),
                  kind="models"),
)

DATASETS = {d.name: d for d in (IWSLT14, WMT14, WMT14_HUB, CNNDM, GLUE, BERT_BASE_UNCASED)}


def get_dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise LightformerError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    return DATASETS[name]
