"""Low-rank building blocks: drop-in replacements for ``nn.Linear`` and the token embedding.

A factor is a plain ``nn.Parameter``; sharing a factor between modules means handing the
*same* Parameter object to each of them, so it is one tensor: saved once, counted once by
``named_parameters()`` and updated once by the optimizer.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Embedding(nn.Embedding):
    """fairseq's token embedding, plus ``logits`` for the tied output projection."""

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)  # (B, T, d) -> (B, T, V)


class LowRankLinear(nn.Module):
    """y = A(Bx) + b, the rank-r stand-in for a Linear with weight W ≈ A @ B.

    A: (out, r) output-side factor; B: (r, in) input-side factor. FLOPs drop below the dense
    layer's only when r < out*in/(out+in) (docs/reference.md §2: 256 for 512x512).
    """

    def __init__(self, A: nn.Parameter, B: nn.Parameter, bias: nn.Parameter | None):
        super().__init__()
        assert A.shape[1] == B.shape[0], (A.shape, B.shape)
        self.A = A
        self.B = B
        self.bias = bias

    @property
    def in_features(self) -> int:
        return self.B.shape[1]

    @property
    def out_features(self) -> int:
        return self.A.shape[0]

    @property
    def rank(self) -> int:
        return self.B.shape[0]

    @property
    def weight(self) -> torch.Tensor:
        """The dense (out, in) matrix the factors stand for (analysis only, not the hot path)."""
        return self.A @ self.B

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(x, self.B), self.A, self.bias)

    def expand(self, h: torch.Tensor) -> torch.Tensor:
        """From the rank-r code h = Bx to the output; lets a shared basis be applied once."""
        return F.linear(h, self.A, self.bias)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, rank={self.rank}, bias={self.bias is not None}"


class FactorizedEmbedding(nn.Module):
    """E ≈ A @ B with A: (V, r), B: (r, d).

    Lookup gathers r-dim codes and expands them; as the tied output layer, logits = A(Bx), so
    the vocabulary-sized matmul costs r instead of d per row.
    """

    def __init__(self, A: nn.Parameter, B: nn.Parameter, padding_idx: int):
        super().__init__()
        self.A = A
        self.B = B
        self.padding_idx = padding_idx

    @property
    def num_embeddings(self) -> int:
        return self.A.shape[0]

    @property
    def embedding_dim(self) -> int:
        return self.B.shape[1]

    @property
    def rank(self) -> int:
        return self.B.shape[0]

    @property
    def weight(self) -> torch.Tensor:
        return self.A @ self.B

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        codes = F.embedding(tokens, self.A, self.padding_idx)  # (B, T, r); pad row gets no gradient
        return codes @ self.B  # (B, T, d)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(x, self.B), self.A)  # (B, T, d) -> (B, T, r) -> (B, T, V)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, rank={self.rank}, padding_idx={self.padding_idx}"


def shared_input_basis(*projections: nn.Module) -> torch.Tensor | None:
    """The common B of low-rank projections that share one input basis, else None."""
    first = projections[0]
    if not isinstance(first, LowRankLinear):
        return None
    for p in projections[1:]:
        if not isinstance(p, LowRankLinear) or p.B is not first.B:
            return None
    return first.B
