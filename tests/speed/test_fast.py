"""The inference path computes the same function as the training-time model."""
import pytest
import torch
import torch.nn as nn

import lightformer as lf
from lightformer.decode import SearchConfig, beam_search
from lightformer.models.lowrank import LowRankLinear
from lightformer.speed.fast import PackedQKV, StackedBasisQKV, prepare_for_inference
from tests.conftest import batch, tiny

CASES = {
    "dense": None,
    "low-rank": dict(rank=6),
    "shared-qkv": dict(rank=6, share_qkv=True, share_layers=2),
    "full-rank-merged": dict(rank=32, roles="body"),
    "mixed": dict(rank={"all": 4, "ffn": 30}),
}


@pytest.mark.parametrize("name", CASES)
def test_fast_path_matches_training_model(name):
    m = tiny()
    model = m if CASES[name] is None else lf.compress(m, CASES[name]).eval()
    fast = prepare_for_inference(model)
    src, prev = batch()
    torch.testing.assert_close(fast(src, prev), model(src, prev), atol=1e-5, rtol=1e-5)
    cfg = SearchConfig(beam=3, max_len_b=8)
    got, ref = beam_search(fast, src, cfg), beam_search(model, src, cfg)
    assert [h[0].tokens for h in got] == [h[0].tokens for h in ref]


def test_merge_follows_break_even_and_keeps_factors_below_it():
    m = tiny()
    fast = prepare_for_inference(lf.compress(m, rank={"all": 4, "ffn": 30}).eval())
    layer = fast.encoder.layers[0]
    assert isinstance(layer.fc1, nn.Linear)  # 30 >= 64*32/96 = 21.3: merged
    assert isinstance(layer.self_attn.out_proj, LowRankLinear)  # 4 < 16: kept
    assert isinstance(layer.self_attn.qkv_proj, StackedBasisQKV)


def test_qkv_fusion_kinds():
    m = tiny()
    dense = prepare_for_inference(m).encoder.layers[0].self_attn.qkv_proj
    assert isinstance(dense, PackedQKV) and type(dense.proj) is nn.Linear and dense.proj.out_features == 3 * 32
    shared = prepare_for_inference(lf.compress(m, rank=6, share_qkv=True).eval()).decoder.layers[1].self_attn.qkv_proj
    assert isinstance(shared, PackedQKV) and type(shared.proj) is LowRankLinear and shared.proj.rank == 6


def test_original_model_is_untouched():
    c = lf.compress(tiny(), rank=6).eval()
    before = {k: v.clone() for k, v in c.state_dict().items()}
    prepare_for_inference(c, dtype=torch.float64)
    assert c.encoder.layers[0].self_attn.q_proj is not None and not hasattr(c.encoder.layers[0].self_attn, "qkv_proj")
    assert all(torch.equal(before[k], v) for k, v in c.state_dict().items())
