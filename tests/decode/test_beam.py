import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import lightformer as lf
from lightformer.config import EOS, PAD
from lightformer.decode import SearchConfig, beam_search
from lightformer.decode.cache import init_cache, refill_cache
from tests.conftest import trained_like


def model(tgt_vocab, **kw):
    m = lf.build_model("transformer_tiny", 20, tgt_vocab, seed=2, **kw)
    with torch.no_grad():  # sharpen the output so hypotheses differ clearly
        trained_like(m, seed=5)
        for p in m.parameters():
            p.mul_(3.0)
    return m.eval()


def sources(B=3, S=6, vocab=20):
    g = torch.Generator().manual_seed(9)
    src = torch.randint(4, vocab, (B, S), generator=g)
    src[:, -1] = EOS
    src[0, :2] = PAD
    return src


def assert_same_hypotheses(got, want):
    for a, b in zip(got, want):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)


def score_of(m, src, toks, lenpen):
    """Length-normalised log-prob of toks + </s> by teacher forcing (no cache, no search)."""
    tgt = torch.tensor([list(toks) + [EOS]])
    prev = torch.tensor([[EOS] + list(toks)])
    lp = F.log_softmax(m(src, prev).float(), -1)[0].gather(1, tgt.T).sum()
    return lp.item() / len(tgt[0]) ** lenpen


@pytest.mark.parametrize("lenpen", [1.0, 0.6])
def test_wide_beam_equals_exhaustive_search(lenpen):
    m = model(tgt_vocab=5)  # choices per step: 0, 3, 4 and </s> (pad is never generated)
    src = sources(B=1)[:, 2:]
    cfg = SearchConfig(beam=64, lenpen=lenpen, max_len_b=3, min_len=1)  # 64 >= 4^3
    best = beam_search(m, src, cfg)[0][0]
    candidates = [seq for L in (1, 2, 3) for seq in itertools.product((0, 3, 4), repeat=L)]
    scored = sorted(((score_of(m, src, seq, lenpen), seq) for seq in candidates), reverse=True)
    assert tuple(best.tokens) == scored[0][1]
    assert best.score == pytest.approx(scored[0][0], abs=1e-5)
    assert sum(best.positional_scores) / (len(best.tokens) + 1) ** lenpen == pytest.approx(best.score, abs=1e-5)


@pytest.mark.parametrize("opts", [dict(beam=4, lenpen=0.6), dict(beam=1), dict(beam=3, no_repeat_ngram_size=2),
                                  dict(beam=2, min_len=5)])
def test_cached_decoding_equals_full_recomputation(opts):
    m = model(tgt_vocab=30)
    src = sources()
    cfg = SearchConfig(max_len_b=12, **opts)
    assert_same_hypotheses(beam_search(m, src, cfg), beam_search(m, src, cfg, use_cache=False))


def test_greedy_is_argmax_decoding():
    m = model(tgt_vocab=30)
    src = sources(B=1)
    hyp = beam_search(m, src, SearchConfig(beam=1, max_len_b=10))[0][0]
    prev = [EOS]
    for _ in range(10):  # max_len_b=10 tokens, then </s> is forced (fairseq)
        lp = F.log_softmax(m(src, torch.tensor([prev]))[0, -1], -1)
        lp[PAD] = -math.inf
        tok = int(lp.argmax())
        if tok == EOS:
            break
        prev.append(tok)
    assert hyp.tokens == prev[1:]


def test_batching_and_padding_do_not_change_results():
    m = model(tgt_vocab=30)
    src = sources()
    cfg = SearchConfig(beam=3, max_len_b=8)
    batched = beam_search(m, src, cfg)
    for i in range(src.size(0)):
        row = src[i: i + 1]
        row = row[:, row[0].ne(PAD)]
        alone = beam_search(m, row, SearchConfig(beam=3, max_len_a=0, max_len_b=8))[0]
        assert alone[0].tokens == batched[i][0].tokens
        assert alone[0].score == pytest.approx(batched[i][0].score, abs=1e-5)


