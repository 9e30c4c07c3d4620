"""diagnose-init: the first updates of fresh dense and factorised models on the same batches, with
the quantities docs/controls.md reads (gradient norms, product update ratios, activation scales)."""
import csv
import math

from lightformer.cli import main
from lightformer.data.synthetic import write_synthetic


def test_diagnose_init_writes_comparable_rows(tmp_path):
    data = write_synthetic(tmp_path / "syn", "copy", train=200, valid=20, test=20)
    out = tmp_path / "diag.csv"
    assert main(["diagnose-init", "--recipe", "synthetic", "--data", str(data), "--ratio", "2", "--updates", "3",
                 "--inits", "dense", "random", "random_svd", "--out", str(out), "arch=transformer_tiny"]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [r["model"] for r in rows] == ["dense"] * 3 + ["random_r2"] * 3 + ["random_svd_r2"] * 3
    for r in rows:
        for part in ("attention", "ffn", "embedding"):
            assert float(r[f"{part}_grad_norm"]) > 0 and 0 < float(r[f"{part}_product_update_ratio"]) < 1
        assert math.isfinite(float(r["loss"])) and float(r["encoder_out_rms"]) > 0
    # the same batches in the same order: the first update's loss is close for fresh models of one scale
    first = {r["model"]: float(r["loss"]) for r in rows if r["update"] == "1"}
    assert abs(first["dense"] - first["random_svd_r2"]) < 1.0
