"""Model FLOPs of a training step, counted from the module shapes (docs/reference.md §8).

The convention of MFU (PaLM, Megatron): every matrix product the model needs for its real
(unpadded) tokens, forward once and backward twice (6 FLOPs per multiply-accumulate per token),
plus attention scores and their weighted sum over the full (non-causal) length. Padding, norms,
softmax and dropout are not model FLOPs; the GPU's work on padding shows as a lower MFU.

Low-rank layers count their two factors, a shared q/k/v input basis once per layer (as the model
computes it), and a layer shared across depth once per application (FLOPs follow use, not storage).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
from torch import nn

from lightformer.models.lowrank import Embedding, FactorizedEmbedding, LowRankLinear, shared_input_basis


def linear_macs(m: nn.Module) -> int:
    """Multiply-accumulates of one row through a (low-rank) linear layer."""
    if isinstance(m, LowRankLinear):
        return m.rank * (m.in_features + m.out_features)
    if isinstance(m, nn.Linear):
        return m.in_features * m.out_features
    raise TypeError(f"not a linear layer: {type(m).__name__}")


def projection_macs(*projections: nn.Module) -> int:
    """Several projections of one input: a common low-rank basis is applied once."""
    basis = shared_input_basis(*projections)
    if basis is None:
        return sum(linear_macs(p) for p in projections)
    return basis.shape[0] * basis.shape[1] + sum(p.rank * p.out_features for p in projections)


@dataclass(frozen=True)
class StepMacs:
    """Per-token multiply-accumulates of a forward pass, split by what they scale with."""
    per_src_token: int  # encoder layers, cross-attention keys/values, a factorised source embedding
    per_tgt_token: int  # decoder layers, the output projection, a factorised target embedding
    attn_per_token_pair: int  # d per (query, key) for scores plus d for the weighted sum, all layers
    enc_layers: int
    dec_layers: int

    def forward_macs(self, src_lens, tgt_lens) -> int:
        """Forward multiply-accumulates for sentences of these true lengths (no padding)."""
        s, t = np.asarray(src_lens, dtype=np.int64), np.asarray(tgt_lens, dtype=np.int64)
        attn = self.enc_layers * (s * s).sum() + self.dec_layers * (t * t + t * s).sum()
        return int(self.per_src_token * s.sum() + self.per_tgt_token * t.sum() + self.attn_per_token_pair * attn)

    def train_flops(self, src_lens, tgt_lens) -> int:
        """Model FLOPs of forward + backward: 2 FLOPs per MAC, backward twice the forward."""
        return 6 * self.forward_macs(src_lens, tgt_lens)


def _embedding_macs(embed: nn.Module) -> int:
    return embed.rank * embed.embedding_dim if isinstance(embed, FactorizedEmbedding) else 0


def _output_macs(decoder: nn.Module) -> int:
    if decoder.output_projection is not None:
        return linear_macs(decoder.output_projection)
    embed = decoder.embed_tokens
    if isinstance(embed, FactorizedEmbedding):
        return embed.rank * (embed.embedding_dim + embed.num_embeddings)
    if isinstance(embed, Embedding):
        return embed.num_embeddings * embed.embedding_dim
    raise TypeError(f"unknown tied output embedding {type(embed).__name__}")


def step_macs(model: nn.Module) -> StepMacs:
    """The model's multiply-accumulates per source and target token (see the module docstring)."""
    enc, dec = model.encoder, model.decoder
    src = _embedding_macs(enc.embed_tokens)
    for layer in enc.layers:
        a = layer.self_attn
        src += projection_macs(a.q_proj, a.k_proj, a.v_proj) + linear_macs(a.out_proj)
        src += linear_macs(layer.fc1) + linear_macs(layer.fc2)
    tgt = _embedding_macs(dec.embed_tokens) + _output_macs(dec)
    for layer in dec.layers:
        a, c = layer.self_attn, layer.encoder_attn
        tgt += projection_macs(a.q_proj, a.k_proj, a.v_proj) + linear_macs(a.out_proj)
        tgt += linear_macs(c.q_proj) + linear_macs(c.out_proj) + linear_macs(layer.fc1) + linear_macs(layer.fc2)
        src += projection_macs(c.k_proj, c.v_proj)  # cross-attention keys/values: once per source token
    d = model.cfg.embed_dim
    return StepMacs(src, tgt, 2 * d, len(enc.layers), len(dec.layers))


class Throughput:
    """Training tokens/s, model TFLOP/s and MFU over windows of updates (one per curve row) and
    over the session, with validation and checkpointing time left out (``paused``)."""

    def __init__(self, macs: StepMacs, peak_flops: float | None):
        import time

        self.macs, self.peak, self.clock = macs, peak_flops, time.perf_counter
        self.start = self.mark = self.clock()
        self.excluded = self.excluded_mark = 0.0
        self.tokens = self.flops = self.window_tokens = self.window_flops = 0

    def add(self, tokens: int, src_lens, tgt_lens, scale: int = 1) -> None:
        """An update of ``tokens`` target tokens; FLOPs from these sentences' lengths x ``scale``
        (data-parallel ranks, each with its own sentences of about the same lengths)."""
        flops = self.macs.train_flops(src_lens, tgt_lens) * scale
        self.tokens, self.flops = self.tokens + tokens, self.flops + flops
        self.window_tokens, self.window_flops = self.window_tokens + tokens, self.window_flops + flops

    @contextlib.contextmanager
    def paused(self):
        """Time inside the block (validation, checkpoints) is not training time."""
        t0 = self.clock()
        try:
            yield
        finally:
            self.excluded += self.clock() - t0

    def _rates(self, tokens: int, flops: int, seconds: float) -> dict:
        if seconds <= 0 or not tokens:
            return {"train_tokens_per_s": None, "train_tflops": None, "mfu": None}
        return {"train_tokens_per_s": tokens / seconds, "train_tflops": flops / seconds / 1e12,
                "mfu": flops / seconds / self.peak if self.peak else None}

    def window(self) -> dict:
        """Rates since the previous window; starts the next one."""
        now = self.clock()
        seconds = now - self.mark - (self.excluded - self.excluded_mark)
        out = self._rates(self.window_tokens, self.window_flops, seconds)
        self.mark, self.excluded_mark, self.window_tokens, self.window_flops = now, self.excluded, 0, 0
        return out

    def session(self) -> dict:
        return self._rates(self.tokens, self.flops, self.clock() - self.start - self.excluded)
