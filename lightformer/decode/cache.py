"""Incremental decoding state, outside the model: per decoder layer, self-attention keys/values
written in place into preallocated buffers and cross-attention keys/values computed once per
source. Dynamic caches grow with the prefix; static ones keep every shape fixed (a device-side
step and a keep-mask over the capacity) so a decoder step can be captured as a CUDA graph."""
from __future__ import annotations

import torch


class LayerCache:
    """One decoder layer's decoding state: self-attention keys/values written in place into
    preallocated (B, H, capacity, hd) buffers, cross-attention keys/values computed once."""

    __slots__ = ("k", "v", "cross_k", "cross_v", "mask")

    def __init__(self, k, v, cross_k, cross_v):
        self.k, self.v, self.cross_k, self.cross_v = k, v, cross_k, cross_v
        self.mask = None  # static caches: the decoder's shared keep-mask over the capacity

    def append(self, k: torch.Tensor, v: torch.Tensor, start: int | torch.Tensor):
        """Write the new tokens' keys/values (B, H, T, hd) at ``start``; returns the keys, values
        and keep-mask self-attention reads. Static caches: one token at the device-side step, the
        whole capacity under the mask (no host sync, fixed shapes)."""
        if isinstance(start, torch.Tensor):
            idx = start.view(1)
            self.k.index_copy_(2, idx, k)
            self.v.index_copy_(2, idx, v)
            return self.k, self.v, self.mask
        end = start + k.size(2)
        self.k[:, :, start:end] = k  # in place: no re-allocation per step
        self.v[:, :, start:end] = v
        mask = None
        if k.size(2) > 1:  # several new tokens at once: causal with an offset
            pos_q = torch.arange(start, end, device=k.device)[:, None]
            mask = torch.arange(end, device=k.device)[None, :] <= pos_q
        return self.k[:, :, :end], self.v[:, :, :end], mask


class DecoderCache:
    """Incremental decoding state for the whole decoder; ``reorder`` follows beam choices.

    ``static=True`` keeps every shape fixed for CUDA-graph capture: the step is a device tensor,
    self-attention always spans the whole capacity under a keep-mask, and reorders copy in place.
    """

    def __init__(self, layers: list[LayerCache], memory_mask: torch.Tensor | None, static: bool = False):
        self.layers = layers
        self.memory_mask = memory_mask  # (B, 1, 1, S) keep-mask or None
        self.length = 0  # tokens already decoded (dynamic caches; static ones count in ``step``)
        self.static = static
        if static:
            k = layers[0].k
            self.step = torch.zeros((), dtype=torch.long, device=k.device)
            self.self_mask = torch.zeros(1, 1, 1, k.size(2), dtype=torch.bool, device=k.device)
            for lc in layers:
                lc.mask = self.self_mask

    def new_tokens(self, prev_output_tokens: torch.Tensor) -> tuple[torch.Tensor, int | torch.Tensor]:
        """(the tokens not yet decoded, where they start): beyond ``length`` (growing the buffers
        when needed), or for a static cache the last one at the device-side step."""
        if self.static:
            self.self_mask.index_fill_(3, self.step.view(1), True)
            return prev_output_tokens[:, -1:], self.step
        start = self.length
        tokens = prev_output_tokens[:, start:]
        self.reserve(start + tokens.size(1))
        return tokens, start

    def advance(self, n: int) -> None:
        if self.static:  # device-side only: a compiled or graphed step keeps no Python state
            self.step.add_(1)
        else:
            self.length += n

    def reset(self) -> None:
        """Back to step 0 (static caches; buffers beyond the step are masked, not cleared)."""
        self.length = 0
        if self.static:
            self.step.zero_()
            self.self_mask.zero_()

    def reserve(self, end: int) -> None:
        """Grow the self-attention buffers (doubling) when a step would overflow them."""
        capacity = self.layers[0].k.size(2)
        if end <= capacity:
            return
        new = max(end, 2 * capacity)
        for lc in self.layers:
            for name in ("k", "v"):
                old = getattr(lc, name)
                buf = old.new_empty(old.shape[:2] + (new,) + old.shape[3:])
                buf[:, :, :capacity] = old
                setattr(lc, name, buf)

    def reorder(self, order: torch.Tensor, cross: bool = True) -> None:
        """Select/reorder rows of the batch (beam search); ``order``: (B',) indices.

        Only the filled part of the self-attention buffers moves, in place when the batch size
        stays. ``cross=False`` skips cross-attention keys/values: beams of one sentence share
        them, so reordering within sentences leaves them unchanged.
        """
        L = self.length
        if self.static:  # same buffers, so a captured graph keeps reading the right memory
            for lc in self.layers:
                lc.k.copy_(lc.k.index_select(0, order))
                lc.v.copy_(lc.v.index_select(0, order))
            return
        for lc in self.layers:
            if order.numel() == lc.k.size(0):
                lc.k[:, :, :L] = lc.k[:, :, :L].index_select(0, order)
                lc.v[:, :, :L] = lc.v[:, :, :L].index_select(0, order)
            else:
                lc.k = lc.k.index_select(0, order)
                lc.v = lc.v.index_select(0, order)
            if cross:
                lc.cross_k = lc.cross_k.index_select(0, order)
                lc.cross_v = lc.cross_v.index_select(0, order)
        if cross and self.memory_mask is not None:
            self.memory_mask = self.memory_mask.index_select(0, order)


def init_cache(decoder, encoder_out, capacity: int = 32, static: bool = False) -> DecoderCache:
    """Precompute cross-attention keys/values and allocate self-attention buffers."""
    if static and capacity > decoder.embed_positions.max_positions:
        raise ValueError(f"capacity {capacity} exceeds max positions {decoder.embed_positions.max_positions}")
    memory = encoder_out.out
    B = memory.size(0)
    layers = []
    for layer in decoder.layers:
        ck, cv = layer.encoder_attn.kv(memory)  # (B, H, S, hd)
        H, hd = ck.shape[1], ck.shape[3]
        # static caches attend over the whole capacity under a mask: masked slots get weight 0,
        # and 0 * NaN = NaN, so they must never hold uninitialised memory (seen on an H200)
        k = (memory.new_zeros if static else memory.new_empty)(B, H, capacity, hd)
        layers.append(LayerCache(k, torch.zeros_like(k) if static else torch.empty_like(k), ck, cv))
    return DecoderCache(layers, encoder_out.attn_mask(), static)


def refill_cache(decoder, cache: DecoderCache, encoder_out) -> None:
    """Reuse a static cache (and any graph captured on it) for a new source of the same shape."""
    for layer, lc in zip(decoder.layers, cache.layers):
        ck, cv = layer.encoder_attn.kv(encoder_out.out)
        lc.cross_k.copy_(ck)
        lc.cross_v.copy_(cv)
    if cache.memory_mask is not None:
        cache.memory_mask.copy_(encoder_out.attn_mask())
    cache.reset()
