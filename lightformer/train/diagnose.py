"""Why does an initialisation train or not? The first updates of several models under one recipe,
on the same batches in the same order: per update the loss, and per part of the model (embeddings,
attention, FFN, output) the gradient norm, the weight norm and the update-to-weight ratio
||Δθ|| / ||θ||, plus the RMS of the encoder's and decoder's outputs. docs/controls.md reads them.

For a factorised matrix W = AB the optimizer moves A and B, and the product moves by
ΔA·B + A·ΔB: the part's ``product_update_ratio`` is ||ΔW|| / ||W|| of the products themselves, the
quantity comparable with a dense model's update ratio.
"""
from __future__ import annotations

import torch

from lightformer.data.batching import collate, epoch_order, length_buckets
from lightformer.data.indexed import ParallelData
from lightformer.gpu import pick_device
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
        return lambda m, i, o: store.__setitem__(key, (o[0] if isinstance(o, tuple) else o).detach().pow(2).mean().sqrt())
    return [model.encoder.layers[-1].register_forward_hook(hook("encoder_out_rms")),
            model.decoder.layers[-1].register_forward_hook(hook("decoder_out_rms"))]


def _update_row(model, by_part: dict, optimizer, batch, cfg: TrainConfig, update: int) -> dict:
    """One update; the row of what it did (every figure gathered on the device, one host sync)."""
    store: dict = {}
    hooks = _rms_hooks(model, store)
    loss, _ = seq2seq_loss(model, model, batch["src_tokens"], batch["prev_output_tokens"], batch["target"],
                           cfg.label_smoothing, False)
    for h in hooks:
        h.remove()
    loss.div(batch["ntokens"]).backward()
    figures = {f"{part}_grad_norm": torch.stack([p.grad.pow(2).sum() for p in ps if p.grad is not None]).sum().sqrt()
               for part, ps in by_part.items()}
    params = [p for ps in by_part.values() for p in ps]
    if cfg.clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm)
    before = _products(model)
    for g in optimizer.param_groups:
        g["lr"] = inverse_sqrt_lr(update, cfg.lr, cfg.warmup_updates, cfg.warmup_init_lr)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    after = _products(model)
    for part in before:
        figures[f"{part}_weight_norm"] = before[part].norm()
        figures[f"{part}_product_update_ratio"] = (after[part] - before[part]).norm() / before[part].norm()
    figures = dict(zip(figures, torch.stack(list(figures.values())).tolist()))  # the one sync
    rms = dict(zip(store, torch.stack(list(store.values())).tolist()))
    loss_per_token = float(loss.detach()) / batch["ntokens"]  # nats per token, as curve.csv
    return {"update": update, "loss": loss_per_token, **rms} | {k: figures[k] for k in sorted(figures, key=_order)}


def _order(key: str) -> tuple:
    part, _, what = key.partition("_")
    return PARTS.index(part) if part in PARTS else len(PARTS), what


def diagnose(models: dict, data: ParallelData, cfg: TrainConfig, updates: int, progress=None) -> list[dict]:
    """Rows (model, update, ...) for each model trained ``updates`` updates of ``cfg``'s recipe on the
    same batches (one batch per update, in the recipe's epoch order), from its given initial weights."""
    device = pick_device(cfg.device)
    src, tgt = data.split("train")
    batches = length_buckets(src.sizes, tgt.sizes, cfg.max_tokens)
    order = epoch_order(len(batches), cfg.seed, 1)
    rows = []
    for name, model in models.items():
        torch.manual_seed(cfg.seed)
        model.to(device).train()
        by_part: dict[str, list] = {}
        for n, p in model.named_parameters():  # each shared tensor once, under its first name
            by_part.setdefault(part_of(n), []).append(p)
        optimizer = torch.optim.AdamW([p for ps in by_part.values() for p in ps], lr=cfg.lr, betas=cfg.betas,
                                      eps=cfg.adam_eps, weight_decay=cfg.weight_decay)
        for u in range(1, updates + 1):
            ids = batches[order[(u - 1) % len(order)]]
            batch = {k: v.to(device) if torch.is_tensor(v) else v
                     for k, v in collate([src[i] for i in ids], [tgt[i] for i in ids]).items()}
            rows.append({"model": name} | _update_row(model, by_part, optimizer, batch, cfg, u))
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
