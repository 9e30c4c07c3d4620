"""Training checkpoints: one directory per save, ``model.safetensors`` (a normal lightformer
checkpoint, usable by every other verb) plus ``state.pt`` (optimizer, update count, data
position, RNG states; loaded with ``weights_only=True``).

A save writes a hidden temporary directory and renames it into place, so a crash never leaves a
half checkpoint under a real name. ``last`` and ``best`` are small pointer files, replaced
atomically; the newest ``keep_last`` update checkpoints are kept besides them.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from lightformer.checkpoint import load_checkpoint, save_checkpoint
from lightformer.errors import LightformerError
from lightformer.io import write_text_atomic


def save_train_checkpoint(run_dir: Path, name: str, model, state: dict, provenance: dict | None = None) -> Path:
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final, tmp = root / name, root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_checkpoint(model, tmp / "model.safetensors", provenance=provenance)
    torch.save(state, tmp / "state.pt")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_text_atomic(root / "last", name + "\n")
    return final


def mark_best(run_dir: Path, name: str) -> None:
    write_text_atomic(Path(run_dir) / "checkpoints" / "best", name + "\n")


def pointed(run_dir: Path, which: str) -> Path | None:
    """The checkpoint directory that ``last`` or ``best`` names, if any."""
    ptr = Path(run_dir) / "checkpoints" / which
    if not ptr.is_file():
        return None
    path = ptr.parent / ptr.read_text().strip()
    return path if (path / "model.safetensors").is_file() else None


def prune(run_dir: Path, keep_last: int) -> None:
    root = Path(run_dir) / "checkpoints"
    protected = {p.name for p in (pointed(run_dir, "last"), pointed(run_dir, "best")) if p}
    updates = sorted(p for p in root.glob("update_*") if p.is_dir())
    for p in updates[:-keep_last] if keep_last > 0 else updates:
        if p.name not in protected:
            shutil.rmtree(p)


def load_state(ckpt_dir: Path) -> dict:
    return torch.load(Path(ckpt_dir) / "state.pt", weights_only=True)


def average_checkpoints(paths: list[str | Path]):
    """Element-wise mean of the models' parameters (fairseq average_checkpoints.py); all must
    share one architecture and compression plan. Returns the model, with the first's metadata."""
    if not paths:
        raise LightformerError("no checkpoints to average")
    models = [load_checkpoint(Path(p) / "model.safetensors" if Path(p).is_dir() else p) for p in paths]
    first = models[0]
    for p, m in zip(paths[1:], models[1:]):
        if m.cfg != first.cfg or (m.compression or {}).get("groups") != (first.compression or {}).get("groups"):
            raise LightformerError(f"{str(p)!r} has another architecture or compression plan than {str(paths[0])!r}")
    with torch.no_grad():
        params = [dict(m.named_parameters()) for m in models]
        for name, p in params[0].items():
            p.copy_(torch.stack([ps[name].double() for ps in params]).mean(0).to(p.dtype))
    return first
