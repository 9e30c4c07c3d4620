"""The runtime engines (ONNX Runtime, OpenVINO) decode what eager decoding decodes: on a trained
tiny model, the same hypotheses for every kind of model the inference path produces, greedy and
beam, with hypotheses finishing at different steps; ONNX Runtime's int8 within its tolerance.
Each model kind is exported once and loaded in both runtimes."""
import pytest
import torch

import lightformer as lf
from lightformer.data.batching import collate
from lightformer.decode import SearchConfig, beam_search
from lightformer.errors import LightformerError
from lightformer.export.onnx import export_onnx
from lightformer.speed.fast import prepare_for_inference
from lightformer.speed.runtime import RuntimeSearch, check_runtime
from tests.conftest import reverse_model

# the trained model and the exports are built once, on one worker, and kept for the session
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("runtime")]

V = 24
KINDS = {
    "dense": None,
    "factorised": dict(rank=12, roles=["body"]),  # below the break-even rank 16 of a 32x32 product: kept
    "shared-basis": dict(rank=12, roles=["body"], share_qkv=True, share_layers=2),
    "factorised-embedding": dict(rank={"all": 12, "embeddings": 6}, roles=["body", "embeddings"]),
}


@pytest.fixture(scope="session")
def trained():
    return reverse_model(V)


@pytest.fixture(scope="session")
def exported(trained, tmp_path_factory):
    """{kind: (the prepared model, its ONNX export)}"""
    out = {}
    for kind, how in KINDS.items():
        model = prepare_for_inference(trained if how is None else lf.compress(trained, **how).eval())
        out[kind] = model, export_onnx(model, tmp_path_factory.mktemp(kind))
    return out


def sources(n=8, seed=7):
    """Sequences of 3-8 tokens to reverse, left-padded to one batch."""
    g = torch.Generator().manual_seed(seed)
    rows = [torch.cat([torch.randint(4, V, (int(torch.randint(3, 9, (1,), generator=g)),), generator=g),
                       torch.tensor([2])]) for _ in range(n)]
    return collate(rows)["src_tokens"]


def assert_same(got, want, rel=1e-4):
    assert [[h.tokens for h in hs] for hs in got] == [[h.tokens for h in hs] for hs in want]
    for a, b in zip(got, want):
        assert [h.score for h in a] == pytest.approx([h.score for h in b], rel=rel, abs=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_runtime_decoding_gives_eager_tokens(exported, kind, runtime):
    model, export = exported[kind]
    engine = RuntimeSearch(model, runtime, export=export)
    src = sources()
    assert bool(src.eq(1).any())  # a padded batch: the memory mask is exercised
    for beam in (5, 1):
        cfg = SearchConfig(beam=beam, max_len_b=12, lenpen=0.6)
        want = beam_search(model, src, cfg)  # eager, dynamic shapes: the reference
        assert_same(beam_search(model, src, cfg, engine=engine), want)
        if beam > 1:  # hypotheses finished at different steps: the </s> bookkeeping ran
            assert len({len(h.tokens) for hs in want for h in hs}) > 1
    one = sources(n=1, seed=3)  # a new shape (batch, source length) on the same graphs
    cfg = SearchConfig(beam=3, max_len_b=9, no_repeat_ngram_size=2)
    assert_same(beam_search(model, one, cfg, engine=engine), beam_search(model, one, cfg))


def test_int8_decodes_the_trained_model_as_fp32_does(exported):
    """Dynamic int8 changes the function (a few % per product), not what a trained model says."""
    for kind in ("dense", "factorised"):
        model, export = exported[kind]
        cfg = SearchConfig(beam=4, max_len_b=12)
        want = beam_search(model, sources(), cfg)
        got = beam_search(model, sources(), cfg, engine=RuntimeSearch(model, int8=True, export=export))
        assert [hs[0].tokens for hs in got] == [hs[0].tokens for hs in want]  # the best hypotheses
        # scores are mean log-probabilities per token (lenpen 1): within a few hundredths of a nat
        assert [hs[0].score for hs in got] == pytest.approx([hs[0].score for hs in want], abs=0.05)


def test_encoder_output_is_ours_and_refusals(exported, trained):
    model, export = exported["shared-basis"]
    engine = RuntimeSearch(model, export=export)
    src = sources()
    enc = engine.encoder(src)
    torch.testing.assert_close(enc.out, model.encoder(src).out, atol=1e-5, rtol=1e-4)
    kv = model.decoder.layers[1].encoder_attn.kv(model.encoder(src).out)
    torch.testing.assert_close(enc.cross_v[1], kv[1], atol=1e-5, rtol=1e-4)
    with pytest.raises(LightformerError, match="CPU path"):
        check_runtime("onnxruntime", torch.device("cuda"))
    with pytest.raises(LightformerError, match="unknown"):
        check_runtime("tensorrt", torch.device("cpu"))
    with pytest.raises(LightformerError, match="fp32 model"):
        RuntimeSearch(prepare_for_inference(trained, int8=True))


def test_export_onnx_writes_a_directory_a_runtime_decodes_from(trained, tmp_path):
    """`lightformer export onnx`: the two graphs and their description; the same tokens when loaded."""
    import json

    from lightformer.checkpoint import save_checkpoint
    from lightformer.cli import main

    save_checkpoint(trained, tmp_path / "m.safetensors")
    out = tmp_path / "onnx"
    assert main(["export", "onnx", str(tmp_path / "m.safetensors"), "--out", str(out)]) == 0
    described = json.loads((out / "lightformer_export.json").read_text())
    assert described["step"][:4] == ["token", "step", "self_mask", "memory_mask"] and not described["int8"]
    model = prepare_for_inference(trained)
    engine = RuntimeSearch(model, export=(out / "encoder.onnx", out / "step.onnx"))
    cfg = SearchConfig(beam=4, max_len_b=12)
    assert_same(beam_search(model, sources(), cfg, engine=engine), beam_search(model, sources(), cfg))
    # an existing output is not replaced without --force (a usage error, exit 2)
    assert main(["export", "onnx", str(tmp_path / "m.safetensors"), "--out", str(out)]) == 2
