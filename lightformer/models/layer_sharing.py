"""Cross-layer parameter sharing of a dense Transformer, without factorisation: the light-weight
baselines that isolate what low rank and SVD initialisation add on top of sharing
(docs/reference.md §9).

A pattern maps each layer position to the layer that owns its weights:

- ``all``: one layer reused at every position (Universal Transformer, ALBERT);
- ``sandwich``: the first and last layers own theirs, every middle layer shares one (Subformer,
  Reid et al., 2021);
- ``cycle_rev``: M distinct layers cycled 1..M up the lower positions and reversed M..1 in the top
  M (Takase & Kiyono, 2021, "Cycle (Rev)"); M defaults to half the layers.

Attention and FFN weights are shared; LayerNorms only with ``share_layer_norms`` (Subformer keeps
them per layer, Takase & Kiyono share them). Positions keep their own modules, so decoding caches
and per-position code are unchanged; the tied weights are one Parameter, counted and stored once.
"""
from __future__ import annotations

import torch.nn as nn

from lightformer.config import LAYER_SHARING as PATTERNS


def layer_owners(n: int, pattern: str, unique: int = 0) -> list[int]:
    """Position -> the position whose weights it uses."""
    if pattern == "none":
        return list(range(n))
    if pattern == "all":
        return [0] * n
    if pattern == "sandwich":
        return [0] + [1] * (n - 2) + [n - 1] if n > 2 else list(range(n))
    if pattern == "cycle_rev":
        m = unique or max(1, n // 2)
        return [i % m for i in range(n - m)] + list(range(m - 1, -1, -1))
    raise ValueError(f"unknown layer sharing pattern {pattern!r}; allowed: {', '.join(PATTERNS)}")


def tie_layers(layers: nn.ModuleList, owners: list[int], share_layer_norms: bool) -> None:
    """Make each position use its owner's weight modules (and LayerNorms if asked)."""
    for i, j in enumerate(owners):
        if i == j:
            continue
        for name, child in layers[j].named_children():
            if share_layer_norms or not isinstance(child, nn.LayerNorm):
                setattr(layers[i], name, child)
