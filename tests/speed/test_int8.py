"""The int8 CPU path: every product replaced, the function kept to int8 rounding, bad asks refused."""
import pytest
import torch
import torch.nn as nn

import lightformer as lf
from lightformer.decode.beam import SearchConfig, beam_search
from lightformer.models.lowrank import LowRankLinear
from lightformer.speed.bench import SpeedConfig, run_speed
from lightformer.speed.fast import StackedBasisQKV, prepare_for_inference
from lightformer.speed.int8 import Int8Linear, Int8LowRank
from tests.conftest import batch, trained_like


@pytest.mark.parametrize("opts", [None, dict(rank=12), dict(rank=12, share_qkv=True),
                                  dict(rank=10, share_layers=2, roles=["body", "embeddings"])])
def test_int8_model_keeps_the_function_to_rounding(opts):
    dense = trained_like(lf.build_model("transformer_tiny6", 40, 40, seed=1, share_all_embeddings=True)).eval()
    model = lf.compress(dense, **opts) if opts else dense
    ref, q = prepare_for_inference(model), prepare_for_inference(model, int8=True)
    left = [n for n, m in q.named_modules() if isinstance(m, nn.Linear)
            or (isinstance(m, LowRankLinear) and not n.endswith(("k_proj", "v_proj")))]
    assert not left, left  # every product is int8 (cross-attention k/v of a shared basis stay: once per source)
    assert isinstance(q.decoder.output_projection, (Int8Linear, Int8LowRank))  # the tied logits too
    qkv = q.encoder.layers[0].self_attn.qkv_proj
    if isinstance(qkv, StackedBasisQKV):  # separate bases: three small int8 products, not one block-diagonal
        assert [h.in_features for h in qkv.heads] == qkv.ranks and all(isinstance(h, Int8Linear) for h in qkv.heads)
    src, prev = batch(40, 40)
    with torch.inference_mode():
        a, b = ref(src, prev), q(src, prev)
    assert (a - b).abs().max() / a.abs().max() < 0.08
    assert torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.99
    hyps = beam_search(q, src, SearchConfig(beam=3, max_len_b=6))
    assert len(hyps) == src.size(0) and all(h for h in hyps)


def test_int8_rows_and_refusals():
    m = lf.build_model("transformer_tiny", 30, 30, seed=1)
    rows = run_speed({"a": m}, SpeedConfig(int8=True, runs=1, warmup=0, src_len=5, threads=1), progress=False)
    assert rows[0]["int8"] is True and rows[0]["compute_type"] == "int8_float32"
    with pytest.raises(lf.LightformerError, match="CPU path"):
        prepare_for_inference(m, int8=True, device="meta")
    with pytest.raises(lf.LightformerError, match="fp32"):
        SpeedConfig(int8=True, dtype="bf16")
    with pytest.raises(lf.LightformerError, match="fast path"):
        SpeedConfig(int8=True, fast=False)
