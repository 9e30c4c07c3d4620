"""Batched beam search over the incremental decoder cache, as fairseq's SequenceGenerator.

Each step feeds one new token per hypothesis (the cache holds the prefix's keys/values), scores
all continuations of all beams of a sentence at once, keeps the 2K best candidates, finalises
those ending in </s> among the top K, and continues with the K best that do not. A sentence is
done once it has K finished hypotheses; finished sentences leave the batch, so later steps run
on fewer rows. Scores are summed log-probabilities divided by length**lenpen, the length
counting the final </s> (fairseq). Beam 1 is greedy search.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lightformer.config import EOS, PAD, UNK
from lightformer.decode.cache import init_cache, refill_cache
from lightformer.options import check_fields, option


@dataclass
class SearchConfig:
    """Beam search as fairseq's generate (its option names; each field is also the CLI option)."""
    beam: int = option(5, check="at_least_1", help="beam size (1 = greedy)")
    lenpen: float = option(1.0, check="finite", help="length penalty: scores divided by length ** lenpen")
    max_len_a: float = option(0.0, check="nonnegative", help="max length = a * source length + b")
    max_len_b: int = option(200, check="nonnegative", help="max length = a * source length + b")
    min_len: int = option(1, check="nonnegative", help="no </s> before this many tokens")
    no_repeat_ngram_size: int = option(0, check="nonnegative", help="block repeated n-grams of this size (0: off)")
    unk_penalty: float = option(0.0, check="finite", help="subtracted from <unk>'s log-probability")
    fixed_length: bool = False  # never stop early: every hypothesis runs max length (speed tests)

    def __post_init__(self):
        check_fields(self)


@dataclass
class Hypothesis:
    tokens: list[int]  # without the final </s>
    score: float  # length-normalised
    positional_scores: list[float] = field(default_factory=list)  # log-prob of each token incl. </s>


def _max_len(model, src_tokens, cfg: SearchConfig) -> int:
    limit = model.cfg.max_target_positions - 1
    return max(1, min(int(cfg.max_len_a * src_tokens.size(1) + cfg.max_len_b), limit))


def _ban_repeated_ngrams(lprobs, tokens, step, n):
    """-inf for tokens that would complete an n-gram already present in the hypothesis.

    tokens: (N, step+1) generated so far incl. the leading </s>; vectorised over hypotheses.
    """
    if step + 2 <= n:  # fewer than n tokens would exist after this step
        return
    grams = tokens.unfold(1, n, 1)  # (N, G, n) every n-gram so far
    tail = tokens[:, step + 2 - n:]  # (N, n-1) the prefix the next token extends
    hit = (grams[:, :, :-1] == tail[:, None, :]).all(-1)  # (N, G)
    banned = torch.where(hit, grams[:, :, -1], lprobs.size(1))  # V = a spare column for misses
    spare = torch.cat([lprobs, lprobs.new_zeros(lprobs.size(0), 1)], dim=1)
    spare.scatter_(1, banned, -math.inf)
    lprobs.copy_(spare[:, :-1])


def _decoder_state(model, src_tokens, K: int, max_len: int, use_cache: bool, encoder_out, static: bool,
                   cuda_graph: bool, graph_pool: dict | None):
    """(encoder output repeated per beam, the decoder cache, a graphed step or None)."""
    B, device = src_tokens.size(0), src_tokens.device
    enc = model.encoder(src_tokens) if encoder_out is None else copy.copy(encoder_out)
    expand = torch.arange(B, device=device).repeat_interleave(K)  # (B*K,) row -> sentence
    enc.out = enc.out.index_select(0, expand)
    if enc.padding_mask is not None:
        enc.padding_mask = enc.padding_mask.index_select(0, expand)
    key = (id(model), B * K, enc.out.size(1), max_len, enc.padding_mask is not None)
    if cuda_graph and graph_pool is not None and key in graph_pool:
        cache, step_fn = graph_pool[key]
        refill_cache(model.decoder, cache, enc)
        return enc, cache, step_fn
    cache = init_cache(model.decoder, enc, capacity=max_len + 1, static=static) if use_cache else None
    step_fn = None
    if cuda_graph:
        from lightformer.decode.cuda_graph import GraphedDecoderStep

        step_fn = GraphedDecoderStep(model.decoder, cache)
        if graph_pool is not None:
            graph_pool[key] = (cache, step_fn)
    return enc, cache, step_fn


def _mode(step: int, max_len: int, cfg: SearchConfig) -> str:
    """Which of fairseq's length constraints holds at ``step``. A compiled step specialises on
    this value (three graphs at most), never on the step itself."""
    if step >= max_len:
        return "eos_only"  # out of room
    if step < cfg.min_len or cfg.fixed_length:
        return "no_eos"
    return "free"


def _lprobs(logits: torch.Tensor, mode: str, unk_penalty: float) -> torch.Tensor:
    """Log-probabilities of the next token: no pad, the unk penalty, the length constraint."""
    lprobs = F.log_softmax(logits.float(), dim=-1)  # (rows, V)
    lprobs[:, PAD] = -math.inf
    if unk_penalty:
        lprobs[:, UNK] -= unk_penalty
    if mode == "eos_only":
        eos_col = lprobs[:, EOS].clone()
        lprobs.fill_(-math.inf)
        lprobs[:, EOS] = eos_col
    elif mode == "no_eos":
        lprobs[:, EOS] = -math.inf
    return lprobs


