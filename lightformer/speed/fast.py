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
import torch.nn.functional as F

from lightformer.models.lowrank import LowRankLinear, shared_input_basis
from lightformer.models.transformer import MultiheadAttention


def break_even_rank(out_features: int, in_features: int) -> float:
    return out_features * in_features / (out_features + in_features)


def merged(lr: LowRankLinear) -> nn.Linear:
    dense = nn.Linear(lr.in_features, lr.out_features, bias=lr.bias is not None)
    with torch.no_grad():
        dense = dense.to(lr.A.device, lr.A.dtype)
        dense.weight.copy_(lr.A @ lr.B)
        if lr.bias is not None:
            dense.bias.copy_(lr.bias)
    return dense


class DenseQKV(nn.Module):
    def __init__(self, q: nn.Linear, k: nn.Linear, v: nn.Linear):
        super().__init__()
        self.weight = nn.Parameter(torch.cat([q.weight, k.weight, v.weight]).detach())  # (3d, d)
        self.bias = nn.Parameter(torch.cat([q.bias, k.bias, v.bias]).detach())

    def forward(self, x):
        return F.linear(x, self.weight, self.bias).chunk(3, dim=-1)


class SharedBasisQKV(nn.Module):
    """h = Bx once, then [A_q; A_k; A_v] h in one matmul."""

    def __init__(self, q: LowRankLinear, k: LowRankLinear, v: LowRankLinear):
        super().__init__()
        self.B = nn.Parameter(q.B.detach().clone())
        self.A = nn.Parameter(torch.cat([q.A, k.A, v.A]).detach())  # (3d, r)
        self.bias = nn.Parameter(torch.cat([q.bias, k.bias, v.bias]).detach())

    def forward(self, x):
        return F.linear(F.linear(x, self.B), self.A, self.bias).chunk(3, dim=-1)


class StackedBasisQKV(nn.Module):
    """[B_q; B_k; B_v] x in one matmul, then each A on its slice."""

    def __init__(self, q: LowRankLinear, k: LowRankLinear, v: LowRankLinear):
        super().__init__()
        self.ranks = [q.rank, k.rank, v.rank]
        self.B = nn.Parameter(torch.cat([q.B, k.B, v.B]).detach())  # (r_q + r_k + r_v, d)
        self.As = nn.ParameterList([nn.Parameter(m.A.detach().clone()) for m in (q, k, v)])
        self.biases = nn.ParameterList([nn.Parameter(m.bias.detach().clone()) for m in (q, k, v)])

    def forward(self, x):
        hs = F.linear(x, self.B).split(self.ranks, dim=-1)
        return tuple(F.linear(h, A, b) for h, A, b in zip(hs, self.As, self.biases))


class PackedQKV(nn.Module):
    """q, k, v from one projection module (a fused low-rank product) whose output is [q; k; v]."""

    def __init__(self, proj: nn.Module):
        super().__init__()
        self.proj = proj

    def forward(self, x):
        return self.proj(x).chunk(3, dim=-1)


def packed_lowrank(qkv: nn.Module):
    """(A, B, bias) of one low-rank product computing a factorised q/k/v module's [q; k; v]; for
    separate bases, A is block-diagonal (zeros cost bytes, not launches, and launches dominate)."""
    if isinstance(qkv, SharedBasisQKV):
        return qkv.A, qkv.B, qkv.bias
    As = list(qkv.As)
    A = torch.block_diag(*As)  # (3d, r_q + r_k + r_v)
    return A, qkv.B, torch.cat(list(qkv.biases))


def _qkv_cost_factorised(q, k, v) -> int:
    d_in = q.in_features
    basis = q.rank * d_in if shared_input_basis(q, k, v) is not None else sum(m.rank for m in (q, k, v)) * d_in
    return basis + sum(m.rank * m.out_features for m in (q, k, v))


def fuse_self_attention(attn: MultiheadAttention, merge: bool) -> None:
    q, k, v = attn.q_proj, attn.k_proj, attn.v_proj
    lowrank = [isinstance(m, LowRankLinear) for m in (q, k, v)]
    if all(lowrank) and merge and _qkv_cost_factorised(q, k, v) >= 3 * q.in_features * q.out_features:
        q, k, v = merged(q), merged(k), merged(v)
        lowrank = [False] * 3
    if any(lowrank) and not all(lowrank):
        q, k, v = (merged(m) if isinstance(m, LowRankLinear) else m for m in (q, k, v))
        lowrank = [False] * 3
    if not any(lowrank):
        attn.fused_qkv = DenseQKV(q, k, v)
    elif shared_input_basis(q, k, v) is not None:
        attn.fused_qkv = SharedBasisQKV(q, k, v)
    else:
        attn.fused_qkv = StackedBasisQKV(q, k, v)
    # the separate projections are not used by self-attention any more
    attn.q_proj = attn.k_proj = attn.v_proj = None


def use_fused_lowrank(fast: nn.Module) -> int:
    """Swap every low-rank product of a prepared model for the fused kernel; how many were swapped."""
    from lightformer.models.lowrank import FactorizedEmbedding
    from lightformer.speed.fused import FusedLowRank

    swapped = 0
    for parent in list(fast.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LowRankLinear) and not isinstance(child, FusedLowRank):
                if name in ("k_proj", "v_proj"):
                    continue  # cross-attention keys/values: once per source, sharing one basis
                setattr(parent, name, FusedLowRank(child.A, child.B, child.bias))
            elif isinstance(child, (SharedBasisQKV, StackedBasisQKV)):
                setattr(parent, name, PackedQKV(FusedLowRank(*packed_lowrank(child))))
            else:
                continue
            swapped += 1
    dec = fast.decoder
    if dec.output_projection is None and isinstance(dec.embed_tokens, FactorizedEmbedding):
        dec.output_projection = FusedLowRank(dec.embed_tokens.A, dec.embed_tokens.B, None)  # tied logits
        swapped += 1
    return swapped


def prepare_for_inference(model: nn.Module, *, merge: bool = True, fuse_qkv: bool = True,
                          dtype: torch.dtype | None = None, device: str | torch.device | None = None,
                          fused_lowrank: bool = False, int8: bool = False) -> nn.Module:
    """An eval-mode copy that computes the same function faster (see module docstring)."""
    if fused_lowrank:
        from lightformer.speed.fused import check_fused

        check_fused(torch.device(device or next(model.parameters()).device),
                    dtype or next(model.parameters()).dtype)
    if int8:
        from lightformer.speed.int8 import check_int8

        check_int8(torch.device(device or next(model.parameters()).device), dtype or next(model.parameters()).dtype)
    fast = copy.deepcopy(model).eval()
    if device is not None or dtype is not None:
        fast = fast.to(device=device, dtype=dtype)
    for layer in list(fast.encoder.layers) + list(fast.decoder.layers):
        if fuse_qkv:
            fuse_self_attention(layer.self_attn, merge)
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
    if fused_lowrank:
        use_fused_lowrank(fast)
    if int8:
        from lightformer.speed.int8 import use_int8

        use_int8(fast)
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast
