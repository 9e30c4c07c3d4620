"""Calibration statistics for data-aware transfer: what each factorised matrix sees on real
training batches, gathered in float64 by forward hooks (and one backward pass per batch for the
Fisher weights). Everything here is deterministic for a seed: the batches are a fixed slice of a
seeded order, dropout is off, and sums run in float64 on CPU.

Per member matrix (module path) it keeps:
* ``gram``: Σ x xᵀ over its non-pad input positions (linear uses; the output projection's
  input is the decoder's last hidden state, also when it is tied to an embedding);
* ``abs_sum``/``rows``: Σ |x| per input channel and the row count (ASVD);
* ``tokens``: lookups per token id (embedding uses: the "input" of a lookup is a one-hot);
* ``fisher``: Σ over batches of the squared loss gradient, summed per output row (FWSVD).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from lightformer.data.batching import collate, epoch_order, length_buckets
from lightformer.data.indexed import ParallelData
from lightformer.errors import LightformerError
from lightformer.models.losses import label_smoothed_nll_loss

OUT_PROJ = "decoder.output_layer"  # key of the output projection's input statistics


@dataclass
class Calibration:
    gram: dict[str, torch.Tensor] = field(default_factory=dict)
    abs_sum: dict[str, torch.Tensor] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, torch.Tensor] = field(default_factory=dict)
    fisher: dict[str, torch.Tensor] = field(default_factory=dict)
    batches: int = 0
    target_tokens: int = 0


def calibration_batches(data: ParallelData, split: str, n_batches: int, max_tokens: int, seed: int) -> list[dict]:
    """The first ``n_batches`` token-bucketed batches of ``split`` in a seeded order."""
    if n_batches < 1:
        raise LightformerError(f"calib_batches={n_batches} is invalid: expected >= 1")
    src, tgt = data.split(split)
    buckets = length_buckets(src.sizes, tgt.sizes, max_tokens)
    order = epoch_order(len(buckets), seed, 0)[:n_batches]
    return [collate([src[i] for i in buckets[j]], [tgt[i] for i in buckets[j]]) for j in order]


def _source_side(path: str) -> bool:
    """Inputs of encoder modules and of cross-attention keys/values are source positions."""
    return path.startswith("encoder.") or path.endswith(("encoder_attn.k_proj", "encoder_attn.v_proj"))


def _add(store: dict, key: str, value: torch.Tensor) -> None:
    store[key] = store[key] + value if key in store else value


@contextlib.contextmanager
def _output_layer_probe(model, record):
    """The decoder's output projection is a method (tied to an embedding or not): wrap it."""
    decoder = model.decoder
    original = decoder.output_layer

    def probe(x):
        record(OUT_PROJ, x, source=False)
        return original(x)

    decoder.output_layer = probe
    try:
        yield
    finally:
        del decoder.output_layer  # back to the class method


def calibrate(model, batches: list[dict], members: list[str], fisher: bool = False) -> Calibration:
    """Statistics of ``members`` (module paths) over ``batches``; the model is left as it was."""
    if not batches:
        raise LightformerError("no calibration batches: the calibration split is empty")
    cal, masks, hooks = Calibration(), {}, []
    was_training = model.training
    model.eval()

    def record(path, x, source):
        mask = masks["src" if source else "tgt"]
        x = x.detach()
        rows = x[mask] if x.dim() == 3 and x.shape[:2] == mask.shape else x.reshape(-1, x.shape[-1])
        rows = rows.to(torch.float64)
        _add(cal.gram, path, rows.T @ rows)
        _add(cal.abs_sum, path, rows.abs().sum(0))
        cal.rows[path] = cal.rows.get(path, 0) + rows.shape[0]

    for path in members:
        module = model.get_submodule(path)
        if isinstance(module, torch.nn.Embedding):
            size = module.num_embeddings

            def lookup(mod, args, out, path=path, size=size):
                ids = args[0][args[0].ne(mod.padding_idx)]
                _add(cal.tokens, path, torch.bincount(ids.reshape(-1), minlength=size).to(torch.float64))
            hooks.append(module.register_forward_hook(lookup))
        else:
            hooks.append(module.register_forward_hook(
                lambda mod, args, out, path=path: record(path, args[0], _source_side(path))))
    try:
        with _output_layer_probe(model, record), torch.set_grad_enabled(fisher):
            for b in batches:
                masks["src"], masks["tgt"] = b["src_tokens"].ne(model.cfg.pad), b["prev_output_tokens"].ne(model.cfg.pad)
                logits = model(b["src_tokens"], b["prev_output_tokens"])
                cal.batches += 1
                cal.target_tokens += int(b["ntokens"])
                if fisher:
                    model.zero_grad(set_to_none=True)
                    loss, _ = label_smoothed_nll_loss(logits, b["target"], 0.0)
                    loss.backward()
                    for path in members:
                        grad = model.get_submodule(path).weight.grad
                        if grad is not None:
                            _add(cal.fisher, path, grad.detach().to(torch.float64).square().sum(1))
            model.zero_grad(set_to_none=True)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return cal


