"""The inference path: turn a trained (or compressed) Transformer into the fastest equivalent
model for decoding, without changing what it computes.

* factors at or above their FLOP break-even rank r* = mn/(m+n) (docs/reference.md §2) are merged
  into one dense matrix: two matmuls there cost more than one;
* the three self-attention projections become one (dense: one (3d x d) matmul; low-rank with a
  shared input basis: the basis once, then one (3d x r) matmul; low-rank with separate bases:
  the bases in one (3r x d) matmul);
* optional dtype (bf16 on GPU);
* optional ``int8`` (CPU): every product in int8 (lightformer/speed/int8.py); changes the function;
* optional ``fused_lowrank`` (GPU): every remaining low-rank product, the packed q/k/v ones
  included, becomes one launch of a Triton kernel (lightformer/speed/fused.py).

The same preparation is applied to baselines, so a measured speedup compares like with like.
Reported parameters stay those of the stored (factorised) model.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from lightformer.models.lowrank import FactorizedEmbedding, LowRankLinear, shared_input_basis
from lightformer.models.transformer import MultiheadAttention


def break_even_rank(out_features: int, in_features: int) -> float:
    return out_features * in_features / (out_features + in_features)


def linear_from(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """An nn.Linear holding copies of ``weight`` (out, in) and ``bias``, on their device and dtype."""
    dense = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    dense.weight = nn.Parameter(weight.detach().clone())
    if bias is not None:
        dense.bias = nn.Parameter(bias.detach().clone())
    return dense


def merged(lr: LowRankLinear) -> nn.Linear:
    return linear_from(lr.A @ lr.B, lr.bias)


class PackedQKV(nn.Module):
    """q, k, v from one product whose output is [q; k; v]: an nn.Linear (dense), a LowRankLinear
    (one shared input basis), or their int8 / fused stand-ins."""

    def __init__(self, proj: nn.Module):
        super().__init__()
        self.proj = proj

    def forward(self, x):
        return self.proj(x).chunk(3, dim=-1)


class StackedBasisQKV(nn.Module):
    """[B_q; B_k; B_v] x in one product, then each A on its slice (separate input bases)."""

    def __init__(self, q: LowRankLinear, k: LowRankLinear, v: LowRankLinear):
        super().__init__()
        self.ranks = [q.rank, k.rank, v.rank]
        self.basis = linear_from(torch.cat([q.B, k.B, v.B]), None)  # (r_q + r_k + r_v, d)
        self.heads = nn.ModuleList(linear_from(m.A, m.bias) for m in (q, k, v))

    def forward(self, x):
        hs = self.basis(x).split(self.ranks, dim=-1)
        return tuple(head(h) for head, h in zip(self.heads, hs))

    def packed(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(A, B, bias) of one low-rank product giving [q; k; v]: A block-diagonal. Zeros cost
        bytes and FLOPs, not launches, so this is for the GPU, where launches dominate."""
        A = torch.block_diag(*(h.weight for h in self.heads))  # (3d, r_q + r_k + r_v)
        return A, self.basis.weight, torch.cat([h.bias for h in self.heads])


def _qkv_cost_factorised(q, k, v) -> int:
    d_in = q.in_features
    basis = q.rank * d_in if shared_input_basis(q, k, v) is not None else sum(m.rank for m in (q, k, v)) * d_in
    return basis + sum(m.rank * m.out_features for m in (q, k, v))


class FusedSelfAttention(MultiheadAttention):
    """Self-attention for inference whose q, k, v come from one packed product (``qkv_proj``). It
    takes the trained module's place, so the model itself keeps no inference switches."""

    inference_only = True  # not a stored model's layout: exporters refuse it (export/ct2.py)

    def __init__(self, attn: MultiheadAttention, qkv_proj: nn.Module):
        nn.Module.__init__(self)  # not MultiheadAttention's: no separate q/k/v projections
        self.num_heads, self.head_dim, self.dropout = attn.num_heads, attn.head_dim, attn.dropout
        self.qkv_proj = qkv_proj
        self.out_proj = attn.out_proj
        self.train(attn.training)

    def qkv(self, x: torch.Tensor):
        q, k, v = self.qkv_proj(x)
        return self._heads(q), self._heads(k), self._heads(v)


