"""Parameter accounting by role; a shared tensor is counted once, wherever it is used.

Roles follow fairseq's module names: ``embedding`` = token tables (tied ones once),
``output_projection`` = an untied output matrix, ``body`` = everything else (the number
docs/reference.md §3 calls body: 31,543,296 for transformer_iwslt_de_en).
"""
from __future__ import annotations

import torch.nn as nn

from lightformer.models.lowrank import FactorizedEmbedding, LowRankLinear


def count_parameters(model: nn.Module) -> dict[str, int]:
    counts = dict.fromkeys(("total", "embedding", "output_projection", "body", "encoder", "decoder",
                            "attention", "ffn", "layer_norm", "factorized"), 0)
    factor_ids = {id(p) for m in model.modules() if isinstance(m, (LowRankLinear, FactorizedEmbedding))
                  for p in (m.A, m.B)}
    # named_parameters() yields each Parameter object once, under its first name
    for name, p in model.named_parameters():
        n = p.numel()
        counts["total"] += n
        if id(p) in factor_ids:
            counts["factorized"] += n
        if ".embed_tokens." in f".{name}":
            counts["embedding"] += n
            continue
        if name.startswith("decoder.output_projection."):
            counts["output_projection"] += n
            continue
        counts["body"] += n
        if name.startswith("encoder."):
            counts["encoder"] += n
        elif name.startswith("decoder."):
            counts["decoder"] += n
        if "_attn." in name:
            counts["attention"] += n
        elif ".fc1." in name or ".fc2." in name:
            counts["ffn"] += n
        elif "layer_norm" in name:
            counts["layer_norm"] += n
    return counts
