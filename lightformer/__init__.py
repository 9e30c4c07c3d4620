"""LightFormer reproduction harness: a fairseq-faithful Transformer, SVD-based weight transfer
with parameter sharing, exact parameter accounting, and checkpoints that carry their plan."""
from __future__ import annotations

import torch

from lightformer.checkpoint import load_checkpoint, save_checkpoint
from lightformer.compress import CompressionSpec, compress, count_parameters
from lightformer.config import PRESETS, ModelConfig, model_config
from lightformer.errors import LightformerError
from lightformer.models import Transformer
from lightformer.version import __version__


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


__all__ = ["CompressionSpec", "LightformerError", "ModelConfig", "PRESETS", "Transformer", "build_model",
           "compress", "count_parameters", "load_checkpoint", "model_config", "save_checkpoint", "__version__"]