def _step_lprobs(logits: torch.Tensor, tokens: torch.Tensor, step: int, max_len: int, cfg: SearchConfig) -> torch.Tensor:
    """Log-probabilities of the next token with all of fairseq's constraints, n-gram bans included."""
    lprobs = _lprobs(logits, _mode(step, max_len, cfg), cfg.unk_penalty)
    if cfg.no_repeat_ngram_size:
        _ban_repeated_ngrams(lprobs, tokens[:, : step + 1], step, cfg.no_repeat_ngram_size)
    return lprobs


def _top_candidates(scores: torch.Tensor, lprobs: torch.Tensor, n: int, K: int):
    """(scores, beam, token) of the 2K best continuations per sentence, each (n, 2K), found in two
    stages (per beam row, then per sentence): the same set as one top-k over K*V columns, at a
    fraction of its cost on CPU."""
    k1 = min(2 * K, lprobs.size(1))
    row_scores, row_tok = (scores.view(-1, 1) + lprobs).topk(k1, dim=1)  # (n*K, k1)
    top_scores, j = row_scores.view(n, K * k1).topk(min(2 * K, K * k1), dim=1)  # (n, 2K)
    return top_scores, j // k1, row_tok.view(n, K * k1).gather(1, j)


def _finalise(finished, sent, top, tokens, pos_scores, lprobs, step: int, K: int, lenpen: float) -> bool:
    """Move </s> candidates among each sentence's top K into ``finished`` (best first, at most K
    per sentence); True when any did."""
    top_scores, top_beam, top_tok = top
    is_eos = (top_tok == EOS) & torch.isfinite(top_scores)
    is_eos[:, K:] = False
    if not bool(is_eos.any()):
        return False
    rows, cols = is_eos.nonzero(as_tuple=True)
    norm = top_scores[rows, cols] / (step + 1) ** lenpen
    src_rows = rows * K + top_beam[rows, cols]
    hyp_tokens = tokens[src_rows, 1: step + 1].tolist()
    step_scores = torch.cat([pos_scores[src_rows, :step], lprobs[src_rows, EOS].unsqueeze(1)], 1)
    for r, toks, s, ps in zip(rows.tolist(), hyp_tokens, norm.tolist(), step_scores.tolist()):
        bucket = finished[sent[r].item()]
        if len(bucket) < K:
            bucket.append(Hypothesis(toks, s, ps))
    return True


def _next_beams(top, n: int, K: int):
    """(scores, token, source row) of the K best candidates per sentence that do not end in </s>;
    rows without enough of them get -inf."""
    top_scores, top_beam, top_tok = top
    device = top_scores.device
    live = ~((top_tok == EOS) | ~torch.isfinite(top_scores))
    order = torch.where(live, torch.arange(live.size(1), device=device).expand_as(live), 4 * K)
    pick = order.sort(dim=1).values[:, :K].clamp(max=top_scores.size(1) - 1)  # (n, K) positions
    new_scores = torch.where(live.gather(1, pick), top_scores.gather(1, pick), -math.inf)
    origin = (torch.arange(n, device=device)[:, None] * K + top_beam.gather(1, pick)).view(-1)  # (n*K,)
    return new_scores, top_tok.gather(1, pick), origin


def static_candidates(decoder, cache, tokens: torch.Tensor, scores: torch.Tensor, mode: str, unk_penalty: float,
                      K: int, topk: bool = True):
    """(log-probabilities, the 2K best candidates or None) of one static-shape step: the token at
    the cache's device-side step through ``decoder`` (the model's, a captured graph, or compiled
    alike), then the constraints and, with ``topk``, the two-stage top-k. No Python state changes,
    so it compiles to one graph per ``mode``."""
    tok = tokens.index_select(1, cache.step.view(1))  # (rows, 1)
    lprobs = _lprobs(decoder(tok, None, cache)[:, -1], mode, unk_penalty)
    return lprobs, (_top_candidates(scores, lprobs, scores.size(0), K) if topk else None)


def static_advance(cache, top, tokens: torch.Tensor, pos_scores: torch.Tensor, scores: torch.Tensor, K: int,
                   in_place: bool = True):
    """(tokens, per-token scores, beam scores, reordered cache buffers or None) after continuing
    with the K best live candidates: the cache and the prefixes reordered in fixed shapes, the
    columns taken from the cache's device-side step (already advanced by the decoder). The cache
    is reordered in place (a captured graph keeps reading the same memory) or, with ``in_place``
    False, into new buffers for the caller to swap in (one pass over the cache instead of two)."""
    new_scores, new_tok, origin = _next_beams(top, scores.size(0), K)
    buffers = None
    if in_place:
        cache.reorder(origin)
    else:
        buffers = [(lc.k.index_select(0, origin), lc.v.index_select(0, origin)) for lc in cache.layers]
    tokens = tokens.index_select(0, origin)
    pos_scores = pos_scores.index_select(0, origin)
    prev_cum = scores.view(-1).index_select(0, origin)
    col = cache.step.view(1)
    tokens.index_copy_(1, col, new_tok.view(-1, 1))
    pos_scores.index_copy_(1, col - 1, (new_scores.view(-1) - prev_cum).view(-1, 1))
    return tokens, pos_scores, new_scores, buffers


