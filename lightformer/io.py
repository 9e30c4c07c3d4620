"""Atomic writes of files and directories: a crash never leaves a half-written one under its final name."""
from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield a fresh temporary directory beside ``path``; on success it takes ``path``'s place
    (an old directory there is removed first), on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def escapes(name: str) -> bool:
    """Whether a relative path taken from a listing could leave the directory it is joined to:
    empty, absolute, with a backslash, a NUL or a '..' component."""
    return (not name or name.startswith("/") or "\\" in name or "\0" in name or ".." in name.split("/"))


INVOKED: list[str] = []  # set by lightformer.cli.main (lightformer/cli/__init__.py): the arguments it runs (in-process callers too)


def command_line(argv: list[str] | None = None) -> str:
    """The command as a user would retype it: ``lightformer <args>``, with absolute paths under
    the working directory made relative, so a recorded command names no path of the machine that
    ran it (paths outside the working directory are kept: they are what was run)."""
    argv = list(argv if argv is not None else INVOKED or sys.argv)
    head = Path(argv[0]).name if argv else "lightformer"
    words = ["lightformer" if head in ("lightformer", "__main__.py", "-m") else head]
    cwd = Path.cwd()
    for arg in argv[1:]:
        key, sep, value = arg.rpartition("=") if "=" in arg and not arg.startswith("/") else ("", "", arg)
        path = Path(value)
        if path.is_absolute() and path.is_relative_to(cwd):
            value = str(path.relative_to(cwd)) or "."
        words.append(f"{key}{sep}{value}")
    return shlex.join(words)


def write_rows(path: str | os.PathLike, rows: list[dict], append: bool = False) -> None:
    """Rows as a CSV, atomically; ``append`` keeps the rows already there (same columns only)."""
    import csv

    path = Path(path)
    previous = []
    if append and path.exists():
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != list(rows[0]):
                from lightformer.errors import LightformerError

                raise LightformerError(f"{path} has other columns than this lightformer writes; use a new --out file")
            previous = list(reader)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(previous + rows)
