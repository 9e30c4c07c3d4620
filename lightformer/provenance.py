"""Where a number came from: the code (version, git commit, uncommitted changes) and the
environment (torch, CUDA, Python) of the process that produced it. Written into every result
JSON (generate, GLUE training) and carried into the tables' provenance columns."""
from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path


@functools.cache
def code_version() -> dict:
    """lightformer's version and, when it runs from a git checkout, the commit and whether
    tracked files differ from it (None where git or the checkout is not there)."""
    from lightformer.version import __version__

    root = Path(__file__).resolve().parent

    def git(*args):
        try:
            r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"lightformer": __version__, "commit": commit, "dirty": bool(status) if status is not None else None}


def environment() -> dict:
    import torch

    return {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version()}


def provenance() -> dict:
    return code_version() | environment()


def commit_label(prov: dict | None) -> str:
    """'abc123def456' or 'abc123def456+dirty'; '' when unknown."""
    if not prov or not prov.get("commit"):
        return ""
    return prov["commit"][:12] + ("+dirty" if prov.get("dirty") else "")
