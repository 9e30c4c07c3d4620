"""Data-aware transfer (SVD-LLM whitening, FWSVD, ASVD) and budgeted rank allocation: exact at
full rank, better than plain SVD where theory says so, on budget, and refusing bad input."""
import shutil

import pytest
import torch

import lightformer as lf
from lightformer.compress.calibrate import calibrate, calibration_batches, output_errors
from lightformer.compress.plan import dense_total, make_plan
from lightformer.compress.spec import CompressionSpec
from lightformer.compress.transfer import group_svd
from lightformer.compress.weighted import cholesky, weighted_group_svd
from lightformer.data.indexed import ParallelData, write_split
from lightformer.data.synthetic import write_synthetic
from tests.compress.test_svd import IN_FULL, OUT_FULL
from tests.conftest import batch, trained_like

INITS = ["svd_whiten", "svd_fisher", "asvd"]


# its fixture is built once: every test on one worker (xdist_group), kept for the session
# (a module fixture is rebuilt whenever the worker runs another module in between)
pytestmark = pytest.mark.xdist_group("data-aware")


@pytest.fixture(scope="session")
def setup(tmp_path_factory):
    """A tiny model whose vocabulary matches a synthetic prepared directory."""
    data = write_synthetic(tmp_path_factory.mktemp("calib") / "copy", "copy", train=400, valid=60, test=20)
    pd = ParallelData(data)
    model = trained_like(lf.build_model("transformer_tiny", len(pd.src_dict), len(pd.tgt_dict), seed=1)).eval()
    return model, data, pd


def _logits(model, pd):
    torch.manual_seed(0)
    src, prev = batch(len(pd.src_dict), len(pd.tgt_dict))
    with torch.no_grad():
        return model.eval()(src, prev)


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("sharing", [dict(rank=32), dict(rank=IN_FULL, share_layers=2, share_side="in"),
                                     dict(rank=OUT_FULL, share_layers=2, share_side="out")],
                         ids=["none", "shared-in", "shared-out"])
def test_full_rank_data_aware_transfer_reproduces_the_dense_logits(setup, sharing, init):
    model, data, pd = setup
    light = lf.compress(model, init=init, calib=data, **sharing)
    assert torch.allclose(_logits(light, pd), _logits(model, pd), atol=1e-4)


def test_whitening_lowers_the_output_error_on_the_calibration_inputs(setup):
    """SVD-LLM is optimal for ‖(W − AB)X‖ on the data it saw: never worse than plain SVD there."""
    model, data, pd = setup
    spec = CompressionSpec.from_any(rank=6)
    groups = make_plan(model.cfg, spec)
    members = sorted({m for g in groups for m in g.members})
    cal = calibrate(model, calibration_batches(pd, "train", 8, 4096, 0), members)
    from lightformer.compress.calibrate import group_statistics

    better = 0
    for g in groups:
        weights = [model.get_submodule(p).weight for p in g.members]
        grams, rows = group_statistics(g, cal, "whiten")
        wA, wB, _ = weighted_group_svd(weights, g.side, g.rank, "balanced", grams, rows, 1e-9)
        pA, pB, _ = group_svd(weights, g.side, g.rank, "balanced")
        for white, plain in zip(output_errors(g, weights, wA, wB, cal), output_errors(g, weights, pA, pB, cal)):
            assert white <= plain + 1e-7, (g.name, white, plain)
            better += white < plain - 1e-4
    assert better >= len(groups) // 2  # strictly better on most matrices, not just equal


def test_data_aware_transfer_has_lower_heldout_error_than_plain_svd(setup):
    model, data, _ = setup
    errors = {}
    for init in ["svd", "svd_whiten", "random"]:
        report = lf.compress(model, ratio=3.0, init=init, calib=data).compression["report"]
        errors[init] = sum(r["output_rel_error"] for r in report) / len(report)
    assert errors["svd_whiten"] < errors["svd"] < errors["random"], errors


@pytest.mark.parametrize("alloc", ["energy", "whitened_energy"])
def test_energy_allocation_meets_the_uniform_budget_within_one_rank_step(setup, alloc):
    model, data, _ = setup
    uniform = lf.compress(model, ratio=2.5, calib=data)
    light = lf.compress(model, ratio=2.5, rank_alloc=alloc, calib=data)
    budget, total = uniform.compression["params"], light.compression["params"]
    groups = make_plan(model.cfg, CompressionSpec.from_any(ratio=2.5))
    max_step = max(g.factor_params(2) - g.factor_params(1) for g in groups)
    assert 0 <= budget - total < max_step
    assert lf.count_parameters(light)["total"] <= lf.count_parameters(uniform)["total"]
    ranks = {r["rank"] for r in light.compression["report"]}
    assert len(ranks) > 1  # the ranks now differ per matrix, and the report shows them
    assert dense_total(model.cfg) / total >= 2.5


