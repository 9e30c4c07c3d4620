"""The CTranslate2 export computes our function: same log-probabilities, and the same greedy and
beam output token for token on a trained tiny model (a random one has near-uniform, tie-prone
distributions, so it would test the tie-breaking of two searches rather than the export)."""
import json

import ctranslate2  # the speed extra; part of the dev install
import pytest
import torch
import torch.nn.functional as F

import lightformer as lf
from lightformer.data.batching import collate
from lightformer.decode.beam import SearchConfig, beam_search
from lightformer.errors import LightformerError
from lightformer.export.ct2 import (
    MARKER,
    export_ct2,
    factorised_modules,
    read_export,
    synthetic_symbols,
)
from tests.conftest import reverse_model, trained_like

V = 24


# its fixture is built once: every test on one worker (xdist_group), kept for the session
# (a module fixture is rebuilt whenever the worker runs another module in between)
pytestmark = pytest.mark.xdist_group("ct2")


@pytest.fixture(scope="session")
def trained():
    return reverse_model(V)


def sources(n=12, seed=7):
    g = torch.Generator().manual_seed(seed)
    return [torch.cat([torch.randint(4, V, (int(torch.randint(3, 9, (1,), generator=g)),), generator=g),
                       torch.tensor([2])]) for _ in range(n)]


def ct2_decode(translator, srcs, beam, max_len, lenpen=1.0):
    syms = synthetic_symbols(V)
    index = {s: i for i, s in enumerate(syms)}
    res = translator.translate_batch([[syms[i] for i in s[:-1].tolist()] for s in srcs], beam_size=beam,
                                     max_decoding_length=max_len, length_penalty=lenpen)
    return [[index[t] for t in r.hypotheses[0]] for r in res]


def our_decode(model, srcs, beam, max_len, lenpen=1.0):
    src = collate(srcs)["src_tokens"]
    hyps = beam_search(model, src, SearchConfig(beam=beam, max_len_b=max_len, lenpen=lenpen))
    return [h[0].tokens for h in hyps]


@pytest.mark.parametrize("beam", [1, 5])
def test_ct2_decodes_token_for_token_like_us(trained, tmp_path, beam):
    export_ct2(trained, tmp_path / "ct2")
    tr = ctranslate2.Translator(str(tmp_path / "ct2"), device="cpu", intra_threads=1)
    srcs = sources()
    ours = our_decode(trained, srcs, beam, 20)
    reversed_ok = sum(o == s[:-1].flip(0).tolist() for o, s in zip(ours, srcs))
    assert reversed_ok >= len(srcs) - 2, reversed_ok  # a trained model: decisions are not near-ties
    assert ct2_decode(tr, srcs, beam, 20) == ours


def test_factorised_model_exports_merged_and_exact(trained, tmp_path):
    small = lf.compress(trained, rank=6, share_qkv=True)
    report = export_ct2(small, tmp_path / "ct2")
    # every factorised matrix once: 2 encoder layers x 6 + 2 decoder layers x 10 + 2 embeddings (the
    # decoder's also gives the tied output projection, counted once)
    assert report["merged_factors"] == factorised_modules(small) == 34 and "merged" in report["note"]
    assert json.loads((tmp_path / "ct2" / MARKER).read_text())["merged_factors"] == report["merged_factors"]
    tr = ctranslate2.Translator(str(tmp_path / "ct2"), device="cpu", intra_threads=1)
    src = sources(4)
    syms = synthetic_symbols(V)
    tgt = [s.flip(0)[1:] for s in src]  # any target: compare per-token log-probabilities
    scored = tr.score_batch([[syms[i] for i in s[:-1].tolist()] for s in src],
                            [[syms[i] for i in t.tolist()] for t in tgt])
    for s, t, r in zip(src, tgt, scored):
        prev = torch.cat([torch.tensor([2]), t])[None]
        with torch.no_grad():
            lp = F.log_softmax(small(s[None], prev).float(), -1)[0]
        ours = lp.gather(1, torch.cat([t, torch.tensor([2])])[:, None])[:, 0]
        torch.testing.assert_close(torch.tensor(r.log_probs), ours, atol=1e-4, rtol=1e-4)


def test_export_refuses_and_reads_back(tmp_path):
    m = trained_like(lf.build_model("transformer_tiny", V, V, seed=1)).eval()
    export_ct2(m, tmp_path / "a")
    with pytest.raises(LightformerError, match="exists"):
        export_ct2(m, tmp_path / "a")
    got = read_export(tmp_path / "a")
    assert got["src_vocab"] == V and len(got["target_symbols"]) == V and got["merged_factors"] == 0
    with pytest.raises(LightformerError, match="not a CTranslate2 export"):
        read_export(tmp_path)
    with pytest.raises(LightformerError, match="symbols"):
        export_ct2(m, tmp_path / "b", src_symbols=["<s>"])


@pytest.mark.parametrize("protocol", ["latency", "throughput"])
def test_ct2_entries_are_timed_with_ours_under_the_same_protocol(tmp_path, protocol):
    from lightformer.speed.bench import SpeedConfig, run_speed
    from lightformer.speed.ct2 import CT2Model

    m = trained_like(lf.build_model("transformer_tiny", V, V, seed=1)).eval()
    export_ct2(m, tmp_path / "ct2")
    models = {"ours": m, "ct2": CT2Model(str(tmp_path / "ct2")), "ct2_int8": CT2Model(str(tmp_path / "ct2"), "int8")}
    cfg = SpeedConfig(protocol=protocol, beam=3, src_len=7, runs=2, warmup=1, batch=4, sentences=6, threads=1)
    rows = run_speed(models, cfg, progress=False)
    assert [r["engine"] for r in rows] == ["lightformer", "ctranslate2", "ctranslate2"]
    assert [r["compute_type"] for r in rows] == ["fp32", "float32", "int8_float32"]
    # fixed length: CTranslate2 generates as many tokens as our search (tgt_len + </s> per sentence)
    sentences = 1 if protocol == "latency" else 6
    assert [r["tokens_per_run"] for r in rows] == [sentences * 8] * 3 and rows[1]["total_ms"] > 0
    assert rows[1]["params"] <= rows[0]["params"]  # zero biases are dropped by CTranslate2


def test_speed_refuses_bad_ct2_entries(tmp_path):
    from tests.integrity.helpers import refused

    m = lf.build_model("transformer_tiny", V, V, seed=1)
    lf.save_checkpoint(m, tmp_path / "m.safetensors")
    export_ct2(lf.build_model("transformer_tiny", V + 8, V + 8, seed=1), tmp_path / "other")
    refused("speed", tmp_path / "m.safetensors", f"ct2:{tmp_path}", "--runs", "1", expect="not a CTranslate2 export")
    refused("speed", tmp_path / "m.safetensors", f"ct2:{tmp_path / 'other'}", "--runs", "1",
            expect="different vocabularies")
    refused("speed", tmp_path / "m.safetensors", f"ct2:{tmp_path / 'other'}:int4", "--runs", "1",
            expect="unknown precision")
