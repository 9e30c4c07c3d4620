"""Data: sources, downloads and the fetch/verify/mirror/prepare pipeline, text processing,
dictionaries, prepared (memory-mapped) splits, token-bucketed batching, synthetic tasks.

Every dataset lives under a data root as ``<root>/<dataset>/raw`` (fetched files and their
manifest) and ``<root>/<dataset>/prepared`` (what training reads)."""
from __future__ import annotations

from pathlib import Path


def raw_dir(root, dataset: str) -> Path:
    return Path(root) / dataset / "raw"


def prepared_dir(root, dataset: str) -> Path:
    return Path(root) / dataset / "prepared"