@pytest.mark.parametrize("side", ["none", "in", "out", "both"])
def test_fwsvd_with_uniform_weights_equals_plain_svd(side):
    g = torch.Generator().manual_seed(3)
    Ws = [torch.randn(12, 9, generator=g, dtype=torch.float64) for _ in range(1 if side == "none" else 3)]
    pA, pB, pS = group_svd(Ws, side, 4, "balanced")
    fA, fB, fS = weighted_group_svd(Ws, side, 4, "balanced", rows=[torch.ones(12, dtype=torch.float64)] * len(Ws),
                                    eps=1e-12)
    for i in range(len(Ws)):
        a, b = (lambda L: L[i if len(L) > 1 else 0])(pA), (lambda L: L[i if len(L) > 1 else 0])(pB)
        fa, fb = (lambda L: L[i if len(L) > 1 else 0])(fA), (lambda L: L[i if len(L) > 1 else 0])(fB)
        assert torch.allclose(a @ b, fa @ fb, atol=1e-9)
    assert torch.allclose(pS / pS[0], fS / fS[0], atol=1e-9)  # one spectrum up to the weights' scale


@pytest.mark.parametrize("init", INITS)
def test_shared_groups_under_each_initialiser(setup, init):
    """Sharing keeps one Parameter per shared factor whatever the initialiser, and is deterministic."""
    model, data, pd = setup
    kw = dict(ratio=2.0, share_layers=2, share_qkv=True, init=init, calib=data, seed=3)
    a, b = lf.compress(model, **kw), lf.compress(model, **kw)
    plain = lf.compress(model, ratio=2.0, share_layers=2, share_qkv=True)
    assert lf.count_parameters(a) == lf.count_parameters(plain)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # deterministic for a seed
    assert a.encoder.layers[0].fc1.B is a.encoder.layers[1].fc1.B  # still one shared basis
    assert torch.isfinite(_logits(a, pd)).all()


def test_bad_calibration_input_is_refused(setup, tmp_path):
    model, data, _ = setup
    with pytest.raises(lf.LightformerError, match="need calibration data: pass --calib-data"):
        lf.compress(model, ratio=2.0, init="svd_whiten")
    with pytest.raises(lf.LightformerError, match="calib_batches=0"):
        lf.compress(model, ratio=2.0, init="svd_whiten", calib=data, calib_batches=0)
    with pytest.raises(lf.LightformerError, match="init='svd_whitened' is invalid; allowed: svd, random, random_svd, svd_whiten"):
        lf.compress(model, ratio=2.0, init="svd_whitened")
    with pytest.raises(lf.LightformerError, match="rank_alloc='energy' spends a ratio's budget"):
        lf.compress(model, rank=4, rank_alloc="energy")
    empty = tmp_path / "empty"
    shutil.copytree(data, empty)
    for lang in ("src", "tgt"):
        write_split(empty / f"train.{lang}", [])
    with pytest.raises(lf.LightformerError, match="is empty"):
        lf.compress(model, ratio=2.0, init="asvd", calib=empty)
    with pytest.raises(lf.LightformerError, match="stays singular after regularisation"):
        cholesky(-torch.eye(4, dtype=torch.float64), 1e-6, "group x")


def test_cli_compress_with_calibration_reports_ranks_and_heldout_error(setup, tmp_path):
    import json

    from lightformer.cli import main

    model, data, _ = setup
    lf.save_checkpoint(model, tmp_path / "dense.safetensors")
    args = ["compress", str(tmp_path / "dense.safetensors"), "--ratio", "2", "--init", "svd_whiten", "--rank-alloc",
            "whitened_energy", "--calib-data", str(data), "--calib-batches", "2", "--out", str(tmp_path / "l.safetensors"),
            "--report", str(tmp_path / "r.json")]
    assert main(args) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["spec"]["init"] == "svd_whiten" and report["spec"]["rank_alloc"] == "whitened_energy"
    assert 0 < report["calibration"]["output_rel_error_mean"] < 1
    assert len({m["rank"] for m in report["matrices"]}) > 1
    with pytest.raises(SystemExit) as refused:  # the parser checks the option's range before anything runs
        main(args[:-4] + ["--calib-batches", "0", "--out", str(tmp_path / "x.safetensors")])
    assert refused.value.code == 2
    assert not (tmp_path / "x.safetensors").exists()
