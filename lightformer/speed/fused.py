"""y = A(Bx) + b in one GPU launch (a Triton kernel), for decoding at small batch.

Decoding is launch-bound on a GPU: a 512x512 product over a few hundred rows takes less time
than its launch, so a factorised linear (two products) costs about twice a dense one whatever
its rank. The kernel below keeps the rank-r code h = Bx on chip: each program owns a block of
rows and of output columns, and for each slice of the rank computes that slice of h over the
whole input, then adds its contribution to the output. Programs that share rows recompute h,
which is cheap while rows are few and wasteful when they are many, so above ``MAX_ROWS`` rows
(where the two products are no longer launch-bound), or above ``MAX_RANK``, the two cuBLAS
products are used instead.

Runs on CUDA in fp32 (IEEE products, no TF32), fp16 and bf16, or anywhere under
``TRITON_INTERPRET=1`` (how the tests check it on CPU). The intermediate is rounded to the
activation dtype, as the two-product path does, so both paths agree to rounding.
"""
from __future__ import annotations

import os

import torch
import torch.nn as nn

from lightformer.errors import LightformerError
from lightformer.models.lowrank import LowRankLinear

MAX_ROWS = 1024  # above this, two GEMMs (no recomputation of h): batch 128 x beam 5 = 640 rows is fused
# and above this rank: every column block recomputes all of h, so the kernel's own time grows with
# r. On an H200 (results/reference/speed_nvidia-h200_fused_ct2.csv) the fused path sped up IWSLT at
# 3.8x (rank 81) and slowed WMT at 1.8x (ranks over 200) against the two-GEMM path.
MAX_RANK = 128
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

try:
    import triton
    import triton.language as tl
except ImportError:  # the fused path is optional; fused_available() says why not
    triton = None

if triton is not None:
    @triton.jit
    def _rank_code(x_ptr, b_ptr, rm, rr, M, K, R, sxm, sxk, sbr, sbk,
                   IEEE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_R: tl.constexpr):
        """h = x B^T for the rows ``rm`` and the rank slice ``rr``, over the whole input (fp32)."""
        h = tl.zeros((BLOCK_M, BLOCK_R), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            rk = k0 + tl.arange(0, BLOCK_K)
            x = tl.load(x_ptr + rm[:, None] * sxm + rk[None, :] * sxk,
                        mask=(rm[:, None] < M) & (rk[None, :] < K), other=0.0)
            bt = tl.load(b_ptr + rr[None, :] * sbr + rk[:, None] * sbk,
                         mask=(rr[None, :] < R) & (rk[:, None] < K), other=0.0)  # B^T tile (K, R)
            if IEEE:
                h += tl.dot(x, bt, input_precision="ieee")
            else:
                h += tl.dot(x, bt)
        return h

    @triton.jit
    def _lowrank_kernel(x_ptr, b_ptr, a_ptr, bias_ptr, y_ptr, M, N, K, R,
                        sxm, sxk, sbr, sbk, san, sar, sym, syn,
                        HAS_BIAS: tl.constexpr, IEEE: tl.constexpr,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_R: tl.constexpr):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for r0 in range(0, R, BLOCK_R):
            rr = r0 + tl.arange(0, BLOCK_R)
            h = _rank_code(x_ptr, b_ptr, rm, rr, M, K, R, sxm, sxk, sbr, sbk, IEEE, BLOCK_M, BLOCK_K, BLOCK_R)
            at = tl.load(a_ptr + rn[None, :] * san + rr[:, None] * sar,
                         mask=(rn[None, :] < N) & (rr[:, None] < R), other=0.0)  # A^T tile (R, N)
            hc = h.to(at.dtype)  # rounded like the two-product path's intermediate
            if IEEE:
                acc += tl.dot(hc, at, input_precision="ieee")
            else:
                acc += tl.dot(hc, at)
        if HAS_BIAS:
            acc += tl.load(bias_ptr + rn, mask=rn < N, other=0.0).to(tl.float32)
        tl.store(y_ptr + rm[:, None] * sym + rn[None, :] * syn, acc.to(y_ptr.dtype.element_ty),
                 mask=(rm[:, None] < M) & (rn[None, :] < N))


    @triton.jit
    def _lowrank_split_kernel(x_ptr, b_ptr, a_ptr, bias_ptr, y_ptr, M, N, K, R,
                              sxm, sxk, sbr, sbk, san, sar, sym, syn,
                              HAS_BIAS: tl.constexpr, IEEE: tl.constexpr,
                              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                              BLOCK_R: tl.constexpr):
        # rank-parallel: each program owns one slice of the rank (axis 2) and adds its share of the
        # output into an fp32 buffer, so a few rows still fill the GPU (the kernel above has one
        # program per row and column block, each walking the whole rank)
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        pid_r = tl.program_id(2)
        rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        rr = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
        h = _rank_code(x_ptr, b_ptr, rm, rr, M, K, R, sxm, sxk, sbr, sbk, IEEE, BLOCK_M, BLOCK_K, BLOCK_R)
        at = tl.load(a_ptr + rn[None, :] * san + rr[:, None] * sar,
                     mask=(rn[None, :] < N) & (rr[:, None] < R), other=0.0)
        hc = h.to(at.dtype)
        if IEEE:
            part = tl.dot(hc, at, input_precision="ieee")
        else:
            part = tl.dot(hc, at)
        if HAS_BIAS:  # added once, by the first rank slice
            first = (pid_r == 0).to(tl.float32)
            part += first * tl.load(bias_ptr + rn, mask=rn < N, other=0.0).to(tl.float32)[None, :]
        tl.atomic_add(y_ptr + rm[:, None] * sym + rn[None, :] * syn, part,
                      mask=(rm[:, None] < M) & (rn[None, :] < N))


def interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def fused_available(device: torch.device, dtype: torch.dtype) -> str | None:
    """None if the fused kernel runs here, else why not (for a clear refusal)."""
    if triton is None:
        return "Triton is not installed (pip install triton)"
    if device.type != "cuda" and not interpreted():
        return f"the fused low-rank kernel runs on CUDA devices (or under TRITON_INTERPRET=1), not {device.type}"
    if dtype not in SUPPORTED_DTYPES:
        return f"the fused low-rank kernel supports fp32, fp16 and bf16, not {dtype}"
    return None


def _block(n: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, triton.next_power_of_2(n)))


