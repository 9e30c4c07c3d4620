"""The real Snakemake DAG on tiny architectures: runs, builds only what a target needs,
validates the config before any job starts."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests/workflow/tiny.yaml"
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")


def snakemake(workdir, *args, configfile=TINY):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")  # this env's CLI
    return subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--configfile", str(configfile),
                           "--cores", "2", *args], cwd=workdir, capture_output=True, text=True,
                          env=env, timeout=600)


def test_whole_dag_runs_and_writes_logs_and_benchmarks(tmp_path):
    r = snakemake(tmp_path, "all")
    assert r.returncode == 0, r.stderr[-3000:]
    res = tmp_path / "results"
    base = json.loads((res / "params/small/baseline.json").read_text())
    lf2 = json.loads((res / "params/small/r2_k2.json").read_text())
    assert base["total"] / lf2["total"] >= 2.0
    report = json.loads((res / "compress/small/r2_k2.json").read_text())
    assert report["spec"]["share_qkv"] is True
    assert json.loads((res / "models/small/r2_k2.spec.json").read_text())["ratio"] == 2.0
    speed = list(csv.DictReader(open(res / "tables/speed.csv")))
    assert {(r["task"], r["protocol"]) for r in speed} == {
        (t, p) for t in ("small", "other") for p in ("latency", "throughput")}
    assert {r["model"] for r in speed if r["task"] == "small"} == {"baseline", "r2_k2", "rank4_out"}
    assert all(r["threads"] == "1" and r["device"] == "cpu" for r in speed)
    assert (res / "figures/speedup_vs_params.png").stat().st_size > 10_000
    assert (res / "figures/speedup_vs_params.pdf").exists() and (res / "tables/speed.md").exists()
    for rule in ("init_model", "compress_model", "count_params", "measure_speed", "speed_table"):
        assert any((res / "logs" / rule).rglob("*.log")), rule
        assert any((res / "benchmarks" / rule).rglob("*.tsv")), rule
    # nothing left to do afterwards
    again = snakemake(tmp_path, "all", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_one_target_builds_only_what_it_needs(tmp_path):
    r = snakemake(tmp_path, "results/params/other/rank8.json", "-n")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert int(re.search(r"^total\s+(\d+)", out, re.M).group(1)) == 3  # init, compress, count
    assert "results/models/small" not in out


@pytest.mark.parametrize("edit,needle", [
    (lambda c: c["compress_model"]["small"]["r2_k2"].update(share_side="left"), "share_side"),
    (lambda c: c["init_model"]["small"].update(arch="transformer_huge"), "arch"),
    (lambda c: c["init_model"]["other"].update(colour="red"), "colour"),
])
def test_bad_config_is_refused_before_any_job(tmp_path, edit, needle):
    config = yaml.safe_load(TINY.read_text())
    edit(config)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    r = snakemake(tmp_path, "all", configfile=bad)
    assert r.returncode != 0
    assert needle in r.stderr + r.stdout
    assert not (tmp_path / "results").exists()
