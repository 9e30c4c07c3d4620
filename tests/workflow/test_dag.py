"""The real Snakemake DAG on the embedded data: runs end to end, builds only what a target needs,
validates the config before any job starts."""
import csv
import math
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
                           "--cores", "2", *args], cwd=workdir, capture_output=True, text=True, env=env, timeout=900)


def test_whole_dag_runs_and_writes_tables_figures_logs(tmp_path):
    r = snakemake(tmp_path, "all")
    assert r.returncode == 0, r.stderr[-4000:]
    res = tmp_path / "results"
    rows = list(csv.DictReader(open(res / "tables/iwslt14.csv")))
    models = {row["model"] for row in rows}
    assert models == {"baseline", "r2.0_k1_svd", "r2.0_k1_random", "r2.0_k2_svd", "r2.0_k2_random",
                      "r2.0_k1_svd_energy", "r2.0_k1_svd_whiten", "r2.0_k1_svd_whiten_energy",
                      "dense_small_r2.0", "dense_small_r2.0_lr2", "share_all", "share_all_lr2"}
    controls = {r["model"]: r for r in rows if r.get("init") == "scratch"}
    for family in ("dense_small_r2.0", "share_all"):  # one learning rate chosen per sweep, by validation loss
        sweep = [r for r in controls.values() if r["family"] == family]
        assert sorted(r["lr_selected"] for r in sweep) == ["False", "True"]
        chosen = next(r for r in sweep if r["lr_selected"] == "True")
        assert float(chosen["valid_loss_best"]) == min(float(r["valid_loss_best"]) for r in sweep)
    assert 1.7 < float(controls["dense_small_r2.0"]["compression"]) < 2.3  # matched to the LightFormer size
    convergence = {r["model"]: r for r in csv.DictReader(open(res / "tables/convergence_iwslt14.csv"))}
    assert set(convergence) == models and convergence["baseline"]["updates_to_target"] != "not reached"
    light = list(csv.DictReader(open(res / "tables/lightweight_iwslt14.csv")))
    assert {r["source"] for r in light} >= {"ours (this run)"} and any("HAT" in r["source"] for r in light)
    assert all(r["params_convention"] for r in light)
    assert any(c["claim"].startswith("out-performs a light-weight model") for c in
               csv.DictReader(open(res / "tables/paper_comparison.csv")))
    ablation = {r["model"]: r for r in csv.DictReader(open(res / "tables/ablation_transfer.csv"))}
    assert set(ablation) == {"r2.0_k1_svd", "r2.0_k1_svd_energy", "r2.0_k1_svd_whiten", "r2.0_k1_svd_whiten_energy"}
    for r in ablation.values():
        assert r["seeds"] == "2" and all(math.isfinite(float(r[k])) for k in
                                         ("transfer_mean", "finetuned_mean", "output_rel_error_mean", "finetuned_gap"))
    # whitening lowers the held-out layer-output error at equal rank (what it optimises, on other batches)
    assert float(ablation["r2.0_k1_svd_whiten"]["output_rel_error_mean"]) < \
        float(ablation["r2.0_k1_svd"]["output_rel_error_mean"])
    assert (res / "figures/ablation_transfer.png").stat().st_size > 10_000
    for row in rows:
        assert row["seeds"] == "2" and "tokenized BLEU" in row["metric_label"]
        # provenance: which seeds, code, environment, config and data made the row
        assert row["seeds_used"] == "1,2" and len(row["commit"].split("+")[0]) == 12 and row["torch"]
        assert len(row["config_sha256"]) == 16 and len(row["data_manifest_sha256"]) == 16 and row["device"] == "cpu"
        parts = sum(int(row[f"params_{p}"]) for p in ("embedding", "output_projection", "body"))
        assert parts == int(row["params_total"])  # the parameter columns add up
        assert row["model"] == "baseline" or row["rank"] or row["init"] == "scratch"  # ratio-solved ranks shown
        assert row["split_drift"].startswith("not checked") and row["data_splits"].startswith("train ")
        assert "speedup_cpu_latency" in row and float(row["params_total"]) > 0
    assert "=" in next(r for r in rows if r["model"] == "r2.0_k1_svd_energy")["rank"]  # per role when they differ
    light = next(r for r in rows if r["model"] == "r2.0_k1_svd")
    assert float(light["compression"]) >= 2.0
    wmt = list(csv.DictReader(open(res / "tables/wmt14.csv")))
    assert {r["model"] for r in wmt} == {"baseline", "r1.8_k2_svd"} and "compound-split" in wmt[0]["metric_label"]
    cnndm = list(csv.DictReader(open(res / "tables/cnndm.csv")))
    assert {r["model"] for r in cnndm} == {"baseline", "r2.0_k2_svd"} and cnndm[0]["metric"] == "rougeL"
    assert all(0 < float(r[f"{t}_mean"]) <= 100 for r in cnndm for t in ("rouge1", "rouge2", "rougeL", "rougeLsum"))
    glue = list(csv.DictReader(open(res / "tables/glue.csv")))
    assert [r["model"] for r in glue] == ["baseline", "r1.5_k2_svd"]
    for r in glue:
        assert {"sst2_accuracy", "stsb_pearson", "stsb_spearman", "glue_avg"} <= r.keys()
        assert all(math.isfinite(float(r[k])) for k in ("sst2_accuracy", "stsb_pearson", "glue_avg", "params"))
    assert float(glue[1]["compression"]) >= 1.5 and float(glue[1]["speedup_cpu_latency"]) > 0  # encoder timing
    comparison = list(csv.DictReader(open(res / "tables/paper_comparison.csv")))
    for task in ("iwslt14", "wmt14"):
        assert {c["claim"] for c in comparison if c["task"] == task} >= {"x fewer parameters", "speedup (cpu_latency)"}
    assert all("data: not checked" in c["note"] for c in comparison if c["claim"] == "x fewer parameters")
    assert list(csv.DictReader(open(res / "tables/ablation_init.csv")))[0].keys() >= {"svd", "random"}
    for fig in ("metric_vs_params", "learning_curves", "sharing_heatmap", "speedup_vs_params"):
        assert (res / f"figures/{fig}.png").stat().st_size > 10_000 and (res / f"figures/{fig}.pdf").exists()
    md = (res / "tables/iwslt14.md").read_text().splitlines()
    assert md[0].count("|") - 1 <= 8 and len(md) == len(rows) + 2  # the paper's columns; the CSV keeps the rest
    assert "tokenized BLEU" in md[0] and "x fewer" in md[0] and "lr (chosen)" in md[0]
    for name, needle in (("convergence_iwslt14", "updates to valid loss"), ("lightweight_iwslt14", "BLEU flavour")):
        head = (res / f"tables/{name}.md").read_text().splitlines()[0]  # readable too; the CSV keeps every column
        assert head.count("|") - 1 <= 8 and needle in head, head
    for rule in ("fetch_data", "prepare_data", "train_baseline", "compress_model", "finetune_model",
                 "evaluate_model", "measure_speed", "task_table", "summary_tables", "glue_train_baseline",
                 "glue_compress", "glue_finetune"):
        assert any((res / "logs" / rule).rglob("*.log")), rule
        assert any((res / "benchmarks" / rule).rglob("*.tsv")), rule
    assert (res / "runs/train/iwslt14/baseline/seed1/checkpoints/last").exists()  # resumable side state
    again = snakemake(tmp_path, "all", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
    rep = snakemake(tmp_path, "--report", "report.html")
    assert rep.returncode == 0, rep.stderr[-2000:]
    html = (tmp_path / "report.html").read_text(errors="ignore")
    assert all(name in html for name in ("paper_comparison.csv", "iwslt14.csv", "glue.csv", "learning_curves.png",
                                         "iwslt14.html", "paper_comparison.html", "Provenance"))
    page = (res / "tables/iwslt14.html").read_text()  # the readable table, the same columns as the Markdown
    assert page.count("<th>") == md[0].count("|") - 1 and "iwslt14.csv" in page


def test_one_table_builds_only_what_it_needs(tmp_path):
    r = snakemake(tmp_path, "results/tables/iwslt14.csv", "-n")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "summary_tables" not in out and "speed_table" not in out
    assert int(re.search(r"^task_table\s+(\d+)", out, re.M).group(1)) == 1


@pytest.mark.parametrize("edit,needle", [
    (lambda c: c["tasks"]["iwslt14"]["grid"].update(init=["svd", "zeros"]), "zeros"),
    (lambda c: c["tasks"]["iwslt14"]["train"].update(recipe="fastest"), "fastest"),
    (lambda c: c["tasks"]["iwslt14"].update(dataset="xsum"), "xsum"),  # task names are free; datasets are not
    (lambda c: c["tasks"]["iwslt14"].update(dataset="text"), "corpus"),  # your own corpus needs its spec
    (lambda c: c["tasks"].update({"X-Sum": c["tasks"]["iwslt14"]}), "X-Sum"),
    (lambda c: c.update(colour="red"), "colour"),
    (lambda c: c.update(resources={"finetune_models": {"gpu": 1}}), "did you mean 'finetune_model'"),
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


def test_paper_scale_config_validates_and_plans_the_full_grid(tmp_path):
    # run from the repository, where config.yaml (the smoke run) sits: none of it may leak in
    r = subprocess.run([SNAKEMAKE, "all", "-n", "-p", "--cores", "2", "--configfile", "workflow/configs/paper.yaml"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    jobs = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M)}
    # IWSLT 2 ratios x 3 k x 2 inits + WMT 1 x 2 x 2 + CNN/DM 2 x 2 x 2 = 24 variants, plus the transfer
    # ablation's new ones (IWSLT 2 ratios x 5 inits x 2 allocations, WMT 1 x 5 x 2, less the 6 in the
    # grids: 24), 3 seeds each; the 30 ablation variants are also scored right after transfer; IWSLT's
    # sweep adds random and random_svd on the full budget at 3 learning rates (6)
    assert jobs["finetune_model"] == (48 + 6) * 3 and jobs["train_baseline"] == 3 * 3
    # controls from scratch: IWSLT 4 models x 3 learning rates, WMT 2 models at one
    assert jobs["train_control"] == jobs["init_control"] == (4 * 3 + 2) * 3
    assert jobs["convergence_table"] == jobs["lightweight_table"] == 3
    assert jobs["evaluate_transfer"] == 30 * 3 and jobs["ablation_transfer_table"] == 1
    assert jobs["measure_speed"] == 3 * 2 * 2  # tasks x devices x protocols
    # GLUE: 9 tasks x (baseline + 2 ratios x 2 k x 2 inits) x 3 seeds, on the fetched BERT
    assert jobs["glue_train_baseline"] == 9 * 3 and jobs["glue_finetune"] == 9 * 8 * 3
    assert "lightformer data fetch bert_base_uncased" in out and "--pretrained results/data/bert_base_uncased/raw" in out
    cnndm = next(line for line in out.splitlines() if "lightformer generate" in line and "cnndm" in line)
    assert all(f in cnndm for f in ("--metric rouge", "--min-len 55", "--max-len-b 140", "--no-repeat-ngram-size 3"))
    assert "--max-len-a" not in cnndm  # not set in paper.yaml: the library's default, not a copy of it
    assert "--recipe iwslt_de_en data=" in out and "max_updates=500" not in out


def test_workflow_passes_snakemake_lint():
    r = subprocess.run([SNAKEMAKE, "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_config_resources_reach_the_jobs_and_gpus_become_data_parallel_ranks(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["resources"] = {"default": {"slurm_partition": "gpu"},
                           "train_baseline": {"gpu": 4, "runtime": 99, "threads": 2}}
    config["tasks"]["iwslt14"]["train"]["overrides"]["update_freq"] = 4
    path = tmp_path / "res.yaml"
    path.write_text(yaml.safe_dump(config))
    r = snakemake(tmp_path, "results/train/iwslt14/baseline/seed1/model.safetensors", "-n", "-p", configfile=path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert "lightformer train --restart-if-changed --nproc-per-node 4 " in out
    train = out[out.index("rule train_baseline"):]
    assert re.search(r"resources: .*runtime=99", train) and "gpu=4" in train and "slurm_partition=gpu" in train
    config["resources"] = {"train_baselines": {"gpu": 1}}  # a typo in a rule name is refused
    path.write_text(yaml.safe_dump(config))
    r = snakemake(tmp_path, "all", "-n", configfile=path)
    assert r.returncode != 0 and "train_baselines" in r.stdout + r.stderr


def test_a_ddtp_task_plans_fetch_and_prepare_from_apt_lists(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["data"] = {"root": "results/data", "mirror": None, "embedded": False}
    config["tasks"] = {"ddtp": config["tasks"]["iwslt14"] | {"dataset": "ddtp", "prepare": {"pair": "de-en"}}}
    config["tasks"]["ddtp"].pop("ablation")
    config["measure_speed"]["tasks"] = {"ddtp": {"beam": 2, "src_len": 20}}
    path = tmp_path / "ddtp.yaml"
    path.write_text(yaml.safe_dump(config))
    r = snakemake(tmp_path, "results/data/ddtp/prepared/meta.json", "-n", "-p", configfile=path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert "lightformer data fetch ddtp --root results/data --pair de-en" in out and "--mirror" not in out
    assert "lightformer data prepare ddtp --root results/data --bpe-merges 200 --pair de-en" in out
    r = snakemake(tmp_path, "all", "-n", configfile=path)  # the whole grid plans on it too
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rule finetune_model" in r.stdout + r.stderr


def test_a_custom_corpus_task_runs_from_its_files_to_its_table(tmp_path):
    """dataset: text, as the README shows it: the corpus folder named in the config, a recipe
    option under prepare:, the table saying which corpus its rows come from."""
    from lightformer.datasets.fixtures import custom_corpus_files

    (tmp_path / "corpus").mkdir()
    for name, data in custom_corpus_files().items():
        (tmp_path / "corpus" / name).write_bytes(data)
    config = yaml.safe_load(TINY.read_text())
    config["data"] = {"root": "results/data", "mirror": None, "embedded": False}
    config["seeds"] = [1]
    task = config["tasks"]["iwslt14"] | {"dataset": "text", "prepare": {"lowercase": True},
                                         "corpus": {"name": "acme_de_en", "pair": "de-en", "dir": "corpus"},
                                         "grid": {"ratio": [2.0], "share_layers": [1], "init": ["svd", "random_full"]}}
    task.pop("ablation")
    task.pop("controls")  # this test is about the corpus; tests/test_controls.py and the whole DAG cover controls
    config["tasks"] = {"acme": task}
    config["measure_speed"]["tasks"] = {"acme": {"beam": 2, "src_len": 6}}
    path = tmp_path / "acme.yaml"
    path.write_text(yaml.safe_dump(config))
    r = snakemake(tmp_path, "results/tables/acme.csv", configfile=path)
    assert r.returncode == 0, r.stderr[-4000:]
    fetch = (tmp_path / "results/logs/fetch_data/acme_de_en.log").read_text()
    assert "translation corpus read and checked" in fetch
    meta = yaml.safe_load((tmp_path / "results/data/acme_de_en/prepared/meta.json").read_text())
    assert meta["custom_corpus"]["options"]["lowercase"] is True and meta["sentences"]["test"] == 40
    rows = list(csv.DictReader(open(tmp_path / "results/tables/acme.csv")))
    assert {row["model"]: row.get("init") for row in rows} == {"baseline": "", "r2.0_k1_svd": "svd",
                                                                "r2.0_k1_random_full": "random_full"}
    assert all(row["split_drift"] == "custom corpus acme_de_en (no published sizes)" for row in rows)
    # random init at the baseline's budget: the train stage's recipe and updates, from the random factors
    runs = tmp_path / "results/runs/finetune/acme"
    full = yaml.safe_load((runs / "r2.0_k1_random_full/seed1/config.json").read_text())
    svd = yaml.safe_load((runs / "r2.0_k1_svd/seed1/config.json").read_text())
    assert (full["max_updates"], svd["max_updates"]) == (120, 20) and full["init_from"].endswith("model.safetensors")
    # a corpus spec the library refuses stops the workflow before any job, naming the config path
    task["corpus"]["dir"] = "missing"
    path.write_text(yaml.safe_dump(config))
    r = snakemake(tmp_path, "results/tables/acme.csv", "-n", configfile=path)
    assert r.returncode != 0 and "tasks.acme.corpus: dir: 'missing' is not a directory" in r.stdout + r.stderr


def _repository_copy(dest: Path) -> Path:
    """The tracked files as a fresh clone has them (the untracked results/ of this checkout left out)."""
    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in names:
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def test_the_bare_commands_work_from_the_repository_root(tmp_path):
    """`snakemake <target>` as the product's usage line types it: no --cores, no profile flag; the
    default profile at profiles/default/ supplies them. A table's dry-run plans only that task."""
    repo = _repository_copy(tmp_path)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    run = subprocess.run([SNAKEMAKE, "results/mirror/iwslt14/SHA256SUMS"], cwd=repo, capture_output=True,
                         text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]  # a real job: not "cores have to be specified"
    assert "Using workflow specific profile profiles/default" in run.stderr and (repo / "results/mirror").is_dir()
    plan = subprocess.run([SNAKEMAKE, "-n", "results/tables/wmt14.csv"], cwd=repo, capture_output=True, text=True,
                          env=env, timeout=600)
    assert plan.returncode == 0, plan.stderr[-3000:]
    tasks = set(re.findall(r"task=(\w+)", plan.stdout + plan.stderr))
    assert tasks == {"wmt14"}


def test_the_real_small_overlay_plans_only_jobs_the_full_grid_runs_too(tmp_path):
    """workflow/configs/real-small-first.yaml promises that the full grid reuses its jobs: every
    training, compression, decoding, counting and control command it plans, real-small.yaml plans
    the same (same command, same paths), and it plans the controls it names."""
    def commands(*configs, targets):
        r = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), *targets, "-n", "-p", "--cores", "2",
                            "--configfile", *[str(REPO / c) for c in configs]],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        verbs = ("train", "compress", "generate", "params", "control")
        return {line.removeprefix("Shell command: ") for line in (r.stdout + r.stderr).splitlines()
                if re.match(r"Shell command: lightformer (%s) " % "|".join(verbs), line)}

    full = commands("workflow/configs/real-small.yaml", targets=["all"])
    first = commands("workflow/configs/real-small.yaml", "workflow/configs/real-small-first.yaml",
                     targets=["results/tables/ddtp.csv", "results/tables/convergence_ddtp.csv"])
    assert first and first <= full, sorted(first - full)[:3]
    assert any("--control dense_small" in c for c in first) and any("--control share_all" in c for c in first)
    assert any("random_svd_full" in c for c in first) and len(first) < len(full) / 2


def test_dense_small_trains_under_a_recipe_that_states_the_baselines_width(tmp_path):
    """A recipe that sets the width (real-small.yaml: model.embed_dim=128, FFN 512) builds the
    baseline and, narrowed, dense_small; training dense_small must not restate the baseline's
    width over its own checkpoint (lightformer train refuses a width that differs from init_from)."""
    config = yaml.safe_load(TINY.read_text())
    config["seeds"] = [1]
    task = config["tasks"]["iwslt14"]
    config["tasks"] = {"iwslt14": task}
    config.pop("glue")
    config["measure_speed"]["tasks"] = {"iwslt14": config["measure_speed"]["tasks"]["iwslt14"]}
    task.pop("ablation")
    task["train"]["overrides"] |= {"max_updates": 6, "validate_interval_updates": 3, "model.embed_dim": 32,
                                   "model.encoder_ffn_dim": 64, "model.decoder_ffn_dim": 64, "model.dropout": 0.2}
    task["controls"] = {"models": ["dense_small"], "lr_scale": [1.0]}
    path = tmp_path / "wide.yaml"
    path.write_text(yaml.safe_dump(config))
    r = snakemake(tmp_path, "results/controls/iwslt14/dense_small_r2.0/seed1/model.safetensors", "-p", configfile=path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    from lightformer.checkpoint import read_metadata
    model = read_metadata(tmp_path / "results/controls/iwslt14/dense_small_r2.0/seed1/model.safetensors")["model"]
    assert model["embed_dim"] < 32 and model["dropout"] == 0.2  # its own width; the recipe's dropout
