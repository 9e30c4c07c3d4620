"""workflow/scripts/gpu_evidence.sh as the GPU host runs it, reduced on CPU: every part writes its
tables (training rows and the paper grid's price, real text with the controls, the WMT speed rows)
and the log says how long each took."""
import csv
import os
import subprocess
import sys
from pathlib import Path

from lightformer.data.synthetic import write_synthetic

REPO = Path(__file__).resolve().parents[2]


def test_the_gpu_evidence_script_runs_reduced_on_cpu(tmp_path):
    data = write_synthetic(tmp_path / "data", "copy", train=200, valid=20, test=20)
    out = tmp_path / "out"
    r = subprocess.run(["bash", "workflow/scripts/gpu_evidence.sh", str(out)], cwd=REPO, capture_output=True, text=True,
                       env=dict(os.environ, REDUCED="1", DATA=str(data), PYTHON=sys.executable), timeout=1500)
    assert r.returncode == 0, (out / "evidence.log").read_text() if (out / "evidence.log").exists() else r.stderr[-3000:]
    log = (out / "evidence.log").read_text()
    assert all(f"# {part}: ok" in log for part in ("training", "real-text", "speed", "speed-whole"))
    # 1. training: ours and Hugging Face's on the same batches, the fused loss and its before, the loop, the price
    rows = list(csv.DictReader(open(out / "train/train.csv")))
    assert {(r["arch"], r["kind"], r["engine"]) for r in rows} == {
        (a, k, e) for a in ("transformer_iwslt_de_en", "transformer_wmt_en_de")
        for k, e in (("dense", "lightformer"), ("dense", "transformers"), ("lightformer", "lightformer"))}
    assert {r["loss"] for r in rows} == {"dense", "fused"}
    cost = list(csv.DictReader(open(out / "train/plan_cost.csv")))
    assert cost[-1]["task"] == "total" and float(cost[-1]["device_hours"]) > 0
    assert any(r["stage"] == "light-weight controls" for r in cost)  # paper.yaml's controls are priced
    loop = list(csv.DictReader(open(out / "train/loop.csv")))
    assert [r["fused_loss"] for r in loop] == ["on", "off"] and all(r["num_updates"] == "4" for r in loop)
    assert all(float(r["train_tokens_per_s"]) > 0 and r["tokens_seen"] == loop[0]["tokens_seen"] for r in loop)
    assert "torch" in (out / "train/train.log").read_text()
    # 2. real text: the treatment, the random inits and the controls at equal budgets, tabled
    table = {r["model"]: r for r in csv.DictReader(open(out / "real/tables/ddtp.csv"))}
    assert set(table) == {"baseline", "r3.8_k1_svd", "r3.8_k1_random_full", "r3.8_k1_random_svd_full",
                          "dense_small_r3.8", "share_all", "share_sandwich"}
    assert table["share_all"]["init"] == "scratch" and float(table["share_all"]["compression"]) > 1.5
    convergence = {r["model"]: r for r in csv.DictReader(open(out / "real/tables/convergence_ddtp.csv"))}
    assert convergence["dense_small_r3.8"]["init"] == "scratch" and convergence["r3.8_k1_svd"]["parent_updates"] == "12"
    assert (out / "real/tables/lightweight_ddtp.csv").exists()
    # 3. speed: the WMT rows
    speed = list(csv.DictReader(open(out / "speed/speed.csv")))
    assert {(r["protocol"], r["task"]) for r in speed} == {(p, "wmt14") for p in ("latency", "throughput")}
    # 4. IWSLT with the whole search step on the device: only those rows, each model beside CTranslate2
    whole = list(csv.DictReader(open(out / "speed-whole/speed.csv")))
    ours = [r for r in whole if r["engine"] == "lightformer"]
    assert {(r["protocol"], r["task"]) for r in whole} == {(p, "iwslt14") for p in ("latency", "throughput")}
    assert ours and all(r["whole_step"] == "True" for r in ours) and any(r["engine"] == "ctranslate2" for r in whole)
