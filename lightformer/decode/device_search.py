"""The whole beam-search step on the device: scoring, top-k, the finished-hypothesis bookkeeping
and the reorders in fixed shapes, so that on a GPU one CUDA graph replays all of it and the host
never waits for a step to end.

``beam_search``'s static path still decides on the host which candidates finish (a sync per
step, then Python per finished hypothesis) and issues the search's own operators one by one;
at batch 1 on an H200 those are the same for a dense model and a LightFormer and hide the
difference between them (docs/speed.md). Here finished hypotheses go into fixed per-sentence
slots on the device (``Finished``); the host reads them once, at the end, and polls "all
sentences done" a few steps behind the device, so the GPU always has queued work. The result is
the same as ``beam_search``'s (tests/decode/test_device_search.py). On a CPU it is a few percent
slower than ``beam_search`` (static shapes, every slot written each step): it is for the GPU.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from lightformer.config import EOS, PAD
from lightformer.decode.beam import (Hypothesis, SearchConfig, _ban_repeated_ngrams, _decoder_state, _max_len, _mode,
                                     _top_candidates, static_advance, static_candidates)
from lightformer.decode.cache import DecoderCache, init_cache, refill_cache

LAG = 2  # GPU: how many steps the host may run ahead before it reads "all done" (steps at most wasted)


class Finished:
    """Each sentence's finished hypotheses in K slots, plus one slot where the candidates a full
    sentence turns away are written: every step writes, and no host decision is needed."""

    def __init__(self, B: int, K: int, width: int, device: torch.device):
        self.K = K
        self.count = torch.zeros(B, dtype=torch.long, device=device)
        self.scores = torch.full((B, K + 1), -math.inf, device=device)
        self.length = torch.zeros(B, K + 1, dtype=torch.long, device=device)  # tokens before </s>
        self.tokens = torch.zeros(B, K + 1, width, dtype=torch.long, device=device)  # the prefix row, col 0 = </s>
        self.pos_scores = torch.zeros(B, K + 1, width - 1, device=device)
        self.done = torch.zeros((), dtype=torch.bool, device=device)
        # fixed per search, not rebuilt per step: each sentence's first row, each prefix column
        self.first_row = torch.arange(B, device=device)[:, None] * K
        self.cols = torch.arange(width - 1, device=device)

    def reset(self) -> None:
        self.count.zero_()
        self.scores.fill_(-math.inf)
        self.done.zero_()

    def hypotheses(self) -> list[list[Hypothesis]]:
        """Per sentence, best first: one copy to the host for the whole search."""
        count, scores, length, tokens, pos = (t.cpu() for t in (self.count, self.scores, self.length, self.tokens,
                                                                self.pos_scores))
        out = []
        for b in range(count.size(0)):
            n = min(int(count[b]), self.K)
            bucket = [Hypothesis(tokens[b, s, 1: int(length[b, s]) + 1].tolist(), float(scores[b, s]),
                                 pos[b, s, : int(length[b, s]) + 1].tolist()) for s in range(n)]
            bucket.sort(key=lambda h: -h.score)  # stable: ties keep the order they finished in
            out.append(bucket)
        return out


def finalise_on_device(fin: Finished, top, tokens: torch.Tensor, pos_scores: torch.Tensor, lprobs: torch.Tensor,
                       length: torch.Tensor, lenpen: float) -> None:
    """``beam_search``'s finalisation in fixed shapes: the </s> candidates among each sentence's top
    K go to its next free slots, in rank order, until it holds K. ``length``: the device-side
    hypothesis length counting </s> (the cache's step once the decoder has run)."""
    K = fin.K
    top_scores, top_beam, top_tok = (t[:, :K] for t in top)
    B = top_scores.size(0)
    is_eos = (top_tok == EOS) & torch.isfinite(top_scores)
    slot = fin.count[:, None] + is_eos.long().cumsum(1) - 1
    accept = is_eos & (slot < K)
    slot = torch.where(accept, slot, K)  # turned away: the spare slot
    rows = (fin.first_row + top_beam).view(-1)
    step = length - 1  # tokens before </s>
    # the host path divides by a Python float: the same float32 divisor here
    norm = top_scores / (length.double() ** lenpen).float()
    width = tokens.size(1)
    eos_lp = lprobs[:, EOS].index_select(0, rows)  # the </s> column only, not (rows, vocabulary)
    ps = torch.where(fin.cols == step, eos_lp[:, None], pos_scores.index_select(0, rows))  # (B*K, width-1)
    fin.scores.scatter_(1, slot, norm)
    fin.length.scatter_(1, slot, step.expand(B, K))
    fin.tokens.scatter_(1, slot[..., None].expand(B, K, width), tokens.index_select(0, rows).view(B, K, width))
    fin.pos_scores.scatter_(1, slot[..., None].expand(B, K, width - 1), ps.view(B, K, width - 1))
    fin.count.add_(accept.sum(1))
    fin.done.copy_((fin.count >= K).all())


class SearchState:
    """One search's fixed buffers (the static cache, the prefixes, the scores, ``Finished``) and,
    on a GPU, a graph per length mode captured over them; reused for every source of one shape."""

    def __init__(self, model, cache: DecoderCache, B: int, K: int, max_len: int, cfg: SearchConfig, cuda_graph: bool):
        device = cache.step.device
        self.model, self.cache, self.K, self.cfg = model, cache, K, cfg
        self.tokens = torch.empty(B * K, max_len + 2, dtype=torch.long, device=device)
        self.pos_scores = torch.empty(B * K, max_len + 1, device=device)
        self.scores = torch.empty(B, K, device=device)
        self.fin = Finished(B, K, max_len + 2, device)
        self.graphs: dict[str, torch.cuda.CUDAGraph] = {}
        self.reset()
        if cuda_graph:
            self._capture(max_len)

    def reset(self) -> None:
        self.tokens.fill_(PAD)
        self.tokens[:, 0] = EOS  # fairseq starts the decoder from </s>
        self.pos_scores.zero_()
        self.scores.zero_()
        self.scores[:, 1:] = -math.inf  # step 0: one live beam per sentence
        self.fin.reset()
        self.cache.reset()

    def step(self, mode: str, step: int | None = None) -> None:
        """One whole search step, in place. ``step`` (eager only) is for the n-gram ban, the one
        constraint that needs the host's step."""
        cfg, K = self.cfg, self.K
        ban = cfg.no_repeat_ngram_size
        lprobs, top = static_candidates(self.model.decoder, self.cache, self.tokens, self.scores, mode,
                                        cfg.unk_penalty, K, topk=not ban)
        if top is None:
            _ban_repeated_ngrams(lprobs, self.tokens[:, : step + 1], step, ban)
            top = _top_candidates(self.scores, lprobs, self.scores.size(0), K)
        finalise_on_device(self.fin, top, self.tokens, self.pos_scores, lprobs, self.cache.step, cfg.lenpen)
        if mode == "eos_only":  # the last step: nothing continues
            return
        tokens, pos_scores, scores, _ = static_advance(self.cache, top, self.tokens, self.pos_scores, self.scores, K)
        self.tokens.copy_(tokens)
        self.pos_scores.copy_(pos_scores)
        self.scores.copy_(scores)

    def _capture(self, max_len: int) -> None:
        if self.cfg.no_repeat_ngram_size:
            raise ValueError("no_repeat_ngram_size needs the host's step: it cannot be captured in a graph")
        modes = list(dict.fromkeys(_mode(s, max_len, self.cfg) for s in range(max_len + 1)))
        device = self.cache.step.device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up off the capture stream (allocations, kernel choice)
            for mode in modes:
                self.step(mode)
        torch.cuda.current_stream(device).wait_stream(side)
        for mode in modes:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.step(mode)
            self.graphs[mode] = graph
        self.reset()  # the warm-up changed every buffer; capture itself ran nothing

    def run(self, mode: str, step: int) -> None:
        graph = self.graphs.get(mode)
        if graph is not None:
            graph.replay()
        else:
            self.step(mode, step)


class _DonePoll:
    """Reads ``Finished.done`` without stalling the device: on a GPU each step's flag is copied to
    pinned memory behind an event and read up to ``LAG`` steps later (waiting only when the device
    is that far behind); on a CPU it is read at once."""

    def __init__(self, done: torch.Tensor):
        self.done, self.gpu = done, done.is_cuda
        self.issued = self.read = 0
        if self.gpu:  # a ring of LAG + 1 slots: a slot is read before it is written again
            self.flags = torch.zeros(LAG + 1, dtype=torch.bool, pin_memory=True)
            self.events = [torch.cuda.Event() for _ in range(LAG + 1)]

    def after_step(self) -> bool:
        if not self.gpu:
            return bool(self.done)
        n = LAG + 1
        self.flags[self.issued % n].copy_(self.done, non_blocking=True)
        self.events[self.issued % n].record()
        self.issued += 1
        while self.read < self.issued and (self.issued - self.read > LAG or self.events[self.read % n].query()):
            self.events[self.read % n].synchronize()
            self.read += 1
            if bool(self.flags[(self.read - 1) % n]):
                return True
        return False


@torch.inference_mode()
def device_beam_search(model, src_tokens: torch.Tensor, cfg: SearchConfig, encoder_out=None, cuda_graph: bool = False,
                       graph_pool: dict | None = None) -> list[list[Hypothesis]]:
    """``beam_search`` with the whole step on the device (and, with ``cuda_graph``, in one graph
    per length mode). ``graph_pool`` (a dict the caller keeps) reuses buffers and graphs for
    sources of the same shape."""
    if cuda_graph and not src_tokens.is_cuda:
        raise ValueError("cuda_graph needs the model and sources on a CUDA device")
    model.eval()
    B, K = src_tokens.size(0), cfg.beam
    max_len = _max_len(model, src_tokens, cfg)
    enc, _, _ = _decoder_state(model, src_tokens, K, max_len, False, encoder_out, True, False, None)  # no cache yet
    # the state keeps cfg and its graphs bake it in: every search option is part of the key
    key = ("whole_step", id(model), B, enc.out.size(1), enc.padding_mask is not None, dataclasses.astuple(cfg),
           cuda_graph)
    state = graph_pool.get(key) if graph_pool is not None else None
    if state is None:
        cache = init_cache(model.decoder, enc, capacity=max_len + 1, static=True)
        state = SearchState(model, cache, B, K, max_len, cfg, cuda_graph)
        if graph_pool is not None:
            graph_pool[key] = state
    else:
        refill_cache(model.decoder, state.cache, enc)
        state.reset()
    poll = _DonePoll(state.fin.done)
    for step in range(max_len + 1):
        state.run(_mode(step, max_len, cfg), step)
        if step < max_len and poll.after_step():
            break
    return state.fin.hypotheses()
