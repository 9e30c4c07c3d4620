"""The shipped cluster profiles against a real one-node SLURM (tests/slurm/cluster.py): jobs go
through sbatch with the config's resources and fake GPUs, a preempted training job is resubmitted
and resumes to the uninterrupted weights, and the cluster-generic template submits too.

Needs root and Debian's SLURM packages (`.ci/run` installs them); deselect with -m "not slurm".
"""
import csv
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.slurm.cluster import LocalSlurm, missing_requirements

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
CONFIG = REPO / "tests/slurm/config.yaml"
RESUME = REPO / "tests/workflow/resume.yaml"
RESOURCES = REPO / "tests/slurm/resources.yaml"
MODEL = "results/train/iwslt14/baseline/seed1/model.safetensors"
# fast polling for a test cluster; squeue because there is no accounting (docs/reference.md §7)
FAST = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
        "--slurm-keep-successful-logs"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = missing_requirements()
    if why:
        pytest.fail(f"{why} (or deselect the SLURM tests with -m 'not slurm')")
    slurm = LocalSlurm(tmp_path_factory.mktemp("slurm-state"))
    try:
        yield slurm.start()
    finally:  # also after a failed start: no daemon and no config of ours outlives the tests
        slurm.stop()


def snakemake(workdir, *args, configfile=CONFIG, profile="slurm", timeout=900):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")  # jobs inherit it
    return subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), *args, "--configfile", str(configfile), str(RESOURCES),
                           "--workflow-profile", str(REPO / "workflow/profiles" / profile)],
                          cwd=workdir, capture_output=True, text=True, env=env, timeout=timeout)


def jobs_in(cluster, workdir):
    return [j for j in cluster.jobs() if j.get("WorkDir") == str(workdir)]


def test_smoke_slice_runs_through_sbatch_with_the_configs_resources(cluster, tmp_path):
    r = snakemake(tmp_path, "results/tables/iwslt14.csv", *FAST, "--retries", "0")
    assert r.returncode == 0, r.stderr[-4000:]
    jobs = jobs_in(cluster, tmp_path)
    by_rule = {j["Comment"].split("_wildcards")[0].removeprefix("rule_"): j for j in jobs}
    gpu_rules = {"train_baseline", "finetune_model", "evaluate_model"}
    assert set(by_rule) == gpu_rules | {"write_embedded_mirror", "fetch_data", "prepare_data", "compress_model",
                                        "count_params", "task_table"}
    assert len(jobs) == 11 and all(j["JobState"] == "COMPLETED" for j in jobs)
    for rule, j in by_rule.items():
        assert j["Partition"] == "debug" and j["TimeLimit"] == "00:10:00" and j["MinMemoryNode"] == "500M"
        assert (j.get("TresPerJob") == "gres:gpu:1") == (rule in gpu_rules), (rule, j.get("TresPerJob"))
    rows = list(csv.DictReader(open(tmp_path / "results/tables/iwslt14.csv")))
    assert [row["model"] for row in rows] == ["baseline", "r2.0_k2_svd"]
    assert all(math.isfinite(float(row["metric_mean"])) and int(row["params_total"]) > 0 for row in rows)


def _wait_for_job(cluster, workdir, rule, proc, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"snakemake exited ({proc.returncode}) first:\n{proc.stdout.read()[-3000:]}")
        running = [j for j in jobs_in(cluster, workdir)
                   if j["Comment"].startswith(f"rule_{rule}") and j["JobState"] == "RUNNING"]
        if running and (workdir / "results/runs/train/iwslt14/baseline/seed1/checkpoints/last").exists():
            return running[0]["JobId"]
        time.sleep(0.1)
    raise TimeoutError(f"no running {rule} job with a checkpoint after {timeout}s")


