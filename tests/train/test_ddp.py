"""Data parallel through torchrun (2 CPU processes, gloo) gives the weights of one process that
accumulates the same batches (update_freq=2): bit-identical without dropout."""
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from lightformer.data.synthetic import write_synthetic
from lightformer.train.run_dir import pointed


@pytest.mark.parametrize("loss", ["off", "on"])  # on: the output layer is applied outside DDP's forward
def test_nproc_per_node_two_equals_one_process_with_the_same_effective_batch(tmp_path, loss):
    """`--nproc-per-node 2` relaunches under torchrun and halves update_freq per rank."""
    data = write_synthetic(tmp_path / "syn", "copy", train=600, valid=50, test=50)
    common = ["--recipe", "synthetic", f"data={data}", "max_updates=20", "eval_bleu=false", "threads=1", "update_freq=2",
              f"fused_loss={loss}"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "lightformer", "train", "--nproc-per-node", "2",
                        *common, f"save_dir={tmp_path / 'ddp'}"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([sys.executable, "-m", "lightformer", "train", *common,
                        f"save_dir={tmp_path / 'one'}"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    a = load_file(str(pointed(tmp_path / "ddp", "last") / "model.safetensors"))
    b = load_file(str(pointed(tmp_path / "one", "last") / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_nproc_per_node_must_divide_update_freq(tmp_path):
    data = write_synthetic(tmp_path / "syn", "copy", train=50, valid=10, test=10)
    r = subprocess.run([sys.executable, "-m", "lightformer", "train", "--nproc-per-node", "3", "--recipe", "synthetic",
                        f"data={data}", f"save_dir={tmp_path / 'run'}", "update_freq=2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "does not divide update_freq=2" in r.stderr
    assert not (tmp_path / "run").exists()
