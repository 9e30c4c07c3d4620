"""Training checkpoints: one directory per save, ``model.safetensors`` (a normal lightformer
checkpoint, usable by every other verb) plus ``state.pt`` (optimizer, update count, data
position, RNG states; loaded with ``weights_only=True``).

A save writes a hidden temporary directory and renames it into place, so a crash never leaves a
half checkpoint under a real name. ``last`` and ``best`` are small pointer files, replaced
atomically; the newest ``keep_last`` update checkpoints are kept besides them.

Resumption never trusts a pointer alone: it takes the newest checkpoint whose model and state
both load and agree on the update number, and sets newer unreadable ones aside as
``<name>.corrupt`` (never deleted). If none can be read, nothing is touched and the run stops.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lightformer.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from lightformer.errors import LightformerError
from lightformer.io import atomic_dir, write_text_atomic


def save_train_checkpoint(run_dir: Path, name: str, model, state: dict, provenance: dict | None = None) -> Path:
    root = Path(run_dir) / "checkpoints"
    with atomic_dir(root / name, "training checkpoint", force=True) as tmp:
        save_checkpoint(model, tmp / "model.safetensors", provenance=provenance)
        torch.save(state, tmp / "state.pt")
    write_text_atomic(root / "last", name + "\n")
    return root / name


def mark_best(run_dir: Path, name: str) -> None:
    write_text_atomic(Path(run_dir) / "checkpoints" / "best", name + "\n")


def pointed(run_dir: Path, which: str) -> Path | None:
    """The checkpoint directory that ``last`` or ``best`` names, if any."""
    ptr = Path(run_dir) / "checkpoints" / which
    if not ptr.is_file():
        return None
    path = ptr.parent / ptr.read_text().strip()
    return path if (path / "model.safetensors").is_file() else None


UPDATE_DIR = re.compile(r"^update_(\d+)$")
STATE_KEYS = ("config", "optimizer", "num_updates", "epoch", "position", "tokens_seen", "wall_s", "best", "rng")


def update_dirs(run_dir: Path) -> list[Path]:
    """The run's update checkpoints, oldest first (set-aside ``*.corrupt`` ones excluded)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := UPDATE_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def prune(run_dir: Path, keep_last: int) -> None:
    """Keep the newest ``keep_last`` update checkpoints besides last and best; drop the temporary
    directories of saves a crash interrupted."""
    protected = {p.name for p in (pointed(run_dir, "last"), pointed(run_dir, "best")) if p}
    updates = update_dirs(run_dir)
    for p in updates[:-keep_last] if keep_last > 0 else updates:
        if p.name not in protected:
            shutil.rmtree(p)
    for pattern in (".update_*.tmp", ".update_*.old"):
        for stale in (Path(run_dir) / "checkpoints").glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)


def load_state(ckpt_dir: Path) -> dict:
    return torch.load(Path(ckpt_dir) / "state.pt", weights_only=True)


def open_checkpoint(ckpt_dir: Path):
    """(model, state, None) when both files load and agree on the update; (None, None, why) if not."""
    update = int(UPDATE_DIR.match(ckpt_dir.name).group(1))
    try:
        state = load_state(ckpt_dir)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, OSError ... on a bad file
        return None, None, f"state.pt unreadable ({type(e).__name__})"
    if not isinstance(state, dict) or any(k not in state for k in STATE_KEYS):
        return None, None, "state.pt lacks training state"
    try:
        path = ckpt_dir / "model.safetensors"
        model = load_checkpoint(path, verify="digest" in read_metadata(path))
    except Exception as e:
        return None, None, f"model.safetensors unreadable ({str(e).splitlines()[0][:160] or type(e).__name__})"
    numbers = {update, state["num_updates"], (getattr(model, "provenance", None) or {}).get("update")}
    if len(numbers) != 1:
        return None, None, f"model, state and directory name disagree on the update ({sorted(map(str, numbers))})"
    return model, state, None


@dataclass
class Resume:
    """Where a run goes on from: the checkpoint, its model and state, and the newer ones skipped."""
    ckpt: Path
    model: torch.nn.Module
    state: dict
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def find_resume(run_dir: Path) -> Resume | None:
    """The newest intact checkpoint, or None for a run that never saved. Reads only."""
    skipped = []
    for ckpt in reversed(update_dirs(run_dir)):
        model, state, why = open_checkpoint(ckpt)
        if why is None:
            return Resume(ckpt, model, state, skipped)
        skipped.append((ckpt, why))
    if skipped:
        listed = "; ".join(f"{p.name}: {why}" for p, why in skipped)
        raise LightformerError(
            f"no checkpoint in {Path(run_dir) / 'checkpoints'} can be read ({listed}); nothing was changed. "
            f"To start over, rerun with --restart (the old run is moved aside, not deleted) or use a new save_dir")
    return None


def set_aside(run_dir: Path, resume: Resume) -> list[str]:
    """Rename the skipped checkpoints ``*.corrupt``, point ``last`` at the resumed one and drop a
    ``best`` pointer that named a skipped one. Returns what was done, for the run's event log."""
    root, done = Path(run_dir) / "checkpoints", []
    skipped = {p.name for p, _ in resume.skipped}
    best = root / "best"
    if best.is_file() and best.read_text().strip() in skipped:
        best.unlink()
        resume.state["best"] = None
        done.append("dropped the best pointer (it named an unreadable checkpoint)")
    for path, why in resume.skipped:
        target = _vacant(path, ".corrupt")
        os.replace(path, target)
        done.append(f"skipped newer {path.name} ({why}); moved to {target.name}")
    write_text_atomic(root / "last", resume.ckpt.name + "\n")
    return done


def discard_run(run_dir: Path) -> Path | None:
    """Move a run directory aside (``<run>.discarded-<UTC time>``) so a new run starts there."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return None
    target = _vacant(run_dir, ".discarded-" + _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S"))
    os.replace(run_dir, target)
    return target


def _vacant(path: Path, suffix: str) -> Path:
    """``<path><suffix>``, or with -1, -2, ... appended until no such file exists: nothing set aside
    is ever overwritten."""
    target, n = path.with_name(path.name + suffix), 1
    while target.exists():
        target, n = path.with_name(f"{path.name}{suffix}-{n}"), n + 1
    return target


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
