"""The CLI as users run it: console script in a subprocess, exit codes, files written or not."""
import json
import os
import subprocess
import sys

import pytest

import lightformer as lf
from lightformer.cli import main


def run(*args, cwd=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "lightformer", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_fairseq_counts_through_the_cli(tmp_path):
    iwslt, wmt = tmp_path / "iwslt.safetensors", tmp_path / "wmt.safetensors"
    r = run("init", "--arch", "transformer_iwslt_de_en", "--src-vocab", "8848", "--tgt-vocab", "6632",
            "--share-decoder-input-output-embed", "--out", str(iwslt))
    assert r.returncode == 0, r.stderr
    assert json.loads(run("params", str(iwslt), "--json").stdout)["total"] == 39_469_056
    r = run("init", "--arch", "transformer_wmt_en_de", "--src-vocab", "32768", "--tgt-vocab", "32768",
            "--share-all-embeddings", "--out", str(wmt))
    assert r.returncode == 0, r.stderr
    assert json.loads(run("params", str(wmt), "--json").stdout)["total"] == 60_915_712


def test_compress_writes_checkpoint_and_report(tmp_path, capsys):
    dense, out, rep = tmp_path / "d.safetensors", tmp_path / "c.safetensors", tmp_path / "r.json"
    assert main(["init", "--arch", "transformer_tiny6", "--src-vocab", "50", "--tgt-vocab", "50",
                 "--share-all-embeddings", "--set", "dropout=0.3", "--out", str(dense)]) == 0
    assert lf.load_checkpoint(dense).cfg.dropout == 0.3
    assert main(["compress", str(dense), "--ratio", "2.5", "--share-layers", "2", "--share-qkv",
                 "--out", str(out), "--report", str(rep)]) == 0
    report = json.loads(rep.read_text())
    assert report["params"]["ratio"] >= 2.5
    assert report["params"]["compressed"]["total"] == lf.count_parameters(lf.load_checkpoint(out))["total"]
    assert report["spec"]["share_qkv"] is True and len(report["source"]["sha256"]) == 64
    assert {"rank", "rel_error", "group_energy_kept"} <= set(report["matrices"][0])
    assert lf.load_checkpoint(out).provenance["parent"]["sha256"] == report["source"]["sha256"]


def test_spec_file_with_flag_override(tmp_path):
    dense, out = tmp_path / "d.safetensors", tmp_path / "c.safetensors"
    main(["init", "--arch", "transformer_tiny", "--src-vocab", "30", "--tgt-vocab", "30", "--out", str(dense)])
    spec = tmp_path / "spec.yaml"
    spec.write_text("rank: {all: 4, embeddings: 8}\nshare_layers: 2\nroles: [body, embeddings]\n")
    assert main(["compress", str(dense), "--spec", str(spec), "--share-side", "out", "--out", str(out)]) == 0
    c = lf.load_checkpoint(out)
    assert c.compression["spec"]["share_side"] == "out" and c.encoder.embed_tokens.rank == 8


@pytest.fixture(scope="module")
def dense_tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    assert main(["init", "--arch", "transformer_tiny6", "--src-vocab", "40", "--tgt-vocab", "40",
                 "--out", str(path)]) == 0
    return path


@pytest.mark.parametrize("args,needle", [
    (["--rank", "33"], "rank 33 for enc_self_q@0 is out of range: allowed 1..32"),
    (["--rank", "4", "--share-layers", "4"], "share_layers=4 does not divide the 6 encoder layers; allowed: 1, 2, 3, 6"),
    (["--rank", "4", "--roles", "enc_ffn,wings"], "unknown role 'wings'"),
    (["--ratio", "1000"], "ratio 1000 cannot be reached"),
    (["--rank", "four"], "--rank expects an integer"),
], ids=["rank", "group-size", "role", "ratio", "rank-text"])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, dense_tiny, args, needle):
    out, rep = tmp_path / "out.safetensors", tmp_path / "rep.json"
    r = run("compress", str(dense_tiny), *args, "--out", str(out), "--report", str(rep))
    assert r.returncode == 2
    assert needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists() and not rep.exists()
    assert list(tmp_path.iterdir()) == []


def test_foreign_checkpoint_is_exit_2(tmp_path):
    bad = tmp_path / "fairseq.pt"
    bad.write_bytes(b"PK\x03\x04not really")
    r = run("params", str(bad))
    assert r.returncode == 2 and "PyTorch pickle/zip file" in r.stderr and "Traceback" not in r.stderr


def test_bad_init_option_is_exit_2(tmp_path):
    r = run("init", "--arch", "transformer_tiny", "--src-vocab", "30", "--tgt-vocab", "31",
            "--share-all-embeddings", "--out", str(tmp_path / "x.safetensors"))
    assert r.returncode == 2 and "one joined dictionary" in r.stderr
    assert not (tmp_path / "x.safetensors").exists()
