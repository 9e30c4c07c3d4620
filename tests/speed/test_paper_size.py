"""The paper-size speed row: random-weight models at the paper's sizes, timed, and set against the
abstract's claim in paper_comparison."""
import csv

import pandas as pd
import pytest

from lightformer.cli import main
from lightformer.report.tables import paper_comparison
from lightformer.paper import SIZES
from lightformer.speed.bench import paper_size_models


def test_paper_size_models_have_the_published_sizes_and_ratio():
    models = paper_size_models("iwslt14")
    base, light = models.values()
    from lightformer import count_parameters

    assert count_parameters(base)["total"] == 39_469_056  # fairseq transformer_iwslt_de_en, docs/reference.md §3
    assert count_parameters(base)["total"] / count_parameters(light)["total"] == pytest.approx(3.8, abs=0.05)
    with pytest.raises(Exception, match="no paper size"):
        paper_size_models("cnndm")
    assert set(SIZES) == {"iwslt14", "wmt14"}


def test_speed_paper_size_rows_feed_the_paper_comparison(tmp_path):
    out = tmp_path / "iwslt14.csv"
    assert main(["speed", "--paper-size", "iwslt14", "--runs", "1", "--warmup", "0", "--threads", "1",
                 "--src-len", "6", "--beam", "2", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [r["model"] for r in rows] == ["iwslt14_paper_size_baseline", "iwslt14_paper_size_lf"]
    assert all(r["task"] == "iwslt14" and "random weights" in r["checkpoint"] for r in rows)
    table = pd.DataFrame([
        {"model": "baseline", "compression": 1.0, "metric_mean": 30.0, "metric_label": "BLEU", "init": "svd"},
        {"model": "lf", "compression": 3.7, "metric_mean": 29.5, "metric_label": "BLEU", "init": "svd"}])
    comp = paper_comparison({"iwslt14": table}, {"iwslt14": pd.read_csv(out)})
    row = comp[comp["claim"].str.contains("paper size")].iloc[0]
    assert row["paper"] == 2.3 and row["ours"] == pytest.approx(float(rows[1]["speedup"]))
    assert "random weights" in row["note"] and "1 runs" in row["note"]
    assert main(["speed", "--paper-size", "iwslt14", str(out)]) == 2  # both ways at once
    assert main(["speed"]) == 2
