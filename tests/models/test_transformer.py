import math

import pytest
import torch

import lightformer as lf
from lightformer.config import BOS, EOS, PAD, UNK
from lightformer.decode.cache import init_cache
from lightformer.models.transformer import sinusoidal_table
from tests.conftest import batch, tiny


def test_special_symbols_match_fairseq():
    assert (BOS, PAD, EOS, UNK) == (0, 1, 2, 3)


def test_iwslt_parameter_count_matches_fairseq():
    m = lf.build_model("transformer_iwslt_de_en", 8848, 6632, share_decoder_input_output_embed=True)
    c = lf.count_parameters(m)
    assert c["total"] == 39_469_056
    assert c["body"] == 31_543_296
    assert c["embedding"] == (8848 + 6632) * 512


def test_wmt_base_parameter_count_matches_fairseq():
    m = lf.build_model("transformer_wmt_en_de", 32768, 32768, share_all_embeddings=True)
    c = lf.count_parameters(m)
    assert c["total"] == 60_915_712
    assert c["embedding"] == 32768 * 512 and c["output_projection"] == 0


def test_wmt_big_parameter_count():
    m = lf.build_model("transformer_wmt_en_de_big", 32768, 32768, share_all_embeddings=True)
    assert round(lf.count_parameters(m)["total"] / 1e5) == 2099  # 209.9M, docs/reference.md §3


def test_untied_output_projection_is_counted_apart():
    m = lf.build_model("transformer_tiny", 43, 37)
    c = lf.count_parameters(m)
    assert c["output_projection"] == 37 * 32
    assert c["total"] == c["embedding"] + c["output_projection"] + c["body"]
    assert c["total"] == sum(p.numel() for p in m.parameters())


def test_pre_ln_adds_final_layer_norms():
    post = lf.count_parameters(lf.build_model("transformer_tiny", 43, 37))["total"]
    pre = lf.count_parameters(lf.build_model("transformer_tiny", 43, 37, normalize_before=True))["total"]
    assert pre - post == 2 * 2 * 32


def test_fairseq_initialisation():
    m = lf.build_model("transformer_iwslt_de_en", 8848, 6632, seed=3)
    emb = m.encoder.embed_tokens.weight
    assert torch.all(emb[PAD] == 0)
    assert emb.std().item() == pytest.approx(512 ** -0.5, rel=0.02)
    attn = m.encoder.layers[0].self_attn
    bound = math.sqrt(6 / 1024) / math.sqrt(2)  # xavier-uniform with gain 1/sqrt(2)
    for proj in (attn.q_proj, attn.k_proj, attn.v_proj):
        assert proj.weight.abs().max() <= bound
        assert proj.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert attn.out_proj.weight.abs().max() <= math.sqrt(6 / 1024)
    assert torch.all(attn.out_proj.bias == 0)


def test_sinusoidal_table_layout():
    t = sinusoidal_table(10, 8, PAD)
    assert torch.all(t[PAD] == 0)
    freq = math.exp(-math.log(10000) / 3)  # half=4 -> step log(10000)/(half-1)
    assert t[5, 1].item() == pytest.approx(math.sin(5 * freq), abs=1e-6)  # sin half first
    assert t[5, 4].item() == pytest.approx(math.cos(5.0), abs=1e-6)  # then cos, frequency 1 first


def test_seed_makes_init_reproducible_without_touching_global_rng():
    state = torch.get_rng_state()
    a = lf.build_model("transformer_tiny", 43, 37, seed=7)
    assert torch.equal(state, torch.get_rng_state())
    b = lf.build_model("transformer_tiny", 43, 37, seed=7)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_logits_shape_and_left_padding_invariance():
    m = tiny()
    src, prev = batch()
    logits = m(src, prev)
    assert logits.shape == (3, 6, 37)
    # the same source without its left padding gives the same outputs
    alone = m(src[:1, 2:], prev[:1])
    torch.testing.assert_close(logits[:1], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pre_ln", [False, True])
def test_incremental_decoding_matches_teacher_forcing(pre_ln):
    m = tiny(normalize_before=pre_ln)
    src, prev = batch(pad_rows=False)
    src[0, :2] = 1  # padded source, unpadded decoder prefix (as in beam search)
    full = m(src, prev)
    cache = init_cache(m.decoder, m.encoder(src), capacity=2)  # forces buffer growth
    steps = [m.decoder(prev[:, : t + 1], None, cache) for t in range(prev.size(1))]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == prev.size(1)


def test_incremental_chunk_then_steps_and_reorder():
    m = tiny()
    src, prev = batch(pad_rows=False)
    src[2, :3] = 1
    cache = init_cache(m.decoder, m.encoder(src))
    first = m.decoder(prev[:, :3], None, cache)  # three tokens at once: causal with offset
    order = torch.tensor([2, 0, 1])
    cache.reorder(order)
    rest = [m.decoder(prev[order, : t + 1], None, cache) for t in range(3, prev.size(1))]
    full = m(src[order], prev[order])
    torch.testing.assert_close(first[order], full[:, :3], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat(rest, 1), full[:, 3:], atol=1e-5, rtol=1e-5)


def test_dropout_only_in_training():
    m = lf.build_model("transformer_tiny", 43, 37, dropout=0.3, attention_dropout=0.1, activation_dropout=0.1)
    src, prev = batch()
    m.train()
    assert not torch.equal(m(src, prev), m(src, prev))
    m.eval()
    assert torch.equal(m(src, prev), m(src, prev))


def test_bad_model_config_is_a_one_line_error():
    with pytest.raises(lf.LightformerError, match="one joined dictionary"):
        lf.build_model("transformer_tiny", 43, 37, share_all_embeddings=True)
    with pytest.raises(lf.LightformerError, match="unknown architecture"):
        lf.build_model("transformer_huge", 43, 37)
    with pytest.raises(lf.LightformerError, match="unknown model option"):
        lf.build_model("transformer_tiny", 43, 37, widht=3)
    with pytest.raises(lf.LightformerError, match="dropout"):
        lf.build_model("transformer_tiny", 43, 37, dropout=1.5)
