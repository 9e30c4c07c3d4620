"""Eckart–Young and exactness of SVD weight transfer."""
import numpy as np
import pytest
import torch

import lightformer as lf
from lightformer.compress.transfer import group_svd
from lightformer.models.lowrank import LowRankLinear
from tests.conftest import batch, tiny


def _truncated(M: np.ndarray, r: int) -> np.ndarray:
    U, S, Vt = np.linalg.svd(M, full_matrices=False)  # independent reference: numpy's LAPACK call
    return (U[:, :r] * S[:r]) @ Vt[:r]


def _discarded(M: np.ndarray, r: int) -> float:
    S = np.linalg.svd(M, compute_uv=False)
    return float(np.sqrt((S[r:] ** 2).sum() / (S ** 2).sum()))


@pytest.mark.parametrize("split", ["balanced", "left", "right"])
def test_single_matrix_is_the_truncated_svd(split):
    W = torch.randn(24, 40, dtype=torch.float64)
    (A,), (B,), S = group_svd([W], "none", 7, split)
    np.testing.assert_allclose((A @ B).numpy(), _truncated(W.numpy(), 7), atol=1e-10)
    rel = torch.linalg.norm(W - A @ B) / torch.linalg.norm(W)
    assert rel.item() == pytest.approx(_discarded(W.numpy(), 7), rel=1e-9)


def test_balanced_split_puts_root_sigma_on_both_sides():
    W = torch.randn(30, 20, dtype=torch.float64)
    (A,), (B,), S = group_svd([W], "none", 5, "balanced")
    torch.testing.assert_close(A.T @ A, torch.diag(S[:5]))
    torch.testing.assert_close(B @ B.T, torch.diag(S[:5]))


def test_shared_input_basis_is_the_svd_of_the_row_stack():
    Ws = [torch.randn(16, 24, dtype=torch.float64) for _ in range(3)]
    As, (B,), S = group_svd(Ws, "in", 6, "balanced")
    stack = torch.cat(Ws, 0).numpy()
    approx = _truncated(stack, 6)
    for i, A in enumerate(As):
        assert A.shape == (16, 6)
        np.testing.assert_allclose((A @ B).numpy(), approx[16 * i: 16 * (i + 1)], atol=1e-10)
    got = torch.linalg.norm(torch.cat([A @ B for A in As]) - torch.cat(Ws)) / torch.linalg.norm(torch.cat(Ws))
    assert got.item() == pytest.approx(_discarded(stack, 6), rel=1e-9)


def test_shared_output_basis_is_the_svd_of_the_column_stack():
    Ws = [torch.randn(16, 24, dtype=torch.float64) for _ in range(2)]
    (A,), Bs, S = group_svd(Ws, "out", 5, "right")
    approx = _truncated(torch.cat(Ws, 1).numpy(), 5)
    for i, B in enumerate(Bs):
        np.testing.assert_allclose((A @ B).numpy(), approx[:, 24 * i: 24 * (i + 1)], atol=1e-10)


def test_tied_factors_are_the_truncated_svd_of_the_mean():
    Ws = [torch.randn(12, 10, dtype=torch.float64) for _ in range(3)]
    (A,), (B,), _ = group_svd(Ws, "both", 4, "balanced")
    np.testing.assert_allclose((A @ B).numpy(), _truncated(torch.stack(Ws).mean(0).numpy(), 4), atol=1e-10)


def test_model_report_matches_discarded_energy():
    m = tiny()
    c = lf.compress(m, rank=5, roles="enc_self_q", share_layers=2, share_roles="enc_self_q")
    rows = c.compression["report"]
    assert [r["matrix"] for r in rows] == ["encoder.layers.0.self_attn.q_proj", "encoder.layers.1.self_attn.q_proj"]
    stack = torch.cat([m.encoder.layers[i].self_attn.q_proj.weight for i in (0, 1)]).detach().double().numpy()
    assert rows[0]["group_rel_error"] == pytest.approx(_discarded(stack, 5), rel=1e-6)
    for i, row in enumerate(rows):
        W = m.encoder.layers[i].self_attn.q_proj.weight.double()
        lr = c.encoder.layers[i].self_attn.q_proj
        err = (torch.linalg.norm(W - lr.weight.double()) / torch.linalg.norm(W)).item()
        assert row["rel_error"] == pytest.approx(err, rel=1e-4)


# full rank of each group's stack: with d=32, FFN 64 and groups of 2 layers, the row stack of
# fc2 (2 x 32x64) and the column stack of fc1 (64 x 2*32) have rank 64, everything else 32
IN_FULL = {"all": 32, "enc_ffn_out": 64, "dec_ffn_out": 64}
OUT_FULL = {"all": 32, "enc_ffn_in": 64, "dec_ffn_in": 64}


