"""One decoder step captured as a CUDA graph: at small batch, decoding is bound by kernel
launches (a low-rank layer has twice as many), and a graph replays them all in one launch."""
from __future__ import annotations

import torch

from lightformer.config import EOS
from lightformer.decode.cache import DecoderCache


class GraphedDecoderStep:
    """Replays ``decoder(tokens, None, cache)`` for a static cache; inputs and outputs are fixed
    buffers, so each call copies the new tokens in and returns a view of the logits buffer."""

    def __init__(self, decoder, cache: DecoderCache, warmup: int = 2):
        if not cache.static:
            raise ValueError("CUDA-graph decoding needs a static cache (init_cache(decoder, ..., static=True))")
        rows = cache.layers[0].k.size(0)
        device = cache.layers[0].k.device
        self.tokens = torch.full((rows, 1), EOS, dtype=torch.long, device=device)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up off the capture stream (allocations, kernel choice)
            for _ in range(warmup):
                decoder(self.tokens, None, cache)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = decoder(self.tokens, None, cache)
        cache.reset()  # warm-up and capture advanced the step; decoding starts at 0

    def __call__(self, tokens: torch.Tensor, encoder_out=None, cache=None) -> torch.Tensor:
        """``decoder(tokens, None, cache)`` for the cache it was captured on (the search's call)."""
        self.tokens.copy_(tokens)
        self.graph.replay()
        return self.logits
