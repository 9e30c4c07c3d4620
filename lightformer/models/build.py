"""A dense Transformer from a preset name: the one constructor the CLI, training and benchmarks share."""
from __future__ import annotations

import torch

from lightformer.config import model_config
from lightformer.models.transformer import Transformer


def build_model(arch: str, src_vocab: int, tgt_vocab: int, seed: int | None = None, **overrides) -> Transformer:
    """A dense Transformer from a preset name (see PRESETS) plus ModelConfig overrides.

    ``seed`` makes the initialisation reproducible without touching the global RNG.
    """
    cfg = model_config(arch, src_vocab, tgt_vocab, **overrides)
    if seed is None:
        return Transformer(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Transformer(cfg)
