"""A training job killed mid-run (SIGTERM as on preemption, SIGKILL as on a node failure) fails its
rule without leaving outputs; rerunning the workflow resumes from the last checkpoint, repeats no
update and ends on the weights of an uninterrupted run, bit for bit (CPU)."""
import csv
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.workflow.test_dag import REPO, SNAKEMAKE, snakemake

pytestmark = pytest.mark.xdist_group("resume")  # the reference run once, on one worker (make test)

CONFIG = REPO / "tests/workflow/resume.yaml"
MODEL = "results/train/iwslt14/baseline/seed1/model.safetensors"
RUN = "results/runs/train/iwslt14/baseline/seed1"


@pytest.fixture(scope="session")
def uninterrupted(tmp_path_factory):
    """Data prepared once and the reference run, trained without interruption."""
    work = tmp_path_factory.mktemp("reference")
    r = snakemake(work, MODEL, configfile=CONFIG)
    assert r.returncode == 0, r.stderr[-4000:]
    return work


def _training_pid(workdir: Path) -> int | None:
    """The `lightformer train` process started in workdir (not its bash -c wrapper)."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(proc / "cwd")
        except (OSError, ValueError):
            continue
        if cwd == str(workdir) and len(argv) > 2 and argv[1].endswith(b"bin/lightformer") and argv[2] == b"train":
            return int(proc.name)
    return None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_training_resumes_on_rerun_to_the_uninterrupted_weights(uninterrupted, tmp_path, sig):
    work = tmp_path / "work"
    shutil.copytree(uninterrupted, work, ignore=shutil.ignore_patterns("train", "runs", "train_baseline"))
    env = dict(os.environ, PATH=f"{Path(SNAKEMAKE).parent}:{os.environ['PATH']}")
    job = subprocess.Popen([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--configfile", str(CONFIG), "--cores", "2",
                            MODEL], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (work / RUN / "checkpoints/last").exists():  # the first periodic checkpoint is on disk
        assert job.poll() is None and time.monotonic() < deadline, "training ended before it could be killed"
        time.sleep(0.05)
    pid = _training_pid(work)
    assert pid is not None
    os.kill(pid, sig)
    out, _ = job.communicate(timeout=120)
    assert job.returncode != 0, out[-3000:]
    assert not (work / MODEL).exists()  # a dead job's outputs are never left as complete

    r = snakemake(work, MODEL, configfile=CONFIG)
    assert r.returncode == 0, r.stderr[-4000:]
    events = (work / RUN / "events.log").read_text()
    assert ("preempted by signal 15" in events) == (sig == signal.SIGTERM)
    resumed = [line for line in events.splitlines() if "resumed from update_" in line]
    assert len(resumed) == 1 and not resumed[0].endswith("at update 0"), events
    updates = [int(row["update"]) for row in csv.DictReader(open(work / RUN / "curve.csv"))]
    assert updates == sorted(set(updates))  # no update logged twice
    log = (work / "results/logs/train_baseline/iwslt14/seed1.log").read_text()
    assert "resumed from update_" in log
    a, b = load_file(str(uninterrupted / MODEL)), load_file(str(work / MODEL))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