def fuse_self_attention(attn: MultiheadAttention, merge: bool) -> FusedSelfAttention:
    """The module to put in ``attn``'s place: q, k, v in one product, as cheap as the factors allow."""
    q, k, v = attn.q_proj, attn.k_proj, attn.v_proj
    lowrank = [isinstance(m, LowRankLinear) for m in (q, k, v)]
    if all(lowrank) and merge and _qkv_cost_factorised(q, k, v) >= 3 * q.in_features * q.out_features:
        q, k, v = merged(q), merged(k), merged(v)
        lowrank = [False] * 3
    if any(lowrank) and not all(lowrank):
        q, k, v = (merged(m) if isinstance(m, LowRankLinear) else m for m in (q, k, v))
        lowrank = [False] * 3
    if not any(lowrank):
        packed = PackedQKV(linear_from(torch.cat([q.weight, k.weight, v.weight]), torch.cat([q.bias, k.bias, v.bias])))
    elif shared_input_basis(q, k, v) is not None:  # h = Bx once, then [A_q; A_k; A_v] h
        packed = PackedQKV(LowRankLinear(nn.Parameter(torch.cat([q.A, k.A, v.A]).detach()),
                                         nn.Parameter(q.B.detach().clone()),
                                         nn.Parameter(torch.cat([q.bias, k.bias, v.bias]).detach())))
    else:
        packed = StackedBasisQKV(q, k, v)
    return FusedSelfAttention(attn, packed)


def replace_products(fast: nn.Module, lowrank, dense=None, stacked=None) -> None:
    """Swap the products of a prepared model in place: every LowRankLinear for ``lowrank(A, B,
    bias)`` (but cross-attention keys/values, computed once per source from one shared basis),
    every nn.Linear for ``dense(weight, bias)`` and every StackedBasisQKV for ``stacked(module)``
    when given, and the tied output projection as a product of the embedding too."""
    for parent in list(fast.modules()):  # a snapshot: new modules are not visited again
        for name, child in list(parent.named_children()):
            if isinstance(child, LowRankLinear) and name not in ("k_proj", "v_proj"):
                setattr(parent, name, lowrank(child.A, child.B, child.bias))
            elif isinstance(child, nn.Linear) and dense is not None:
                setattr(parent, name, dense(child.weight, child.bias))
            elif isinstance(child, StackedBasisQKV) and stacked is not None:
                setattr(parent, name, stacked(child))
    dec = fast.decoder
    if dec.output_projection is None:  # tied logits: x E^T, or A(Bx) for a factorised embedding
        e = dec.embed_tokens
        if isinstance(e, FactorizedEmbedding):
            dec.output_projection = lowrank(e.A, e.B, None)
        elif dense is not None:
            dec.output_projection = dense(e.weight, None)


def prepare_for_inference(model: nn.Module, *, merge: bool = True, fuse_qkv: bool = True,
                          dtype: torch.dtype | None = None, device: str | torch.device | None = None,
                          fused_lowrank: bool = False, int8: bool = False) -> nn.Module:
    """An eval-mode copy that computes the same function faster (see module docstring)."""
    first = next(model.parameters())
    where, dtype_to = torch.device(device or first.device), dtype or first.dtype
    if fused_lowrank:
        from lightformer.speed.fused import check_fused

        check_fused(where, dtype_to)
    if int8:
        from lightformer.speed.int8 import check_int8

        check_int8(where, dtype_to)
    fast = copy.deepcopy(model).eval()
    if device is not None or dtype is not None:
        fast = fast.to(device=device, dtype=dtype)
    for layer in list(fast.encoder.layers) + list(fast.decoder.layers):
        if fuse_qkv:
            layer.self_attn = fuse_self_attention(layer.self_attn, merge)
        if not merge:
            continue
        for parent in layer.modules():
            for name, child in list(parent.named_children()):
                if isinstance(child, LowRankLinear) and child.rank >= break_even_rank(child.out_features, child.in_features):
                    if name in ("k_proj", "v_proj") and shared_input_basis(parent.k_proj, parent.v_proj) is not None:
                        continue  # cross-attention k/v sharing a basis: computed once per source anyway
                    setattr(parent, name, merged(child))
    out = fast.decoder.output_projection
    if isinstance(out, LowRankLinear) and out.rank >= break_even_rank(out.out_features, out.in_features):
        fast.decoder.output_projection = merged(out)
    if fused_lowrank:  # GPU: one launch per product, the stacked q/k/v bases packed block-diagonally
        from lightformer.speed.fused import FusedLowRank

        replace_products(fast, FusedLowRank, stacked=lambda m: PackedQKV(FusedLowRank(*m.packed())))
    if int8:  # CPU: every product, dense ones too, with int8 weights
        from lightformer.speed.int8 import Int8Linear, Int8LowRank

        replace_products(fast, Int8LowRank, dense=Int8Linear)
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast
