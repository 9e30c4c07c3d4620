"""Reports read records, not paths: every producer writes which run it is (task, model, seed) into
its output, and the tables come out the same wherever the files lie; a file without one is refused."""
import csv
import json
import shutil
import subprocess
import sys

import pytest

from lightformer.data.synthetic import write_synthetic
from tests.integrity.helpers import refused

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("records")]  # its fixture trains once, on one worker


def lf(*args):
    r = subprocess.run([sys.executable, "-m", "lightformer", *map(str, args)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def rec(model, seed=None, task="copy"):
    return json.dumps({"task": task, "model": model} | ({"seed": seed} if seed else {}))


@pytest.fixture(scope="session")
def outputs(tmp_path_factory):
    """A baseline trained and a variant compressed and fine-tuned, two seeds each, every output
    named only by a number in one flat directory."""
    root = tmp_path_factory.mktemp("records")
    data = write_synthetic(root / "data", "copy", train=300, valid=30, test=30)
    flat, n = root / "flat", iter(range(100))
    flat.mkdir()
    files = {"evals": [], "params": [], "reports": [], "curves": []}
    for seed in (1, 2):
        for model in ("baseline", "r2.0_k1_svd"):
            run = root / f"run_{model}_{seed}"
            extra = ["init_from=" + str(root / f"c{seed}.safetensors")] if model != "baseline" else []
            if model != "baseline":
                variant = {"task": "copy", "variant": model, "seed": seed, "init_label": "svd"}
                report = flat / f"{next(n)}.json"
                lf("compress", root / f"b{seed}.safetensors", "--ratio", "2.0", "--out", root / f"c{seed}.safetensors",
                   "--report", report, "--record", json.dumps(variant))
                files["reports"].append(report)
            lf("train", "--recipe", "synthetic", "--record", rec(model, seed), f"data={data}", f"save_dir={run}",
               f"seed={seed}", "max_updates=6", "validate_interval_updates=3", "eval_bleu=false", *extra)
            model_file = root / (f"b{seed}.safetensors" if model == "baseline" else f"f{seed}.safetensors")
            best = (run / "checkpoints/best").read_text().strip()
            shutil.copy(run / "checkpoints" / best / "model.safetensors", model_file)
            curve = flat / f"{next(n)}.csv"
            shutil.copy(run / "curve.csv", curve)
            files["curves"].append(curve)
            hyps = flat / f"{next(n)}.txt"
            lf("generate", model_file, "--data", data, "--beam", "1", "--out", hyps, "--record", rec(model, seed))
            files["evals"].append(hyps.with_name(hyps.name + ".json"))
            if seed == 1:
                counts = flat / f"{next(n)}.json"
                counts.write_text(lf("params", model_file, "--json", "--record", rec(model)).stdout)
                files["params"].append(counts)
    return root, data, files


def test_training_curves_carry_their_run_identity(outputs):
    _, _, files = outputs
    rows = list(csv.DictReader(open(files["curves"][-1])))
    assert rows and {(r["task"], r["model"], r["seed"]) for r in rows} == {("copy", "r2.0_k1_svd", "2")}


def test_the_task_table_groups_by_records_wherever_the_files_lie(outputs, tmp_path):
    root, _, files = outputs
    args = ["report", "tables", "--tasks", "copy", "--out", tmp_path, "--evals", *files["evals"],
            "--params", *files["params"], "--reports", *files["reports"], "--curves", *files["curves"]]
    lf(*args)
    rows = {r["model"]: r for r in csv.DictReader(open(tmp_path / "copy.csv"))}
    assert set(rows) == {"baseline", "r2.0_k1_svd"}
    assert all(r["seeds"] == "2" and r["seeds_used"] == "1,2" for r in rows.values())
    assert rows["r2.0_k1_svd"]["init"] == "svd" and float(rows["r2.0_k1_svd"]["compression"]) >= 2.0
    assert all(float(r["valid_loss_best"]) > 0 for r in rows.values())
    lf("report", "convergence", "--curves", *files["curves"], "--records", *files["reports"], "--out",
       tmp_path / "conv.csv")
    assert {r["model"] for r in csv.DictReader(open(tmp_path / "conv.csv"))} == {"baseline", "r2.0_k1_svd"}


def test_a_result_without_a_record_is_refused_naming_it(outputs, tmp_path):
    _, _, files = outputs
    bare = tmp_path / "bare.json"
    content = json.loads(files["evals"][0].read_text())
    content.pop("record")
    bare.write_text(json.dumps(content))
    refused("report", "tables", "--tasks", "copy", "--out", tmp_path / "t", "--evals", bare, "--params",
            *files["params"], watch=(tmp_path,), expect=f"{bare}: does not say which run it is")
    curve = tmp_path / "curve.csv"
    with open(files["curves"][0]) as f:
        rows = list(csv.DictReader(f))
    with open(curve, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[k for k in rows[0] if k not in ("task", "model", "seed")], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    refused("report", "convergence", "--curves", curve, "--out", tmp_path / "c.csv", watch=(tmp_path,),
            expect="do not say which run they are")
