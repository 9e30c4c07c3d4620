"""Nothing let in across reruns: changing an upstream setting (bpe_merges) rebuilds the data and
the training job then starts a fresh run (the old one moved aside), never a silent resume of a
run on other data; a variant dropped from the grid leaves no row in the rebuilt table. And a
config that cannot run is refused at parse time, every problem named by its config path."""
import csv

import yaml

from lightformer.checkpoint import read_metadata
from lightformer.data.indexed import ParallelData
from tests.workflow.changed import config
from tests.workflow.test_dag import snakemake

TABLE = "results/tables/iwslt14.csv"
RUN = "results/runs/train/iwslt14/baseline/seed1"


def _write(path, cfg):
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_changed_data_restarts_training_and_dropped_variants_leave_the_table(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    first = _write(tmp_path / "first.yaml", config(200, [2.0, 3.0]))
    r = snakemake(work, TABLE, configfile=first)
    assert r.returncode == 0, r.stderr[-4000:]
    assert {row["model"] for row in csv.DictReader(open(work / TABLE))} == {"baseline", "r2.0_k1_svd", "r3.0_k1_svd"}

    second = _write(tmp_path / "second.yaml", config(120, [2.0]))
    r = snakemake(work, TABLE, configfile=second)
    assert r.returncode == 0, r.stderr[-4000:]
    events = (work / RUN / "events.log").read_text()
    assert "the data under data=" in events and "the previous run was moved to seed1.discarded-" in events, events
    assert events.count("started") == 1 and "resumed" not in events  # a new run, in a new events.log
    old = list((work / RUN).parent.glob("seed1.discarded-*"))
    assert len(old) == 1 and "finished at update 30" in (old[0] / "events.log").read_text()
    vocab = len(ParallelData(work / "results/data/iwslt14/prepared").src_dict)
    model = read_metadata(work / "results/train/iwslt14/baseline/seed1/model.safetensors")["model"]
    assert model["src_vocab"] == vocab  # trained on the rebuilt data
    assert {row["model"] for row in csv.DictReader(open(work / TABLE))} == {"baseline", "r2.0_k1_svd"}
    assert (work / "results/finetune/iwslt14/r3.0_k1_svd").exists()  # left on disk, but not in the table


def test_a_config_that_cannot_run_is_refused_with_every_problem(tmp_path):
    cfg = config(200, [2.0, 5000.0])
    cfg["seeds"] = [-1]
    task = cfg["tasks"]["iwslt14"]
    task["train"]["overrides"]["max_updatez"] = 3
    task["grid"]["share_layers"] = [1, 3]
    cfg["measure_speed"] = {"devices": ["cpu"], "protocols": ["latency"], "tasks": {"iwslt": {"beam": 5}}}
    cfg["glue"] = {"tasks": ["sst2"], "model": "tiny", "train": {"lr": 0.001},
                   "grid": {"ratio": [1.5], "share_layers": [1], "init": ["svd"], "roles": ["body", "decoder_qq"]}}
    r = snakemake(tmp_path, "-n", TABLE, configfile=_write(tmp_path / "bad.yaml", cfg))
    assert r.returncode != 0
    out = r.stdout + r.stderr
    for expected in ("seeds[0]: -1 is invalid", "tasks.iwslt14.train: unknown config key 'max_updatez'; did you mean "
                     "'max_updates'?", "share_layers=3 does not divide the 2 encoder layers", "ratio 5000 cannot be "
                     "reached", "measure_speed.tasks.iwslt: no such task", "glue.grid.roles:", "decoder_qq"):
        assert expected in out, out[-3000:]
    assert not (tmp_path / "results").exists()


def test_config_values_reach_the_shell_quoted(tmp_path):
    """A mirror path with a space and a command substitution is one argument, never a command."""
    cfg = config(200, [2.0])
    cfg["data"]["mirror"] = "results/my mirror $(touch PWNED)"
    r = snakemake(tmp_path, "results/data/iwslt14/raw/manifest.json", configfile=_write(tmp_path / "q.yaml", cfg))
    assert r.returncode == 0, r.stderr[-4000:]
    assert (tmp_path / "results/my mirror $(touch PWNED)/iwslt14/SHA256SUMS").is_file()
    assert not list(tmp_path.rglob("PWNED"))


def test_a_yaml_error_in_config_yaml_names_file_and_line(tmp_path):
    (tmp_path / "config.yaml").write_text("seeds: [1\ntasks: {}\n")
    import subprocess

    from tests.workflow.test_dag import REPO, SNAKEMAKE
    r = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-n"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode != 0 and "config file config.yaml:2:" in r.stdout + r.stderr, (r.stdout + r.stderr)[-2000:]