def _normalised(mats: list[torch.Tensor]) -> list[torch.Tensor]:
    """Scaled so the group's mean weight is 1: relative weights between members are kept."""
    diag = torch.cat([m.diagonal() if m.dim() == 2 else m for m in mats])  # a vector is a diagonal
    scale = float(diag.mean()) if diag.numel() and float(diag.mean()) > 0 else 1.0
    return [m / scale for m in mats]


def _need(store: dict, key: str, what: str) -> torch.Tensor:
    if key not in store:
        raise LightformerError(f"no calibration {what} for {key}: it saw no input in the calibration batches")
    return store[key]


def _input_key(cal: Calibration, path: str, roles: list[str]) -> str:
    """Where a linear use's input statistics are: its own path, or the output projection's probe."""
    return path if path in cal.gram else OUT_PROJ if "out_proj" in roles else path


def group_statistics(group, cal: Calibration, kind: str, alpha: float = 0.5):
    """(grams, rows) for weighted.weighted_group_svd under ``kind`` = whiten | asvd | fisher.

    A matrix used as the output projection (alone or tied) is weighted by its inputs, the decoder's
    last hidden states; a matrix used only for lookups is weighted per row by token frequency
    (add-one smoothed, so unseen tokens keep a weight): our reconstruction for embeddings."""
    members = group.members
    if kind == "fisher":
        return None, _normalised([_need(cal.fisher, m, "gradients") for m in members])
    lookup = group.kind == "embedding" and "out_proj" not in group.roles
    if lookup:
        freq = [_need(cal.tokens, m, "lookups") + 1.0 for m in members]
        return None, _normalised([f ** (2 * alpha) if kind == "asvd" else f for f in freq])
    keys = [_input_key(cal, m, group.roles) for m in members]
    if kind == "asvd":
        scales = [(_need(cal.abs_sum, k, "inputs") / cal.rows[k]) ** alpha for k in keys]
        return _normalised([s.square() for s in scales]), None  # diagonal Grams, kept as vectors
    return _normalised([_need(cal.gram, k, "inputs") for k in keys]), None


def output_errors(group, weights, As, Bs, cal: Calibration) -> list[float | None]:
    """Per member: ‖(W − AB) X‖ / ‖W X‖ on the inputs in ``cal`` (held-out batches), or the
    frequency-weighted row error for a lookup-only matrix."""
    grams, rows = group_statistics(group, cal, "whiten")
    out = []
    for i, W in enumerate(weights):
        W = W.detach().to(torch.float64)
        E = W - As[i if len(As) > 1 else 0].to(torch.float64) @ Bs[i if len(Bs) > 1 else 0].to(torch.float64)
        if rows is not None:
            w = rows[i]
            num, den = float((w[:, None] * E.square()).sum()), float((w[:, None] * W.square()).sum())
        else:
            G = grams[i]
            num, den = float(((E @ G) * E).sum()), float(((W @ G) * W).sum())  # tr(E G Eᵀ) / tr(W G Wᵀ)
        out.append((max(num, 0.0) / den) ** 0.5 if den > 0 else None)
    return out
