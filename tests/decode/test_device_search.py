"""The whole search step on the device decodes what beam_search decodes: the same hypotheses in
the same order, for every kind of model the inference path produces, on a trained model. Its
finalisation, the part that replaced host decisions with fixed-shape writes, is also checked
against the host's on random candidates. (The CUDA graph of the step runs in the GPU checks,
workflow/scripts/gpu_speed_check.sh.)"""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lightformer as lf
from lightformer.config import EOS
from lightformer.data.batching import collate
from lightformer.decode import SearchConfig, beam_search
from lightformer.decode.beam import _finalise
from lightformer.decode.device_search import Finished, device_beam_search, finalise_on_device
from lightformer.speed.fast import prepare_for_inference
from tests.conftest import reverse_model

V = 24
KINDS = {
    "dense": None,
    "factorised": dict(rank=12, roles=["body"]),
    "shared-basis": dict(rank=12, roles=["body"], share_qkv=True, share_layers=2),
    "factorised-embedding": dict(rank={"all": 12, "embeddings": 6}, roles=["body", "embeddings"]),
}


@pytest.fixture(scope="module")
def models():
    trained = reverse_model(V)
    return {kind: prepare_for_inference(trained if how is None else lf.compress(trained, **how).eval())
            for kind, how in KINDS.items()}


def sources(n=8, seed=7):
    """Sequences of 3-8 tokens to reverse, left-padded to one batch."""
    g = torch.Generator().manual_seed(seed)
    rows = [torch.cat([torch.randint(4, V, (int(torch.randint(3, 9, (1,), generator=g)),), generator=g),
                       torch.tensor([2])]) for _ in range(n)]
    return collate(rows)["src_tokens"]


def assert_same(got, want):
    assert [[h.tokens for h in hs] for hs in got] == [[h.tokens for h in hs] for hs in want]
    for a, b in zip(got, want):
        assert [h.score for h in a] == pytest.approx([h.score for h in b], rel=1e-5, abs=1e-6)
        for x, y in zip(a, b):
            assert x.positional_scores == pytest.approx(y.positional_scores, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_the_device_search_gives_beam_searchs_hypotheses(models, kind):
    model = models[kind]
    for cfg in (SearchConfig(beam=5, lenpen=0.6, max_len_b=12), SearchConfig(beam=1, max_len_b=12),
                SearchConfig(beam=4, max_len_a=0.5, max_len_b=1, min_len=2)):  # too short: the eos_only step ends it
        want = beam_search(model, sources(), cfg)
        assert_same(device_beam_search(model, sources(), cfg), want)
        if cfg.beam > 1 and cfg.max_len_b > 1:  # hypotheses finished at different steps
            assert len({len(h.tokens) for hs in want for h in hs}) > 1


def test_buffers_are_reused_for_a_new_source_and_the_ngram_ban_runs_eagerly(models):
    model, pool = models["shared-basis"], {}
    cfg = SearchConfig(beam=3, max_len_b=10)
    first, second = sources(seed=7), sources(seed=8)
    assert first.shape == second.shape
    device_beam_search(model, first, cfg, graph_pool=pool)
    state = next(iter(pool.values()))
    assert_same(device_beam_search(model, second, cfg, graph_pool=pool), beam_search(model, second, cfg))
    assert list(pool.values()) == [state]  # one set of buffers for the one shape
    # the same rows but another beam, or another option the state bakes in: new buffers, right answers
    twelve = sources(n=12, seed=9)
    twelve = torch.nn.functional.pad(twelve, (first.size(1) - twelve.size(1), 0), value=1)  # left pads: the same width
    for other, src in ((SearchConfig(beam=2, max_len_b=10), twelve),  # 12 x 2 rows, as many as 8 x 3
                       (SearchConfig(beam=3, max_len_b=10, lenpen=0.5), first),
                       (SearchConfig(beam=3, max_len_b=10, no_repeat_ngram_size=2), first)):
        assert_same(device_beam_search(model, src, other, graph_pool=pool), beam_search(model, src, other))
    assert len(pool) == 4
    banned = SearchConfig(beam=3, max_len_b=10, no_repeat_ngram_size=2)
    assert_same(device_beam_search(model, first, banned), beam_search(model, first, banned))
    fixed = SearchConfig(beam=2, max_len_b=6, fixed_length=True)
    got = device_beam_search(model, first, fixed)
    assert_same(got, beam_search(model, first, fixed))
    assert all(len(h.tokens) == 6 for hs in got for h in hs)
    with pytest.raises(ValueError, match="CUDA"):
        device_beam_search(model, first, cfg, cuda_graph=True)


@settings(max_examples=60, deadline=None)
@given(B=st.integers(1, 4), K=st.integers(1, 4), step=st.integers(1, 6), lenpen=st.sampled_from([0.6, 1.0, 1.3]),
       seed=st.integers(0, 2 ** 16), rounds=st.integers(1, 3))
def test_finalising_on_the_device_keeps_what_the_host_keeps(B, K, step, lenpen, seed, rounds):
    """Random candidates, </s> among them often, some scores -inf, over several steps so that
    sentences fill up: the same hypotheses in the same slots as the host's lists."""
    g = torch.Generator().manual_seed(seed)
    width, Vt = step + rounds + 2, 6
    tokens = torch.randint(3, Vt, (B * K, width), generator=g)
    tokens[:, 0] = EOS
    pos_scores = -torch.rand(B * K, width - 1, generator=g)
    host = [[] for _ in range(B)]
    fin = Finished(B, K, width, torch.device("cpu"))
    for s in range(step, step + rounds):
        lprobs = torch.log_softmax(torch.randn(B * K, Vt, generator=g), -1)
        top_scores = -torch.rand(B, 2 * K, generator=g).cumsum(1)
        top_scores[torch.rand(B, 2 * K, generator=g) < 0.15] = -math.inf
        top = (top_scores, torch.randint(0, K, (B, 2 * K), generator=g),
               torch.where(torch.rand(B, 2 * K, generator=g) < 0.4, EOS, torch.randint(3, Vt, (B, 2 * K), generator=g)))
        _finalise(host, torch.arange(B), top, tokens, pos_scores, lprobs, s, K, lenpen)
        finalise_on_device(fin, top, tokens, pos_scores, lprobs, torch.tensor(s + 1), lenpen)
        got = fin.hypotheses()
        want = [sorted(b, key=lambda h: -h.score) for b in host]
        assert [[h.tokens for h in b] for b in got] == [[h.tokens for h in b] for b in want]
        assert [[h.score for h in b] for b in got] == [[h.score for h in b] for b in want]  # the same float32 division
        assert [[h.positional_scores for h in b] for b in got] == [[h.positional_scores for h in b] for b in want]
        assert bool(fin.done) == all(len(b) >= K for b in host)