def lowrank_linear(x: torch.Tensor, A: torch.Tensor, B: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.linear(F.linear(x, B), A, bias) in one launch (x: (..., in); A: (out, r); B: (r, in))."""
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    M, K = x2.shape
    N, R = A.shape
    y = torch.empty(M, N, device=x.device, dtype=x.dtype)
    BLOCK_M = _block(M, 16, 32)
    BLOCK_N = 32 if M <= 16 else 128  # few rows: more, narrower programs to spread the weight reads
    BLOCK_K = 64
    BLOCK_R = _block(R, 16, 64)
    grid = (triton.cdiv(M, BLOCK_M), triton.cdiv(N, BLOCK_N))
    _lowrank_kernel[grid](x2, B, A, bias if bias is not None else A, y, M, N, K, R,
                          x2.stride(0), x2.stride(1), B.stride(0), B.stride(1), A.stride(0), A.stride(1),
                          y.stride(0), y.stride(1), HAS_BIAS=bias is not None, IEEE=x.dtype == torch.float32,
                          BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, BLOCK_R=BLOCK_R)
    return y.view(*shape[:-1], N)


def lowrank_linear_split(x: torch.Tensor, A: torch.Tensor, B: torch.Tensor, bias: torch.Tensor | None,
                         block_r: int = 16) -> torch.Tensor:
    """``lowrank_linear`` with the rank split across programs (``block_r`` per program), the
    partial outputs summed in fp32 by atomic adds: more parallelism for a few rows, at the cost of
    a zeroed buffer and, for 16-bit activations, a cast (three graph nodes instead of one). Not
    yet the default: the GPU checks time it against ``lowrank_linear`` and two GEMMs in a graph."""
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    M, K = x2.shape
    N, R = A.shape
    y = torch.zeros(M, N, device=x.device, dtype=torch.float32)
    BLOCK_M = _block(M, 16, 32)
    BLOCK_N = 64 if M <= 16 else 128
    grid = (triton.cdiv(M, BLOCK_M), triton.cdiv(N, BLOCK_N), triton.cdiv(R, block_r))
    _lowrank_split_kernel[grid](x2, B, A, bias if bias is not None else A, y, M, N, K, R,
                                x2.stride(0), x2.stride(1), B.stride(0), B.stride(1), A.stride(0), A.stride(1),
                                y.stride(0), y.stride(1), HAS_BIAS=bias is not None, IEEE=x.dtype == torch.float32,
                                BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=64, BLOCK_R=block_r)
    return y.to(x.dtype).view(*shape[:-1], N)


def _frozen(t: torch.Tensor | None) -> nn.Parameter | None:
    return None if t is None else nn.Parameter(t.detach().contiguous(), requires_grad=False)


class FusedLowRank(LowRankLinear):
    """A LowRankLinear for inference whose product is one launch of the fused kernel, up to
    ``max_rows`` rows and ``max_rank``; two GEMMs beyond (see the module docstring)."""

    def __init__(self, A: torch.Tensor, B: torch.Tensor, bias: torch.Tensor | None, max_rows: int = MAX_ROWS,
                 max_rank: int = MAX_RANK):
        super().__init__(_frozen(A), _frozen(B), _frozen(bias))
        self.max_rows = max_rows
        self.fused = B.shape[0] <= max_rank  # fixed per module: a captured graph keeps one path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused and x.numel() // x.shape[-1] <= self.max_rows:
            return lowrank_linear(x, self.A, self.B, self.bias)
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fused={self.fused} up to {self.max_rows} rows"


def check_fused(device: torch.device, dtype: torch.dtype) -> None:
    why = fused_available(device, dtype)
    if why:
        raise LightformerError(f"--fused-lowrank: {why}")
