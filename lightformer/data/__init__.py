"""What training and decoding read: dictionaries, prepared (memory-mapped) splits,
token-bucketed batching and the synthetic tasks. Getting a dataset (sources, downloads, checks,
preparation) is :mod:`lightformer.datasets`.

Every dataset lives under a data root as ``<root>/<dataset>/raw`` (fetched files and their
manifest) and ``<root>/<dataset>/prepared`` (what training reads)."""
from __future__ import annotations

from pathlib import Path


def raw_dir(root, dataset: str) -> Path:
    return Path(root) / dataset / "raw"


def prepared_dir(root, dataset: str) -> Path:
    return Path(root) / dataset / "prepared"
