"""A dense Transformer from a preset name: the one constructor the CLI, training and benchmarks share."""
from __future__ import annotations

import contextlib

import torch
from torch.overrides import TorchFunctionMode

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


class _NoNormalFill(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.init.normal_ or func is torch.Tensor.normal_:
            return args[0] if args else kwargs.get("tensor", kwargs.get("self"))
        return func(*args, **kwargs)


@contextlib.contextmanager
def shapes_only():
    """Modules built on the meta device, for their shapes and counts. Normal fills are skipped:
    on meta tensors they run torch's Python reference kernel, whose first call imports TorchDynamo,
    0.8 s of every process that checks a checkpoint's shapes (most of a small job's start-up)."""
    with torch.device("meta"), _NoNormalFill():
        yield
