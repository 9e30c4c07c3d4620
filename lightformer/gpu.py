"""One GPU per local job. Snakemake counts a ``gpu`` resource but never sets CUDA_VISIBLE_DEVICES
on a local run (docs/reference.md §7), so concurrent jobs would all land on GPU 0. With
LIGHTFORMER_GPU_LOCKS pointing at a directory, each GPU verb takes the first free per-device lock
(``gpu<i>.lock``, flock) and pins itself to that device for its lifetime; the lock dies with the
process. Where CUDA_VISIBLE_DEVICES is already set (SLURM, the user) nothing changes.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

from lightformer.errors import LightformerError

LOCK_ENV = "LIGHTFORMER_GPU_LOCKS"
COUNT_ENV = "LIGHTFORMER_NUM_GPUS"  # optional; default: what nvidia-smi lists
_held: list[int] = []  # open lock descriptors, kept for the life of the process


def visible_gpu_count() -> int:
    """GPUs on this node without initialising CUDA (which would freeze CUDA_VISIBLE_DEVICES)."""
    if os.environ.get(COUNT_ENV):
        return int(os.environ[COUNT_ENV])
    if not shutil.which("nvidia-smi"):
        return 0
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def claim_gpu(lock_dir: str | None = None, count: int | None = None, wait_s: float = 600.0) -> int | None:
    """Pin this process to a free GPU; returns its index, or None when there is nothing to do."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return None
    lock_dir = lock_dir or os.environ.get(LOCK_ENV)
    if not lock_dir:
        return None
    n = count if count is not None else visible_gpu_count()
    if n <= 0:
        return None
    Path(lock_dir).mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        for i in range(n):
            fd = os.open(Path(lock_dir) / f"gpu{i}.lock", os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            _held.append(fd)
            os.environ["CUDA_VISIBLE_DEVICES"] = str(i)
            return i
        if time.monotonic() >= deadline:
            raise LightformerError(f"all {n} GPUs in {lock_dir} stayed taken for {wait_s:.0f} s; run with "
                                   f"--resources gpu={n} so Snakemake never starts more GPU jobs than GPUs")
        time.sleep(0.2)


def pick_device(name: str):
    """A torch.device from 'auto' (CUDA when torch sees one), 'cpu', 'cuda' or 'cuda:N'; asking for
    CUDA where torch sees none is an error, not a silent fall-back to CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise LightformerError(f"device {name!r} is not supported; allowed: auto, cpu, cuda, cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LightformerError(f"device {name!r} asked for, but torch {torch.__version__} sees no CUDA device")
    return device
