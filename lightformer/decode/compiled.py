"""Decoding without per-operator overhead on a CPU: the same static-shape beam search, with its
work in three kinds of compiled graph (TorchInductor: fused C++ loops around the BLAS products).

* the encoder, once per source shape;
* a step's candidates: the decoder over the static cache, fairseq's constraints, the two-stage
  top-k (one graph per length-constraint mode, three at most);
* a step's advance: the K best live candidates, the cache and prefix reorders in fixed shapes.

Only the bookkeeping of finished hypotheses stays in Python; on a CPU its host reads cost
nothing extra. Eager decoding issues ~200-400 ATen operators per step, each with a fixed
dispatch cost that a batch-1 step cannot hide; here a step is two calls. Graphs are built on the
first call for a shape (seconds per graph, cached by TorchInductor on disk) and reused: the
speed protocol's warm-up runs absorb it. docs/speed.md has what this and the other engines gave.

Exactness: compiled kernels round differently from eager ones (fused reductions), so scores
agree to float rounding and tokens agree on trained models (tested for dense, factorised,
shared-basis and factorised-embedding models, beam 1 and 5, and the int8 path).
"""
from __future__ import annotations

import collections
import copy
import functools

import torch

from lightformer.decode.beam import static_advance, static_candidates
from lightformer.decode.cache import DecoderCache, init_cache, refill_cache
from lightformer.errors import LightformerError


def check_compiled(device: torch.device) -> None:
    if device.type != "cpu":
        raise LightformerError(f"--engine compiled is the CPU path (TorchInductor's C++ backend); on {device.type} "
                               f"use --cuda-graph, which replays each step as one graph")
    from torch._inductor import cpp_builder

    try:
        cpp_builder.get_cpp_compiler()
    except Exception as e:  # noqa: BLE001 - whatever Inductor raises when no C++ compiler is found
        raise LightformerError(f"--engine compiled needs a C++ compiler (TorchInductor builds its kernels with "
                               f"one): {e}") from None


def _inductor(gm, example_inputs):
    """TorchInductor with two changes for batch-1 decoding: attention decomposed to its arithmetic,
    which Inductor fuses into its own loops (one query against a short cache is tiny, and the fused
    attention kernel's fixed cost, ~40 us here, was a fifth of a factorised model's step), and the
    C++ wrapper, which calls the kernels without a Python line per operator."""
    from torch._decomp import get_decompositions
    from torch._inductor import config
    from torch._inductor.compile_fx import compile_fx
    from torch._inductor.decomposition import select_decomp_table

    table = dict(select_decomp_table())
    table.update(get_decompositions([torch.ops.aten._scaled_dot_product_flash_attention_for_cpu]))
    with config.patch(cpp_wrapper=True):
        return compile_fx(gm, example_inputs, decompositions=table)


def _compile(fn):
    # shapes are fixed within a search; the first graph of each function is built for the first
    # shapes seen, and a second source length or batch size makes TorchDynamo rebuild it with
    # those sizes symbolic, once (latency runs stay on the specialised graph; a test set's many
    # lengths cost two builds, not one each). fullgraph: a graph break would put the
    # per-operator cost back, so it is an error
    return torch.compile(fn, fullgraph=True, backend=_inductor)


class CompiledSearch:
    """The compiled graphs of one prepared model (``prepare_for_inference``) and its static caches,
    one per input shape, the ``max_caches`` most recent kept (a paper-size batch of 32 x 5 beams
    holds ~100 MB; a test set's many lengths must not keep one each). Pass it as
    ``beam_search(model, src, cfg, engine=...)``."""

    max_caches = 4

    def __init__(self, model):
        check_compiled(next(model.parameters()).device)
        # graphs are cached per function, shared by every engine: each model adds a few (one per
        # mode and shape), and past the limit TorchDynamo would quietly fall back to eager
        dynamo = torch._dynamo.config
        dynamo.recompile_limit = max(dynamo.recompile_limit, 256)
        dynamo.accumulated_recompile_limit = max(dynamo.accumulated_recompile_limit, 4096)
        self.model = model.eval()
        self._encode = _compile(model.encoder.encode)
        self.candidates = _compile(static_candidates)
        self._advance = _compile(functools.partial(static_advance, in_place=False))
        self._caches: collections.OrderedDict[tuple, DecoderCache] = collections.OrderedDict()

    def encoder(self, src_tokens: torch.Tensor):
        """``model.encoder(src_tokens)``, compiled: the pad check stays outside (a host read)."""
        padding_mask = src_tokens.eq(self.model.encoder.padding_idx)
        return self._encode(src_tokens, padding_mask if bool(padding_mask.any()) else None)

    def state(self, src_tokens: torch.Tensor, K: int, max_len: int, encoder_out):
        """(the encoder output, repeated per beam, and a static cache filled from it), as
        ``beam_search``'s own set-up does; a cache of the same shape is reused."""
        enc = self.encoder(src_tokens) if encoder_out is None else encoder_out
        B = src_tokens.size(0)
        expand = torch.arange(B, device=src_tokens.device).repeat_interleave(K)  # (B*K,) row -> sentence
        enc = copy.copy(enc)  # the caller's stays as it was
        enc.out = enc.out.index_select(0, expand)
        if enc.padding_mask is not None:
            enc.padding_mask = enc.padding_mask.index_select(0, expand)
        key = (B * K, enc.out.size(1), max_len, enc.padding_mask is not None)
        cache = self._caches.pop(key, None)
        if cache is None:
            cache = init_cache(self.model.decoder, enc, capacity=max_len + 1, static=True)
        else:
            refill_cache(self.model.decoder, cache, enc)  # once per source: eager is cheap enough
        self._caches[key] = cache  # the most recent last
        while len(self._caches) > self.max_caches:
            self._caches.popitem(last=False)
        return enc, cache

    def advance(self, cache: DecoderCache, top, tokens, pos_scores, scores, K: int):
        """``static_advance``, compiled, with the cache's reordered buffers swapped in."""
        tokens, pos_scores, scores, buffers = self._advance(cache, top, tokens, pos_scores, scores, K)
        for lc, (k, v) in zip(cache.layers, buffers):
            lc.k, lc.v = k, v
        return tokens, pos_scores, scores, None
