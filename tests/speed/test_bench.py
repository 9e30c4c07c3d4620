"""The speed protocols: what each row records, interleaving, and the bad inputs."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

import lightformer as lf
from lightformer.cli import main
from lightformer.speed.bench import SpeedConfig, length_batches, percentile, run_speed, synthetic_sources, trimmed_mean
from tests.conftest import tiny

REPO = Path(__file__).resolve().parents[2]


def test_trimmed_mean_drops_the_tails():
    xs = [100.0] + [1.0] * 8 + [-100.0]
    assert trimmed_mean(xs) == pytest.approx(1.0)
    assert percentile([1, 2, 3, 4, 5], 0.5) == 3


def test_length_batches_left_pad_sorted_sentences():
    srcs = synthetic_sources(30, 10, 6, seed=0, exact=False)
    batches = length_batches(srcs, 4)
    assert [b.size(0) for b in batches] == [4, 4, 2]
    assert all((b[:, -1] == 2).all() for b in batches)  # </s> last: padding on the left
    assert sum(int(b.ne(1).sum()) for b in batches) == sum(len(s) for s in srcs)


@pytest.mark.parametrize("protocol", ["latency", "throughput"])
def test_rows_carry_conditions_and_pairwise_speedups(protocol):
    dense = tiny("transformer_tiny6", src=40, tgt=40)
    models = {"dense": dense, "light": lf.compress(dense, rank=4, share_qkv=True)}
    cfg = SpeedConfig(protocol=protocol, beam=3, src_len=7, runs=3, warmup=1, batch=4, sentences=6, threads=1)
    rows = run_speed(models, cfg, progress=False)
    assert [r["model"] for r in rows] == ["dense", "light"]
    assert rows[0]["speedup"] == 1.0 and rows[1]["compression"] > 1.5
    for r in rows:
        assert r["device"] == "cpu" and r["threads"] == 1 and r["beam"] == 3 and r["runs"] == 3
        assert r["speedup"] > 0 and r["encoder_ms"] > 0 and r["decoder_ms"] > 0
        assert r["tokens_per_s"] > 0 and r["macs_per_tgt_token"] > 0
    assert rows[1]["macs_per_tgt_token"] < rows[0]["macs_per_tgt_token"]
    # a factorised linear is two products where the dense one is one: the step issues more operators
    assert rows[0]["launches_unit"] == "aten ops" and rows[1]["launches_per_step"] > rows[0]["launches_per_step"] > 20
    # fixed length: every hypothesis has tgt_len tokens + </s>
    assert rows[0]["batch"] == (1 if protocol == "latency" else 4)


def test_different_vocabularies_are_refused():
    with pytest.raises(lf.LightformerError, match="different vocabularies"):
        run_speed({"a": tiny(src=40, tgt=40), "b": tiny(src=41, tgt=40)}, SpeedConfig(runs=1))


def test_bad_speed_options():
    with pytest.raises(lf.LightformerError, match="no CUDA device|cuda"):
        run_speed({"a": tiny()}, SpeedConfig(device="cuda", runs=1))
    with pytest.raises(lf.LightformerError, match="cuda_graph needs --device cuda"):
        SpeedConfig(cuda_graph=True)
    with pytest.raises(lf.LightformerError, match="protocol"):
        SpeedConfig(protocol="fastest")
    for engines in (("fast",), ("eager", "eager"), ()):
        with pytest.raises(lf.LightformerError, match="engines"):
            SpeedConfig(engines=engines)
    with pytest.raises(lf.LightformerError, match="CPU path"):
        SpeedConfig(device="cuda", engines=("compiled",))
    with pytest.raises(lf.LightformerError, match="warmup"):
        SpeedConfig(engines=("compiled",), warmup=0)
    with pytest.raises(lf.LightformerError, match="CPU path"):
        SpeedConfig(device="cuda", engines=("onnxruntime",))
    with pytest.raises(lf.LightformerError, match="fp32 export"):
        SpeedConfig(engines=("eager", "openvino"), dtype="bf16")
    with pytest.raises(lf.LightformerError, match="without --int8"):
        SpeedConfig(engines=("onnxruntime", "openvino"), int8=True)


def test_cli_appends_rows_and_reports_exit_2_on_bad_input(tmp_path, capsys):
    a, b, out = tmp_path / "a.safetensors", tmp_path / "b.safetensors", tmp_path / "s.csv"
    main(["init", "--arch", "transformer_tiny", "--src-vocab", "30", "--tgt-vocab", "30", "--out", str(a)])
    main(["compress", str(a), "--rank", "4", "--out", str(b)])
    args = ["speed", str(a), str(b), "--runs", "2", "--warmup", "1", "--src-len", "6", "--out", str(out)]
    assert main(args) == 0 and main(args + ["--append"]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [r["model"] for r in rows] == ["a", "b", "a", "b"]
    assert "speedup" in capsys.readouterr().out
    r = subprocess.run([sys.executable, "-m", "lightformer", "speed", str(a), "--device", "cuda"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.mark.slow  # end to end (30-60 s): make test runs it, make test-fast does not
def test_gpu_script_reduced_mode_runs_on_cpu(tmp_path):
    """The IWSLT half; the WMT half runs inside gpu_evidence.sh (tests/integration/test_gpu_evidence.py)."""
    env = dict(os.environ, REDUCED="1", PYTHON=sys.executable, TASKS="iwslt14")
    r = subprocess.run(["bash", "workflow/scripts/gpu_speed_check.sh", str(tmp_path)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "speed.csv")))
    assert {(r["protocol"], r["task"]) for r in rows} == {(p, "iwslt14") for p in ("latency", "throughput")}
    assert {r["engine"] for r in rows} >= {"lightformer", "ctranslate2"} and "FAILED" not in r.stdout
    whole = {(r["protocol"], r["model"]) for r in rows if r["whole_step"] == "True"}
    assert whole == {(p, f"iwslt14_{m}_whole") for p in ("latency", "throughput") for m in ("baseline", "lf_k1", "lf_k2qkv")}


def test_throughput_on_a_prepared_test_split(tmp_path):
    from lightformer.data.synthetic import write_synthetic

    data = write_synthetic(tmp_path / "syn", "copy", train=20, valid=5, test=9)
    ckpt = tmp_path / "m.safetensors"
    lf.save_checkpoint(lf.build_model("transformer_tiny", 32, 32), ckpt)
    out = tmp_path / "s.csv"
    assert main(["speed", str(ckpt), "--protocol", "throughput", "--data", str(data), "--batch", "4",
                 "--runs", "1", "--warmup", "1", "--out", str(out)]) == 0
    row = next(csv.DictReader(open(out)))
    assert row["sentences"] == "9" and row["source"].endswith(":test")
    assert main(["speed", str(ckpt), "--data", str(data)]) == 2  # latency has no --data


def test_speedups_are_run_by_run_ratios_summarised_by_their_median():
    from lightformer.speed.bench import speedup_stats

    # the machine slows down in the 4th round for both models: the ratio, taken per round, does not
    s = speedup_stats([1.0, 2.0, 1.0, 10.0], [0.5, 1.0, 0.5, 1.0])
    assert s["speedup"] == 2.0 and s["speedup_p10"] == 2.0 and s["speedup_p90"] > 2.0
    with pytest.raises(ValueError):
        speedup_stats([1.0, 2.0], [1.0])  # runs must pair up


def test_row_names_that_collide_across_engines_are_refused_before_any_model_is_prepared(monkeypatch):
    import lightformer.speed.bench as bench

    monkeypatch.setattr(bench, "_runnable", lambda *a: pytest.fail("models prepared before the refusal"))
    dense = tiny("transformer_tiny6", src=40, tgt=40)
    with pytest.raises(lf.LightformerError, match="row names collide"):
        run_speed({"a": dense, "a_compiled": dense}, SpeedConfig(engines=("eager", "compiled"), runs=1))
