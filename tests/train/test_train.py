"""Training as users run it: the synthetic task learned, preemption + resume bit-identical,
fine-tuning a LightFormer, checkpoint averaging, and the bad inputs."""
import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import lightformer as lf
from lightformer.cli import main
from lightformer.data.synthetic import write_synthetic
from lightformer.train.run_dir import average_checkpoints, pointed
from lightformer.train.recipes import load_train_config
from lightformer.train.loop import EXIT_PREEMPTED, train


@pytest.fixture(scope="module")
def copy_data(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("syn") / "copy", "copy", train=2000, valid=100, test=100)


def _weights(run: Path) -> dict:
    return load_file(str(pointed(run, "last") / "model.safetensors"))


@pytest.mark.slow  # end to end (30-60 s): make test runs it, make test-fast does not
def test_synthetic_copy_task_trains_past_90_bleu_and_generates(copy_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--recipe", "synthetic", f"data={copy_data}", f"save_dir={run}", "threads=2"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["num_updates"] == 600 and summary["best"] > 90
    curve = (run / "curve.csv").read_text().splitlines()
    assert curve[0].startswith("update,epoch,wall_s,tokens_seen,lr")
    assert len(curve) > 5
    # throughput without validation: tokens/s and model TFLOP/s per curve row and for the session;
    # MFU only where the device's peak is known (not on a CPU)
    rows = list(csv.DictReader(open(run / "curve.csv")))
    assert all(float(r["train_tokens_per_s"]) > 0 and float(r["train_tflops"]) > 0 and r["mfu"] == "" for r in rows)
    assert summary["train_tokens_per_s"] > 0 and summary["mfu"] is None and summary["device_name"]
    out = tmp_path / "hyps.txt"
    best = pointed(run, "best") / "model.safetensors"
    assert main(["generate", str(best), "--data", str(copy_data), "--beam", "4", "--out", str(out)]) == 0
    meta = json.loads(Path(f"{out}.json").read_text())
    assert meta["bleu"]["score"] > 90 and meta["bleu"]["metric"] == "bleu_tokenized"
    assert len(out.read_text().splitlines()) == 100 and meta["sentences_per_s"] > 0


def _overrides(data, run, updates):
    return [f"data={data}", f"save_dir={run}", f"max_updates={updates}", "save_interval_updates=40",
            "validate_interval_updates=40", "eval_bleu=false", "threads=1"]


def _cmd(data, run, updates):
    return [sys.executable, "-m", "lightformer", "train", "--recipe", "synthetic", *_overrides(data, run, updates)]


def test_interrupted_run_resumes_bit_identical(copy_data, tmp_path):
    straight = tmp_path / "straight"
    train(load_train_config("synthetic", overrides=_overrides(copy_data, straight, 300)), progress=False)
    cut = tmp_path / "cut"
    proc = subprocess.Popen(_cmd(copy_data, cut, 300), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (cut / "checkpoints" / "last").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_PREEMPTED, err[-2000:]
    stopped_at = torch.load(pointed(cut, "last") / "state.pt", weights_only=True)["num_updates"]
    assert 0 < stopped_at < 300
    r = subprocess.run(_cmd(copy_data, cut, 300), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = _weights(straight), _weights(cut)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"


def test_finetune_compressed_model_from_svd_transfer(copy_data, tmp_path):
    base_run = tmp_path / "base"
    train(load_train_config("synthetic", overrides=[f"data={copy_data}", f"save_dir={base_run}", "max_updates=300",
                                                    "eval_bleu=false"]), progress=False)
    dense = lf.load_checkpoint(pointed(base_run, "last") / "model.safetensors")
    light = lf.compress(dense, rank=8, share_layers=2)
    lf.save_checkpoint(light, tmp_path / "light.safetensors")
    ft = tmp_path / "ft"
    s = train(load_train_config("synthetic", overrides=[
        f"data={copy_data}", f"save_dir={ft}", f"init_from={tmp_path / 'light.safetensors'}", "max_updates=60",
        "lr=1e-3", "warmup_updates=10", "model.dropout=0.1"]), progress=False)
    tuned = lf.load_checkpoint(pointed(ft, "last") / "model.safetensors")
    assert tuned.compression["spec"]["share_layers"] == 2 and tuned.cfg.dropout == 0.1
    assert lf.count_parameters(tuned) == lf.count_parameters(light)
    q0, q1 = (tuned.encoder.layers[i].self_attn.q_proj for i in (0, 1))
    assert q0.B is q1.B  # the shared factor is still one tensor after training
    assert s["best"] is not None


def test_average_checkpoints_is_the_mean(copy_data, tmp_path):
    run = tmp_path / "avg"
    train(load_train_config("synthetic", overrides=[f"data={copy_data}", f"save_dir={run}", "max_updates=80",
                                                    "save_interval_updates=20", "eval_bleu=false"]), progress=False)
    dirs = sorted((run / "checkpoints").glob("update_*"))[-3:]
    avg = average_checkpoints(dirs)
    parts = [load_file(str(d / "model.safetensors")) for d in dirs]
    got = avg.state_dict()
    for k in parts[0]:
        torch.testing.assert_close(got[k], sum(p[k].double() for p in parts).div(3).float())
    assert main(["average", *map(str, dirs), "--out", str(tmp_path / "avg.safetensors")]) == 0


def test_bad_inputs(copy_data, tmp_path):
    with pytest.raises(lf.LightformerError, match="unknown config key 'lerning_rate'"):
        load_train_config("synthetic", overrides=["lerning_rate=1"])
    with pytest.raises(lf.LightformerError, match="lr expects float"):
        load_train_config("synthetic", overrides=["lr=fast"])
    # a checkpoint whose vocabulary does not match the data
    other = lf.build_model("transformer_tiny", 99, 99)
    lf.save_checkpoint(other, tmp_path / "other.safetensors")
    with pytest.raises(lf.LightformerError, match="do not match the data's dictionaries"):
        train(load_train_config("synthetic", overrides=[f"data={copy_data}", f"save_dir={tmp_path / 'v'}",
                                                        f"init_from={tmp_path / 'other.safetensors'}"]), progress=False)
    # resuming a run directory with another config
    run = tmp_path / "r"
    train(load_train_config("synthetic", overrides=[f"data={copy_data}", f"save_dir={run}", "max_updates=20",
                                                    "eval_bleu=false"]), progress=False)
    before = (pointed(run, "last") / "model.safetensors").read_bytes()
    with pytest.raises(lf.LightformerError, match="whose config lr: 0.003 -> 0.1"):
        train(load_train_config("synthetic", overrides=[f"data={copy_data}", f"save_dir={run}", "max_updates=40",
                                                        "lr=0.1", "eval_bleu=false"]), progress=False)
    assert (pointed(run, "last") / "model.safetensors").read_bytes() == before  # nothing overwritten


def test_non_finite_loss_stops_without_writing(copy_data, tmp_path):
    run = tmp_path / "nan"
    cfg = load_train_config("synthetic", overrides=[f"data={copy_data}", f"save_dir={run}", "max_updates=30",
                                                    "eval_bleu=false", "lr=1e30", "warmup_updates=0",
                                                    "save_interval_updates=1"])
    with pytest.raises(lf.LightformerError, match=r"non-finite loss at update \d+; stopped without saving") as err:
        train(cfg, progress=False)
    failed = int(str(err.value).split("update ")[1].split(";")[0])
    assert failed > 1 and f"update_{failed - 1:07d}" in str(err.value)  # names the last good checkpoint
    assert not (run / "checkpoints" / f"update_{failed:07d}").exists()
    assert pointed(run, "last").name == f"update_{failed - 1:07d}"


def test_translate_reads_lines_and_keeps_their_order(copy_data, tmp_path):
    run = tmp_path / "t"
    train(load_train_config("synthetic", overrides=[f"data={copy_data}", f"save_dir={run}", "eval_bleu=false"]),
          progress=False)
    lines = ["w1 w2 w3 w4 w5", "w6 w10 w11", "w7 w8 w9"]  # lengths as in training (3-12)
    r = subprocess.run([sys.executable, "-m", "lightformer", "translate", str(pointed(run, "last") / "model.safetensors"),
                        "--data", str(copy_data), "--beam", "3"], input="\n".join(lines) + "\n",
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == lines  # the copy task, learned


def test_the_prefetcher_collates_the_next_update_on_its_thread_and_only_hands_over_what_was_asked():
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from lightformer.train.loop import Prefetcher

    made = []

    def make(group):
        made.append((tuple(group), threading.current_thread().name))
        return [sum(group)]

    with ThreadPoolExecutor(1, thread_name_prefix="collate") as pool:
        fetch = Prefetcher(pool, make)
        assert fetch.take((1, 0), [1, 2]) == [3]  # nothing ahead: made here
        fetch.ahead((1, 2), [3, 4])
        assert fetch.take((1, 2), [3, 4]) == [7]  # the one made ahead
        fetch.ahead((1, 4), [5, 6])
        assert fetch.take((2, 0), [7, 8]) == [15]  # another update was asked: made anew, the stale one dropped
    assert made[0][1] == threading.current_thread().name and made[1][1].startswith("collate")
    assert sorted(m[0] for m in made) == [(1, 2), (3, 4), (5, 6), (7, 8)]  # the stale one may finish last