def test_no_repeat_ngram_and_fixed_length():
    m = model(tgt_vocab=6)  # tiny vocabulary: repeats are likely without the ban
    src = sources(B=2)
    for hyp in (h[0] for h in beam_search(m, src, SearchConfig(beam=2, max_len_b=12, no_repeat_ngram_size=2))):
        grams = list(zip([EOS] + hyp.tokens, hyp.tokens))
        assert len(grams) == len(set(grams))
    fixed = beam_search(m, src, SearchConfig(beam=2, max_len_b=9, fixed_length=True))
    assert all(len(h.tokens) == 9 for hyps in fixed for h in hyps)


def test_bad_search_config():
    with pytest.raises(lf.LightformerError, match="beam=0"):
        SearchConfig(beam=0)


@pytest.mark.parametrize("opts", [dict(beam=4, lenpen=0.6, max_len_b=12), dict(beam=1, max_len_b=9),
                                  dict(beam=3, max_len_b=7, fixed_length=True)])
def test_static_shape_decoding_equals_dynamic(opts):
    """The path CUDA graphs capture: fixed buffers, device-side step, full-capacity masked attention."""
    m = model(tgt_vocab=30)
    src = sources()
    cfg = SearchConfig(**opts)
    assert_same_hypotheses(beam_search(m, src, cfg, static=True), beam_search(m, src, cfg))


def test_cuda_graph_needs_a_static_cache():
    from lightformer.decode.cuda_graph import GraphedDecoderStep

    m = model(tgt_vocab=30)
    cache = init_cache(m.decoder, m.encoder(sources()))
    with pytest.raises(ValueError, match="static cache"):
        GraphedDecoderStep(m.decoder, cache)


def test_refilled_static_cache_decodes_a_new_source_like_a_fresh_one():
    m = model(tgt_vocab=30)
    a, b = sources(), sources()
    b[:, :-1] = torch.flip(b[:, :-1], dims=[1])  # another source of the same shape
    b[0, :2] = PAD
    enc_a = m.encoder(a)
    enc_a.out = enc_a.out.repeat_interleave(3, 0)
    enc_a.padding_mask = enc_a.padding_mask.repeat_interleave(3, 0)
    cache = init_cache(m.decoder, enc_a, capacity=9, static=True)
    enc_b = m.encoder(b)
    enc_b.out = enc_b.out.repeat_interleave(3, 0)
    enc_b.padding_mask = enc_b.padding_mask.repeat_interleave(3, 0)
    cache.step.fill_(5)
    refill_cache(m.decoder, cache, enc_b)
    fresh = init_cache(m.decoder, enc_b, capacity=9, static=True)
    assert int(cache.step) == 0 and not cache.self_mask.any()
    for x, y in zip(cache.layers, fresh.layers):
        assert torch.equal(x.cross_k, y.cross_k) and torch.equal(x.cross_v, y.cross_v)


def test_static_cache_masks_its_unwritten_tail():
    m = model(tgt_vocab=30)
    src = sources(B=2, S=5)
    enc = m.encoder(src)
    static = init_cache(m.decoder, enc, capacity=8, static=True)
    assert all(not lc.k.any() and not lc.v.any() for lc in static.layers)  # zeros, never garbage
    for lc in static.layers:  # a finite but huge tail must not leak through the mask
        lc.k[:, :, 3:] = 1e30
        lc.v[:, :, 3:] = 1e30
    dynamic = init_cache(m.decoder, enc)
    prev = torch.full((2, 3), EOS)
    prev[:, 1:] = torch.tensor([[5, 6], [7, 8]])
    for t in range(3):
        a = m.decoder(prev[:, t: t + 1], None, static)
        b = m.decoder(prev[:, : t + 1], None, dynamic)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
