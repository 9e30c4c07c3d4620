"""The compiled CPU engine decodes what eager decoding decodes: same tokens, scores to rounding,
for every kind of model the inference path produces, greedy and beam. Slow: every model kind
builds its graphs (~40 s each on two cores; TorchInductor caches them on disk for reruns)."""
import pytest
import torch

import lightformer as lf
from lightformer.config import EOS, PAD
from lightformer.decode import SearchConfig, beam_search
from lightformer.decode.compiled import CompiledSearch, check_compiled
from lightformer.errors import LightformerError
from lightformer.speed.fast import prepare_for_inference
from tests.conftest import trained_like

pytestmark = pytest.mark.slow

KINDS = {
    "dense": None,
    "factorised": dict(rank=12, roles=["body"]),  # below the break-even rank 16 of a 32x32 product: kept
    "shared-basis": dict(rank=12, roles=["body"], share_qkv=True, share_layers=2),
    "factorised-embedding": dict(rank={"all": 12, "embeddings": 6}, roles=["body", "embeddings"]),
}


def trained(kind, **prepare):
    m = lf.build_model("transformer_tiny", 20, 8, seed=3)  # a small target vocabulary: </s> comes early
    with torch.no_grad():  # sharpen the output so hypotheses differ clearly
        trained_like(m, seed=5)
        for p in m.parameters():
            p.mul_(3.0)
    m = m.eval() if KINDS[kind] is None else lf.compress(m.eval(), **KINDS[kind]).eval()
    return prepare_for_inference(m, **prepare)


def sources(B=3, S=6, pads=True):
    g = torch.Generator().manual_seed(9)
    src = torch.randint(4, 20, (B, S), generator=g)
    src[:, -1] = EOS
    if pads:
        src[0, :2] = PAD
    return src


def assert_same(got, want, rel=1e-4):
    """Same hypotheses in the same order; scores to float rounding (sharpened weights give logits
    in the tens, where fused and unfused sums differ in the 5th digit)."""
    assert [[h.tokens for h in hs] for hs in got] == [[h.tokens for h in hs] for hs in want]
    for a, b in zip(got, want):
        assert [h.score for h in a] == pytest.approx([h.score for h in b], rel=rel, abs=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_compiled_decoding_gives_eager_tokens(kind):
    model = trained(kind)
    engine = CompiledSearch(model)
    for beam in (5, 1):
        cfg = SearchConfig(beam=beam, max_len_b=12, lenpen=0.6)
        want = beam_search(model, sources(), cfg)  # eager, dynamic shapes: the reference
        assert_same(beam_search(model, sources(), cfg, engine=engine), want)
        if beam > 1:  # hypotheses finished at different steps: the </s> bookkeeping ran
            assert len({len(h.tokens) for hs in want for h in hs}) > 1


def test_engine_reuses_its_cache_and_graphs_for_a_new_source_and_takes_no_repeat_ngrams():
    model = trained("shared-basis")
    engine = CompiledSearch(model)
    cfg = SearchConfig(beam=3, max_len_b=7)
    first, second = sources(pads=False), sources(pads=False).flip(0)
    beam_search(model, first, cfg, engine=engine)
    assert_same(beam_search(model, second, cfg, engine=engine), beam_search(model, second, cfg))
    assert len(engine._caches) == 1  # one static cache for the one shape
    with torch.inference_mode():
        for length in range(3, 3 + engine.max_caches + 2):  # new shapes: the oldest caches are let go
            engine.state(sources(S=length, pads=False), 3, 7, None)
    assert len(engine._caches) == engine.max_caches
    enc = engine.encoder(second)  # the speed protocol times the encoder separately
    torch.testing.assert_close(enc.out, model.encoder(second).out, atol=1e-5, rtol=1e-5)
    assert_same(beam_search(model, second, cfg, encoder_out=enc, engine=engine), beam_search(model, second, cfg))
    banned = SearchConfig(beam=3, max_len_b=7, no_repeat_ngram_size=2)
    assert_same(beam_search(model, first, banned, engine=engine), beam_search(model, first, banned))


def test_int8_compiles_and_keeps_the_int8_function():
    """The FBGEMM product is one opaque node of the compiled graph: the same int8 arithmetic."""
    model = trained("factorised", int8=True)
    cfg = SearchConfig(beam=4, max_len_b=8)
    assert_same(beam_search(model, sources(), cfg, engine=CompiledSearch(model)), beam_search(model, sources(), cfg),
                rel=1e-3)


def test_compiled_engine_is_refused_off_the_cpu():
    with pytest.raises(LightformerError, match="CPU path"):
        check_compiled(torch.device("cuda"))


def test_speed_times_every_engine_in_one_interleaved_run():
    from lightformer.speed.bench import SpeedConfig, run_speed
    from tests.conftest import tiny

    dense = tiny("transformer_tiny6", src=40, tgt=40)
    models = {"dense": dense, "light": lf.compress(dense, rank=4, share_qkv=True)}
    cfg = SpeedConfig(beam=3, src_len=7, runs=2, warmup=1, threads=1, engines=("eager", "compiled", "onnxruntime"))
    rows = {r["model"]: r for r in run_speed(models, cfg, progress=False)}
    assert list(rows) == ["dense", "light", "dense_compiled", "light_compiled", "dense_onnxruntime",
                          "light_onnxruntime"]
    assert {r["engine"] for r in rows.values()} == {"lightformer", "lightformer-compiled", "lightformer-onnxruntime"}
    assert rows["light_compiled"]["engine_reference"] == "dense_compiled"  # compiled against compiled
    assert rows["light_onnxruntime"]["engine_reference"] == "dense_onnxruntime"
    assert rows["dense_compiled"]["speedup_same_engine"] == 1.0 and rows["dense"]["speedup"] == 1.0
    assert rows["dense_compiled"]["macs_per_tgt_token"] == rows["dense"]["macs_per_tgt_token"]
    for name in models:  # the compiled step dispatches fewer operators (graphs with symbolic sizes: more)
        eager, compiled = rows[name]["launches_per_step"], rows[f"{name}_compiled"]["launches_per_step"]
        assert 0 < compiled < 0.75 * eager, (name, compiled, eager)
        assert rows[f"{name}_onnxruntime"]["launches_unit"].startswith("onnx nodes")
        assert rows[f"{name}_onnxruntime"]["launches_per_step"] > 0 and rows[f"{name}_onnxruntime"]["total_ms"] > 0