class StaticSteps:
    """The two per-step functions of a static-shape search, run eagerly; a compiled engine
    (lightformer/decode/compiled.py) supplies compiled ones with the same signatures."""

    candidates = staticmethod(static_candidates)
    advance = staticmethod(static_advance)


@torch.inference_mode()
def beam_search(model, src_tokens: torch.Tensor, cfg: SearchConfig | None = None,
                use_cache: bool = True, encoder_out=None, static: bool = False,
                cuda_graph: bool = False, graph_pool: dict | None = None, engine=None) -> list[list[Hypothesis]]:
    """Hypotheses per source sentence, best first (at most ``cfg.beam`` each).

    ``encoder_out`` lets a caller run (and time) the encoder separately. ``use_cache=False``
    recomputes the whole prefix every step: the reference the cached path is tested against.
    ``static`` keeps all shapes fixed (finished sentences stay in the batch; attention spans the
    cache capacity under a mask); ``cuda_graph`` (implies static) replays each step as one graph.
    ``graph_pool`` (a dict the caller keeps) reuses captured graphs for inputs of the same shape.
    ``engine`` (implies static; a lightformer.decode.compiled.CompiledSearch of ``model``) runs
    the encoder and each step's two halves as compiled graphs.
    """
    cfg = cfg or SearchConfig()
    model.eval()
    B, K, device = src_tokens.size(0), cfg.beam, src_tokens.device
    max_len = _max_len(model, src_tokens, cfg)
    static = static or cuda_graph or engine is not None
    if engine is not None:
        enc, cache = engine.state(src_tokens, K, max_len, encoder_out)
        step_fn, steps = None, engine
    else:
        enc, cache, step_fn = _decoder_state(model, src_tokens, K, max_len, use_cache, encoder_out, static,
                                             cuda_graph, graph_pool)
        steps = StaticSteps
    tokens = torch.full((B * K, max_len + 2), PAD, dtype=torch.long, device=device)
    tokens[:, 0] = EOS  # fairseq starts the decoder from </s>
    pos_scores = torch.zeros(B * K, max_len + 1, device=device)
    scores = torch.zeros(B, K, device=device)
    scores[:, 1:] = -math.inf  # step 0: only one live beam per sentence, no duplicates
    sent = torch.arange(B, device=device)  # original index of each live sentence
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]

    for step in range(max_len + 1):
        n = sent.numel()  # live sentences; rows are n*K
        if static:
            lprobs, top = steps.candidates(step_fn or model.decoder, cache, tokens, scores, _mode(step, max_len, cfg),
                                           cfg.unk_penalty, K, not cfg.no_repeat_ngram_size)
            if top is None:
                _ban_repeated_ngrams(lprobs, tokens[:, : step + 1], step, cfg.no_repeat_ngram_size)
                top = _top_candidates(scores, lprobs, n, K)
        else:
            logits = model.decoder(tokens[:, : step + 1], None if use_cache else enc, cache)[:, -1]
            lprobs = _step_lprobs(logits, tokens, step, max_len, cfg)
            top = _top_candidates(scores, lprobs, n, K)
        newly_finished = _finalise(finished, sent, top, tokens, pos_scores, lprobs, step, K, cfg.lenpen)
        if step >= max_len:
            break
        if newly_finished:
            done = torch.tensor([len(finished[i]) >= K for i in sent.tolist()], device=device)
            if bool(done.all()):
                break
        if static:  # finished sentences stay in the batch
            tokens, pos_scores, scores, _ = steps.advance(cache, top, tokens, pos_scores, scores, K)
            continue
        new_scores, new_tok, origin = _next_beams(top, n, K)
        shrink = newly_finished and bool(done.any())
        if shrink:  # drop sentences that are complete
            keep = (~done).nonzero(as_tuple=True)[0]
            origin = origin.view(n, K)[keep].view(-1)
            new_scores, new_tok = new_scores[keep], new_tok[keep]
            sent = sent[keep]
        if use_cache:
            cache.reorder(origin, cross=shrink)  # beams of a sentence share cross-attention k/v
        else:
            enc.out = enc.out.index_select(0, origin)
            if enc.padding_mask is not None:
                enc.padding_mask = enc.padding_mask.index_select(0, origin)
        tokens = tokens.index_select(0, origin)
        pos_scores = pos_scores.index_select(0, origin)
        prev_cum = scores.view(-1).index_select(0, origin)
        tokens[:, step + 1] = new_tok.view(-1)
        pos_scores[:, step] = new_scores.view(-1) - prev_cum
        scores = new_scores

    for bucket in finished:
        bucket.sort(key=lambda h: -h.score)
    return finished
