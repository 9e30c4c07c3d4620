"""Why does an initialisation train or not? The first updates of several models under one recipe,
on the same batches in the same order: per update the loss, and per part of the model (embeddings,
attention, FFN, output) the gradient norm, the weight norm and the update-to-weight ratio
||Δθ|| / ||θ||, plus the RMS of the encoder's and decoder's outputs. docs/controls.md reads them.

For a factorised matrix W = AB the optimizer moves A and B, and the product moves by
ΔA·B + A·ΔB: the part's ``product_update_ratio`` is ||ΔW|| / ||W|| of the products themselves, the
quantity comparable with a dense model's update ratio.
"""
from __future__ import annotations

import math

import torch

from lightformer.data.batching import collate, epoch_order, length_buckets
from lightformer.data.indexed import ParallelData
from lightformer.models.losses import seq2seq_loss
from lightformer.models.lowrank import FactorizedEmbedding, LowRankLinear
from lightformer.train.recipes import TrainConfig
from lightformer.train.schedule import inverse_sqrt_lr

PARTS = ("embedding", "attention", "ffn", "output", "layer_norm")


def part_of(name: str) -> str:
    if name.startswith("decoder.output_projection"):
        return "output"
    if "embed_tokens" in name:
        return "embedding"
    if "_attn" in name:
        return "attention"
    if ".fc1" in name or ".fc2" in name:
        return "ffn"
    return "layer_norm"


def _products(model) -> dict[str, torch.Tensor]:
    """Each weight matrix as the model applies it (A @ B for factorised ones), by part."""
    out: dict[str, list[torch.Tensor]] = {p: [] for p in PARTS}
    for name, m in model.named_modules():
        if isinstance(m, (LowRankLinear, FactorizedEmbedding)):
            out[part_of(name + ".")].append((m.A @ m.B).detach().flatten())
        elif isinstance(m, (torch.nn.Linear, torch.nn.Embedding)):
            out[part_of(name + ".")].append(m.weight.detach().flatten())
    return {p: torch.cat(v) for p, v in out.items() if v}


def _rms_hooks(model, store: dict) -> list:
    def hook(key):
        return lambda m, i, o: store.__setitem__(key, float(o[0].detach().pow(2).mean().sqrt()) if isinstance(o, tuple)
                                                 else float(o.detach().pow(2).mean().sqrt()))
    return [model.encoder.layers[-1].register_forward_hook(hook("encoder_out_rms")),
            model.decoder.layers[-1].register_forward_hook(hook("decoder_out_rms"))]


def _update_row(model, params, optimizer, batch, cfg: TrainConfig, update: int) -> dict:
    """One update; the row of what it did."""
    store: dict = {}
    hooks = _rms_hooks(model, store)
    loss, _ = seq2seq_loss(model, model, batch["src_tokens"], batch["prev_output_tokens"], batch["target"],
                           cfg.label_smoothing, False)
    for h in hooks:
        h.remove()
    loss.div(batch["ntokens"]).backward()
    names = {id(p): n for n, p in model.named_parameters()}
    grad = {p: 0.0 for p in PARTS}
    for p in params:
        if p.grad is not None:
            grad[part_of(names[id(p)])] += float(p.grad.pow(2).sum())
    if cfg.clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm)
    before = _products(model)
    for g in optimizer.param_groups:
        g["lr"] = inverse_sqrt_lr(update, cfg.lr, cfg.warmup_updates, cfg.warmup_init_lr)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    after = _products(model)
    row = {"update": update, "loss": float(loss.detach()) / batch["ntokens"], **store}  # nats per token, as curve.csv
    for part in before:
        row[f"{part}_grad_norm"] = math.sqrt(grad[part])
        row[f"{part}_weight_norm"] = float(before[part].norm())
        row[f"{part}_product_update_ratio"] = float((after[part] - before[part]).norm() / before[part].norm())
    return row


def diagnose(models: dict, data: ParallelData, cfg: TrainConfig, updates: int, progress=None) -> list[dict]:
    """Rows (model, update, ...) for each model trained ``updates`` updates of ``cfg``'s recipe on the
    same batches (one batch per update, in the recipe's epoch order), from its given initial weights."""
    src, tgt = data.split("train")
    batches = length_buckets(src.sizes, tgt.sizes, cfg.max_tokens)
    order = epoch_order(len(batches), cfg.seed, 1)
    rows = []
    for name, model in models.items():
        torch.manual_seed(cfg.seed)
        model.train()
        params = list(model.parameters())
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.adam_eps,
                                      weight_decay=cfg.weight_decay)
        for u in range(1, updates + 1):
            ids = batches[order[(u - 1) % len(order)]]
            batch = collate([src[i] for i in ids], [tgt[i] for i in ids])
            rows.append({"model": name} | _update_row(model, params, optimizer, batch, cfg, u))
            if progress:
                progress(name, u, rows[-1]["loss"])
    return rows


def initial_models(cfg: TrainConfig, data: ParallelData, ratio: float, inits: list[str]) -> dict:
    """``dense`` (the recipe's model, freshly initialised) and, per init, the LightFormer at ``ratio``
    built from that same fresh model (``svd`` of an untrained model is ``random_svd``; a trained parent
    is not needed: the question is how factors train from scratch)."""
    from lightformer.compress.transfer import compress
    from lightformer.models.build import build_model

    dense = build_model(cfg.arch, len(data.src_dict), len(data.tgt_dict), seed=cfg.seed, **cfg.model)
    out = {}
    for init in inits:
        if init == "dense":
            out["dense"] = build_model(cfg.arch, len(data.src_dict), len(data.tgt_dict), seed=cfg.seed, **cfg.model)
        else:
            out[f"{init}_r{ratio:g}"] = compress(dense, ratio=ratio, init=init, seed=cfg.seed)
    return out
