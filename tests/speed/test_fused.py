"""The fused low-rank kernel is exact: checked on CPU through Triton's interpreter (the kernel is
the one that runs on the GPU; the interpreter executes it block by block in NumPy)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lightformer as lf
from lightformer.speed.bench import SpeedConfig
from lightformer.speed.fast import prepare_for_inference

HERE = Path(__file__).resolve().parent


# its fixture is built once: every test on one worker (xdist_group), kept for the session
# (a module fixture is rebuilt whenever the worker runs another module in between)
pytestmark = pytest.mark.xdist_group("fused")


@pytest.fixture(scope="session")
def checked():
    env = dict(os.environ, TRITON_INTERPRET="1")
    r = subprocess.run([sys.executable, str(HERE / "fused_check.py")], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_kernel_equals_two_products(checked):
    """Both kernels: the one the fused path runs, and the rank-parallel one the GPU checks time
    (shapes with several rank slices, odd sizes, no bias, one row)."""
    assert {row["kernel"] for row in checked["kernel"]} == {"one program per block", "rank-parallel"}
    for row in checked["kernel"]:
        tol = 1e-2 if "float16" in row["dtype"] else 1e-5
        assert row["rel_err"] < tol, row
        assert row["out_shape"][:2] == [row["shape"][0], 2]  # leading dims kept
        assert row["out_dtype"] == row["dtype"]
    assert checked["fallback_equal"] and checked["fallback_rank"]


def test_fused_models_compute_the_same_function_and_decode_the_same(checked):
    assert {m["name"] for m in checked["models"]} == {"k1", "qkv", "k2", "emb"}
    for m in checked["models"]:
        assert "FusedLowRank" in m["kinds"], m
        assert m["max_abs"] < 1e-4, m
        assert m["same_hypotheses"], m
    qkv = next(m for m in checked["models"] if m["name"] == "qkv")
    assert "PackedQKV" in qkv["kinds"]


def test_fused_path_is_refused_where_it_cannot_run(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    small = lf.compress(lf.build_model("transformer_tiny", 40, 40, seed=1), rank=4)
    with pytest.raises(lf.LightformerError, match="CUDA"):
        prepare_for_inference(small, fused_lowrank=True)
    with pytest.raises(lf.LightformerError, match="CUDA"):
        SpeedConfig(fused_lowrank=True)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(lf.LightformerError, match="fp32, fp16 and bf16"):
        prepare_for_inference(small, fused_lowrank=True, dtype=torch.float64)
