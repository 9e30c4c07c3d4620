"""What a run directory and a log tell a user: the model as built (actual dimensions), recipe
overrides of a checkpoint's settings, and a plain progress line where no terminal shows a bar."""
import json
import subprocess
import sys

import lightformer as lf
from lightformer.data.synthetic import write_synthetic
from lightformer.train.run_dir import pointed


def test_config_json_dimensions_dropout_overrides_and_plain_progress(tmp_path):
    data = write_synthetic(tmp_path / "d", "copy", train=300, valid=20, test=20)
    common = ["--recipe", "synthetic", f"data={data}", "eval_bleu=false", "threads=1"]
    run = tmp_path / "base"
    r = subprocess.run([sys.executable, "-m", "lightformer", "train", *common, f"save_dir={run}", "max_updates=40",
                        "model.embed_dim=48", "model.dropout=0.2", "log_interval_s=0.01"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [line for line in r.stderr.splitlines() if line.startswith("train: update ")]
    assert lines and "/40, loss " in lines[-1] and "tok/s, ETA " in lines[-1]  # stderr is no terminal here
    config = json.loads((run / "config.json").read_text())
    assert config["arch"] == "transformer_tiny" and config["model_config"]["embed_dim"] == 48

    ft = tmp_path / "ft"
    parent = pointed(run, "last") / "model.safetensors"
    r = subprocess.run([sys.executable, "-m", "lightformer", "train", *common, f"save_dir={ft}", "max_updates=5",
                        f"init_from={parent}", "model.dropout=0.0"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    events = (ft / "events.log").read_text()
    assert "the recipe sets dropout=0.0 (the init_from checkpoint had 0.2)" in events
    assert lf.load_checkpoint(pointed(ft, "last") / "model.safetensors").cfg.dropout == 0.0


def test_a_crash_while_the_curve_is_cut_back_leaves_the_old_curve(tmp_path, monkeypatch):
    """Resuming cuts curve.csv back to the checkpoint; a failure half-way (a full disk) must leave
    the curve as it was and no temporary file beside it."""
    import csv

    import pytest

    from lightformer.train import loop

    path = tmp_path / "curve.csv"
    rows = [{"update": u, "epoch": 1, "train_loss": 5.0 - u / 10} for u in (10, 20, 30)]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=loop.CURVE_FIELDS + loop.IDENTITY, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    before = path.read_text()

    def full_disk(self, rows):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(csv.DictWriter, "writerows", full_disk)
        with pytest.raises(OSError):
            loop._rewrite_curve(path, 20, {"task": "t", "model": "m", "seed": 1})
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["curve.csv"]
    loop._rewrite_curve(path, 20, {"task": "t", "model": "m", "seed": 1})
    kept = list(csv.DictReader(open(path)))
    assert [r["update"] for r in kept] == ["10", "20"] and {r["model"] for r in kept} == {"m"}
