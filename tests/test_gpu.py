"""Per-device GPU locks for local multi-GPU runs (no GPU needed: the lock logic is what is tested)."""
import os
import subprocess
import sys

import pytest

from lightformer.errors import LightformerError

PROBE = ("import os, sys; from lightformer.gpu import claim_gpu; "
         "i = claim_gpu(count=2, wait_s=float(sys.argv[1])); print(i, os.environ.get('CUDA_VISIBLE_DEVICES'), flush=True); "
         "sys.stdin.read()")  # holds its GPU until the test closes its stdin: no timing to race on a loaded machine


def _start(locks, wait):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"} | {"LIGHTFORMER_GPU_LOCKS": str(locks)}
    return subprocess.Popen([sys.executable, "-c", PROBE, str(wait)], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _release(p) -> None:
    p.stdin.close()
    p.wait(timeout=30)


def test_concurrent_jobs_get_different_gpus_and_a_third_waits(tmp_path):
    a = _start(tmp_path, 5)
    assert a.stdout.readline().split() == ["0", "0"]
    b = _start(tmp_path, 5)
    assert b.stdout.readline().split() == ["1", "1"]
    c = _start(tmp_path, 0.5)  # both taken: gives up after 0.5 s with advice
    _, err = c.communicate(timeout=60)
    assert c.returncode != 0 and "stayed taken" in err and "--resources gpu=2" in err
    _release(a)  # a exits: its lock is released with the process
    d = _start(tmp_path, 5)
    assert d.stdout.readline().split() == ["0", "0"]
    for p in (b, d):
        _release(p)


def test_scheduler_assignment_is_left_alone(tmp_path, monkeypatch):
    from lightformer.gpu import claim_gpu

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert claim_gpu(str(tmp_path), count=2) is None and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.delenv("LIGHTFORMER_GPU_LOCKS", raising=False)
    assert claim_gpu(None, count=2) is None  # not asked for: nothing happens


def test_glue_jobs_take_a_gpu_lock_like_the_others(tmp_path):
    """`glue train` and `glue speed` pin themselves before anything else runs (even a refusal)."""
    code = ("import os, sys; from lightformer.cli import main; main(sys.argv[1:]); "
            "print(os.environ.get('CUDA_VISIBLE_DEVICES'))")
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"} | {
        "LIGHTFORMER_GPU_LOCKS": str(tmp_path), "LIGHTFORMER_NUM_GPUS": "2"}
    for argv in (["glue", "train", "--checkpoint", "x", "--data", "y", "--out", "z"],
                 ["glue", "speed", "x", "--out", "z.csv"], ["glue", "init", "--task", "sst2", "--out", "z"]):
        r = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, timeout=60)
        assert r.stdout.strip().splitlines()[-1] == ("None" if argv[1] == "init" else "0"), (argv, r.stderr[-2000:])


@pytest.mark.parametrize("name, message", [("mps", "not supported"), ("tpu:0", "not supported"),
                                           ("nonsense", "not supported")])
def test_one_device_picker_refuses_what_it_cannot_run(name, message):
    from lightformer.gpu import pick_device

    with pytest.raises(LightformerError, match=message):
        pick_device(name)
    assert pick_device("cpu").type == "cpu"
