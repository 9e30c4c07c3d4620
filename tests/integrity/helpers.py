"""Shared checks for the hostile-input regression tests: exit 2, one line on stderr, no
traceback, and nothing under the watched paths written or changed."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path


def tree_hashes(*roots: Path) -> dict[str, str]:
    """sha256 of every file under the roots (a root may be a file), by path."""
    out = {}
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
        for p in files:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def lightformer(*args, cwd=None, stdin: bytes | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lightformer", *map(str, args)], capture_output=True, cwd=cwd,
                          input=stdin, timeout=timeout)


def refused(*args, watch: tuple = (), expect: str = "", cwd=None, stdin: bytes | None = None) -> str:
    """Run the CLI; assert exit 2, one stderr line holding ``expect``, no traceback, nothing changed
    under ``watch``. Returns the line."""
    before = tree_hashes(*watch)
    r = lightformer(*args, cwd=cwd, stdin=stdin)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 2, f"exit {r.returncode}: {err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err[-3000:]
    assert expect.lower() in lines[0].lower(), lines[0]
    assert tree_hashes(*watch) == before, "a refused command changed files"
    return lines[0]
