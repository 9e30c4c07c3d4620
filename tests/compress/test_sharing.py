"""Shared factors are one tensor: stored, counted and updated once; q/k/v sharing saves FLOPs."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import lightformer as lf
from lightformer.compress.plan import make_plan, planned_total
from lightformer.compress.spec import CompressionSpec
from lightformer.models.lowrank import LowRankLinear
from tests.conftest import batch, tiny


def _q(model, i):
    return model.encoder.layers[i].self_attn.q_proj


def test_input_side_sharing_ties_B_across_consecutive_layers():
    c = lf.compress(tiny("transformer_tiny6"), rank=8, share_layers=3)
    assert _q(c, 0).B is _q(c, 1).B is _q(c, 2).B
    assert _q(c, 3).B is not _q(c, 0).B
    assert _q(c, 0).A is not _q(c, 1).A


def test_output_side_and_full_tying():
    out = lf.compress(tiny("transformer_tiny6"), rank=8, share_layers=2, share_side="out")
    assert _q(out, 0).A is _q(out, 1).A and _q(out, 0).B is not _q(out, 1).B
    both = lf.compress(tiny("transformer_tiny6"), rank=8, share_layers=6, share_side="both")
    assert all(_q(both, i).A is _q(both, 0).A and _q(both, i).B is _q(both, 0).B for i in range(6))
    assert _q(both, 0).bias is not _q(both, 1).bias  # biases stay per layer


def test_share_roles_limits_cross_layer_sharing():
    c = lf.compress(tiny(), rank=8, share_layers=2, share_roles="qkv")
    assert _q(c, 0).B is _q(c, 1).B
    o0, o1 = c.encoder.layers[0].self_attn.out_proj, c.encoder.layers[1].self_attn.out_proj
    assert o0.B is not o1.B


def test_shared_factor_counted_once_and_matches_plan():
    m = tiny("transformer_tiny6")
    for opts in (dict(rank=8), dict(rank=8, share_layers=2), dict(rank=8, share_layers=3, share_side="out"),
                 dict(rank=8, share_layers=6, share_side="both"), dict(rank=8, share_qkv=True, share_layers=2),
                 dict(rank={"body": 8}, share_layers=2)):
        c = lf.compress(m, **opts)
        counts = lf.count_parameters(c)
        unique = {id(p): p.numel() for p in c.parameters()}
        assert counts["total"] == sum(unique.values()) == c.compression["params"], opts
        assert counts["total"] == counts["embedding"] + counts["output_projection"] + counts["body"]
        assert counts["body"] == counts["attention"] + counts["ffn"] + counts["layer_norm"]


def test_shared_factor_receives_the_gradient_of_every_member():
    c = lf.compress(tiny(), rank=8, roles="enc_self_q", share_layers=2, share_roles="enc_self_q").eval()  # no dropout: two passes must agree
    src, prev = batch()
    c(src, prev).sum().backward()
    B = _q(c, 0).B
    params = list(c.parameters())
    assert sum(p is B for p in params) == 1  # the optimizer sees it once
    # gradient equals the sum of both layers' contributions: recompute with the tie broken
    g_shared = B.grad.clone()
    c.zero_grad()
    B1 = torch.nn.Parameter(B.detach().clone())
    _q(c, 1).B = B1
    c(src, prev).sum().backward()
    torch.testing.assert_close(g_shared, B.grad + B1.grad, atol=1e-5, rtol=1e-4)


def test_shared_qkv_basis_is_one_tensor_and_saves_flops():
    m = tiny()
    shared = lf.compress(m, rank=8, roles="enc_self", share_qkv=True).eval()
    plain = lf.compress(m, rank=8, roles="enc_self").eval()
    a = shared.encoder.layers[0].self_attn
    assert a.q_proj.B is a.k_proj.B is a.v_proj.B and a.out_proj.B is not a.q_proj.B
    src, prev = batch()

    def flops(model):
        with FlopCounterMode(display=False) as fc:
            model.encoder(src)
        return fc.get_total_flops()

    B, S, d, r = src.shape[0], src.shape[1], 32, 8
    saved = 2 * B * S * d * r * 2 * 2  # per layer: two input projections (k, v) of x onto B, 2 layers
    assert flops(plain) - flops(shared) == saved


def test_share_qkv_with_cross_layer_out_side_is_refused():
    with pytest.raises(lf.LightformerError, match="share_side='in'"):
        lf.compress(tiny(), rank=4, share_qkv=True, share_layers=2, share_side="out")


def test_group_size_must_divide_layer_count():
    with pytest.raises(lf.LightformerError, match=r"share_layers=4 does not divide the 6 encoder layers; allowed: 1, 2, 3, 6"):
        lf.compress(tiny("transformer_tiny6"), rank=4, share_layers=4)


@pytest.mark.slow  # paper-scale plans (half a minute): make test runs it, make test-fast does not
def test_plan_alone_predicts_paper_scale_counts():
    """The analytic count used by the ratio solver equals the real model's, at paper scale."""
    m = lf.build_model("transformer_iwslt_de_en", 8848, 6632, share_decoder_input_output_embed=True)
    spec = CompressionSpec(rank={"all": 96, "embeddings": 160}, share_layers=2, share_qkv=True)
    c = lf.compress(m, spec)
    assert lf.count_parameters(c)["total"] == planned_total(m.cfg, make_plan(m.cfg, spec))
    assert isinstance(c.decoder.layers[5].encoder_attn.k_proj, LowRankLinear)
