"""DDP as it must behave on GPUs, checked with two CPU ranks: a stop signal that reaches one rank
only still stops both at the same update, saved once, without hanging; and every collective gets
a tensor on the training device (a probe wraps torch.distributed in each rank). Where the training
device is the CPU, as on machines without a GPU, that second check cannot tell a CPU tensor from a
device one: it bites only when this test runs on a GPU host (LIGHTFORMER_PROBE_DEVICE=cuda)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from lightformer.data.synthetic import write_synthetic
from lightformer.train.run_dir import pointed

PROBE = Path(__file__).parent / "collective_probe"


def _env(tmp_path):
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{PROBE}:{os.environ.get('PYTHONPATH', '')}",
                LIGHTFORMER_PROBE_LOG=str(tmp_path / "collectives"),
                LIGHTFORMER_PROBE_DEVICE=os.environ.get("LIGHTFORMER_PROBE_DEVICE", "cpu"))


def _rank_pid(rank: int, run: Path) -> int | None:
    for proc in Path("/proc").iterdir():
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
            argv = (proc / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if f"RANK={rank}".encode() in env and b"lightformer" in argv and str(run).encode() in argv \
                and b"torch.distributed.run" not in argv:
            return int(proc.name)
    return None


def test_signal_to_one_rank_stops_all_ranks_at_one_saved_update(tmp_path):
    data = write_synthetic(tmp_path / "syn", "copy", train=600, valid=40, test=40)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "lightformer", "train", "--nproc-per-node", "2", "--recipe", "synthetic",
           f"data={data}", f"save_dir={run}", "max_updates=100000", "eval_bleu=false", "threads=1",
           "update_freq=2", "save_interval_updates=20", "validate_interval_updates=1000"]
    proc = subprocess.Popen(cmd, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while not (run / "checkpoints/last").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()[-3000:]
        time.sleep(0.05)
    pid = _rank_pid(1, run)
    assert pid is not None
    os.kill(pid, signal.SIGTERM)  # rank 1 only, as when a scheduler signals one task
    out, _ = proc.communicate(timeout=120)  # a rank left waiting in a collective would hang here
    events = (run / "events.log").read_text()
    assert "preempted by signal on another rank: saved update" in events, out[-3000:]
    saved = int(events.split("saved update ")[-1].split()[0])
    state = torch.load(pointed(run, "last") / "state.pt", weights_only=True)
    assert state["num_updates"] == saved > 0
    for rank in (0, 1):
        devices = set(Path(f"{tmp_path / 'collectives'}.{rank}").read_text().split("\n")) - {""}
        want = _env(tmp_path)["LIGHTFORMER_PROBE_DEVICE"]
        assert devices and all(line.split()[1].startswith(want) for line in devices), devices