def test_preempted_training_job_is_resubmitted_and_resumes_to_the_same_weights(cluster, tmp_path):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    reference = tmp_path / "local"  # the same config run without SLURM and without interruption
    reference.mkdir()
    r = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), MODEL, "--cores", "2", "--configfile", str(RESUME), str(RESOURCES)],
                       cwd=reference, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]

    work = tmp_path / "slurm"
    work.mkdir()
    args = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), MODEL, *FAST, "--retries", "1", "--configfile", str(RESUME), str(RESOURCES),
            "--workflow-profile", str(REPO / "workflow/profiles/slurm")]
    job = subprocess.Popen(args, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    jobid = _wait_for_job(cluster, work, "train_baseline", job)
    # what SLURM sends a job's steps before it preempts or kills them (SIGKILL follows after KillWait)
    subprocess.run(["scancel", "--signal=TERM", jobid], check=True)
    out, _ = job.communicate(timeout=600)
    assert job.returncode == 0, out[-4000:]

    train_jobs = [j for j in jobs_in(cluster, work) if j["Comment"].startswith("rule_train_baseline")]
    assert len(train_jobs) == 2 and {j["JobState"] for j in train_jobs} == {"FAILED", "COMPLETED"}
    events = (work / "results/runs/train/iwslt14/baseline/seed1/events.log").read_text()
    saved = re.search(r"preempted by signal 15: saved update (\d+)", events)  # saved on SIGTERM, then resumed
    assert saved and f"resumed from update_{int(saved.group(1)):07d} at update {saved.group(1)}" in events, events
    a, b = load_file(str(reference / MODEL)), load_file(str(work / MODEL))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cluster_generic_template_submits_with_a_schedulers_command(cluster, tmp_path):
    # the profile's SLURM line (see its comments) in place of its SGE default
    submit = "sbatch --parsable -J smk.{rule} -c {threads} --mem {resources.mem_mb} -t {resources.runtime}"
    r = snakemake(tmp_path, "results/mirror/iwslt14/SHA256SUMS", "--cluster-generic-submit-cmd", submit,
                  "--cluster-generic-cancel-cmd", "scancel", "--retries", "0", profile="cluster-generic")
    assert r.returncode == 0, r.stderr[-4000:]
    jobs = jobs_in(cluster, tmp_path)
    assert [j["JobName"] for j in jobs] == ["smk.write_embedded_mirror"] and jobs[0]["JobState"] == "COMPLETED"
    assert (tmp_path / "results/mirror/iwslt14/SHA256SUMS").exists()


def test_multigpu_profile_trains_data_parallel_on_the_gpus_of_one_job(cluster, tmp_path):
    # the profile asks for 4 GPUs x 4 CPUs and 64 GB; the test node has 2 fake GPUs, 2 CPUs
    fit = ["--set-resources", "train_baseline:gpu=2", "train_baseline:cpus_per_gpu=1", "train_baseline:mem_mb=1000",
           "--set-threads", "train_baseline=2"]
    r = snakemake(tmp_path, MODEL, *FAST, *fit, "--retries", "0", configfile=REPO / "tests/slurm/multigpu.yaml",
                  profile="slurm-multigpu")
    assert r.returncode == 0, r.stderr[-4000:]
    train = [j for j in jobs_in(cluster, tmp_path) if j["Comment"].startswith("rule_train_baseline")]
    assert len(train) == 1 and train[0]["TresPerJob"] == "gres:gpu:2" and train[0]["NumCPUs"] == "2"
    log = (tmp_path / "results/logs/train_baseline/iwslt14/seed1.log").read_text()
    assert "2 ranks, update_freq 2 -> 1 per rank" in log
    assert (tmp_path / MODEL).stat().st_size > 0


def test_the_test_cluster_removes_only_its_own_config(tmp_path, monkeypatch):
    """A slurm.conf left naming a stopped controller made every later `scontrol`, and so every
    snakemake start (the SLURM plugin asks for the config when it loads), wait ~9 s."""
    import tests.slurm.cluster as cluster

    monkeypatch.setattr(cluster, "CONF_DIR", tmp_path / "etc")
    slurm = LocalSlurm(tmp_path / "state")
    slurm.write_config()
    assert {p.name for p in (tmp_path / "etc").iterdir()} == {"slurm.conf", "gres.conf"}
    slurm.stop()
    assert list((tmp_path / "etc").iterdir()) == []
    (tmp_path / "etc/gres.conf").write_text("NodeName=real Name=gpu File=/dev/nvidia0\n")  # someone else's
    with pytest.raises(RuntimeError, match="not ours"):
        slurm.write_config()
    slurm.stop()
    assert (tmp_path / "etc/gres.conf").exists()
