"""Light-weight controls: dense models trained from scratch with the baseline's recipe and budget,
at a LightFormer's size (``dense_small``) or with cross-layer sharing alone (``share_*``), so a
table can say what low rank and SVD initialisation add beyond a smaller or shared model
(docs/reference.md §9, docs/controls.md).

``dense_small`` at ratio r: the baseline's depth, head counts and FFN-to-width ratio, with the
width d (a multiple of every head count and of 8) whose total parameter count, embeddings
included, is closest to the baseline's / r. Scaling width and FFN together keeps the shape of the
model the paper compresses; fewer layers would change its depth as well. The count without
embeddings (HAT's and Lite Transformer's convention) is reported beside it.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from lightformer.compress.count import count_parameters
from lightformer.config import ModelConfig
from lightformer.errors import LightformerError
from lightformer.models.build import shapes_only
from lightformer.models.transformer import Transformer

SHARING = {"share_all": "all", "share_sandwich": "sandwich", "share_cycle_rev": "cycle_rev"}
CONTROLS = ("dense_small", *SHARING)


def counts(cfg: ModelConfig) -> dict:
    """Parameter counts by role of the model ``cfg`` builds (on the meta device: no memory, no time)."""
    with shapes_only():
        return count_parameters(Transformer(cfg))


def without_embeddings(c: dict) -> int:
    """The count light-weight papers mostly report: no embedding table, no output projection."""
    return c["total"] - c["embedding"] - c.get("output_projection", 0)


def width_step(cfg: ModelConfig) -> int:
    return math.lcm(cfg.encoder_heads, cfg.decoder_heads, 8)


def matched_dense(cfg: ModelConfig, ratio: float) -> ModelConfig:
    """``cfg`` narrowed to ~1/ratio of its parameters (width and FFN scaled together)."""
    if not ratio > 1:
        raise LightformerError(f"dense_small needs a ratio above 1, got {ratio}")
    target = counts(cfg)["total"] / ratio
    step = width_step(cfg)
    best = None
    for d in range(step, cfg.embed_dim + 1, step):
        scale = d / cfg.embed_dim
        small = dataclasses.replace(cfg, embed_dim=d, encoder_ffn_dim=max(1, round(cfg.encoder_ffn_dim * scale)),
                                    decoder_ffn_dim=max(1, round(cfg.decoder_ffn_dim * scale)))
        gap = abs(counts(small)["total"] - target)
        if best is None or gap < best[0]:
            best = (gap, small)
    return best[1]


def control_config(cfg: ModelConfig, control: str, ratio: float | None = None) -> ModelConfig:
    """The architecture of a control, from the baseline's."""
    if control == "dense_small":
        if ratio is None:
            raise LightformerError("dense_small needs --ratio (the LightFormer size it matches)")
        return matched_dense(cfg, ratio)
    if control in SHARING:
        if ratio is not None:
            raise LightformerError(f"{control} takes no ratio: sharing alone fixes its size ({control} shares "
                                   f"{SHARING[control]!r} layers); --ratio is for dense_small")
        return dataclasses.replace(cfg, layer_sharing=SHARING[control])
    raise LightformerError(f"unknown control {control!r}; allowed: {', '.join(CONTROLS)}")


def control_record(control: str, base: ModelConfig, cfg: ModelConfig, ratio: float | None) -> dict:
    """What a control is, for its outputs: reports group by these fields, never by a path."""
    b, c = counts(base), counts(cfg)
    return {"control": control, "ratio_target": ratio, "embed_dim": cfg.embed_dim,
            "ffn_dim": [cfg.encoder_ffn_dim, cfg.decoder_ffn_dim], "layer_sharing": cfg.layer_sharing,
            "share_layer_norms": cfg.share_layer_norms, "params": c["total"],
            "params_without_embeddings": without_embeddings(c), "baseline_params": b["total"],
            "baseline_params_without_embeddings": without_embeddings(b), "ratio": b["total"] / c["total"]}