@pytest.mark.parametrize("opts", [
    dict(rank=32),
    dict(rank=IN_FULL, share_layers=2, share_side="in"),
    dict(rank=IN_FULL, share_layers=2, share_side="in", share_qkv=True),
    dict(rank=OUT_FULL, share_layers=2, share_side="out"),
], ids=["plain", "shared-in", "shared-qkv", "shared-out"])
def test_full_rank_transfer_reproduces_dense_logits(opts):
    m = tiny()
    src, prev = batch()
    c = lf.compress(m, **opts).eval()
    assert any(isinstance(x, LowRankLinear) for x in c.modules())
    torch.testing.assert_close(c(src, prev), m(src, prev), atol=1e-5, rtol=1e-5)


def test_tied_embeddings_full_rank_with_shared_all():
    m = tiny(src=41, tgt=41, share_all_embeddings=True)
    src, prev = batch(41, 41)
    c = lf.compress(m, rank=32).eval()
    assert c.encoder.embed_tokens is c.decoder.embed_tokens
    assert torch.all(c.encoder.embed_tokens.A[1] == 0)  # pad row stays zero
    torch.testing.assert_close(c(src, prev), m(src, prev), atol=1e-5, rtol=1e-5)


def test_compress_leaves_input_untouched_and_copies_the_rest():
    m = tiny()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    c = lf.compress(m, rank=4, roles="ffn")
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert lf.count_parameters(m)["factorized"] == 0
    lc, ld = c.encoder.layers[1], m.encoder.layers[1]
    assert torch.equal(lc.fc1.bias, ld.fc1.bias) and lc.fc1.bias is not ld.fc1.bias
    assert torch.equal(lc.final_layer_norm.weight, ld.final_layer_norm.weight)
    assert torch.equal(lc.self_attn.q_proj.weight, ld.self_attn.q_proj.weight)  # not factorised


def test_random_init_has_same_shapes_and_no_transfer():
    m = tiny()
    svd = lf.compress(m, rank=6, share_layers=2)
    rnd = lf.compress(m, rank=6, share_layers=2, init="random", seed=4)
    shapes = lambda x: {k: tuple(v.shape) for k, v in x.state_dict().items()}  # noqa: E731
    assert shapes(svd) == shapes(rnd)
    assert lf.count_parameters(svd) == lf.count_parameters(rnd)
    assert rnd.compression["report"] is None
    assert not torch.equal(svd.encoder.layers[0].fc1.bias, rnd.encoder.layers[0].fc1.bias)
    again = lf.compress(m, rank=6, share_layers=2, init="random", seed=4)
    assert all(torch.equal(a, b) for a, b in zip(rnd.state_dict().values(), again.state_dict().values()))
    # product variance close to the dense xavier init's (2 / (in + out))
    w = torch.cat([l.fc1.weight.flatten() for l in rnd.encoder.layers]).detach()
    assert w.var().item() == pytest.approx(2 / (32 + 64), rel=0.35)


def test_compressing_twice_is_refused():
    c = lf.compress(tiny(), rank=4)
    with pytest.raises(lf.LightformerError, match="already compressed"):
        lf.compress(c, rank=2)


def test_random_svd_is_the_svd_of_a_fresh_model_and_takes_nothing_from_the_trained_one():
    """random_svd: SVD transfer's factor balance from a freshly initialised dense model; two trained
    parents of one architecture give the same factors (nothing of their weights reaches it), and they
    equal the SVD of a fresh model built with the compression seed."""
    import lightformer as lf
    from lightformer.compress.transfer import compress

    a = lf.build_model("transformer_tiny", 40, 40, seed=1)
    b = lf.build_model("transformer_tiny", 40, 40, seed=2)
    fa = compress(a, ratio=2.0, init="random_svd", seed=7)
    fb = compress(b, ratio=2.0, init="random_svd", seed=7)
    for (name, p), (_, q) in zip(fa.named_parameters(), fb.named_parameters()):
        torch.testing.assert_close(p, q, msg=name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        fresh = lf.Transformer(a.cfg)
    ref = compress(fresh, ratio=2.0, init="svd")
    layer = "encoder.layers.0.fc1"
    torch.testing.assert_close(fa.get_submodule(layer).A, ref.get_submodule(layer).A)
    # SVD's balanced split: the two factors carry equal norms per rank, unlike `random` (A ~ 1/sqrt(r))
    m = fa.get_submodule(layer)
    torch.testing.assert_close(m.A.norm(dim=0), m.B.norm(dim=1), rtol=1e-4, atol=1e-5)
