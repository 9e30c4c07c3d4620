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


def _read_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it: set and restore, once, at import
    os.umask(mask)
    return mask


UMASK = _read_umask()  # files and directories we rename into place get the modes a plain open would


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp's 0600 would hide results from a shared group
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


OUTPUT_MARK = ".lightformer-output"  # in every directory this project writes: its kind, so --force knows what it may replace


def check_output_dir(out: str | os.PathLike, kind: str, inputs: tuple = (), force: bool = False,
                     legacy: str | None = None) -> Path:
    """Refuse an output directory whose writing could destroy what the user owns: the working
    directory, an ancestor of it, the home or root directory, or one that is, holds or lies inside
    an input. An existing directory is replaced only with ``force``, and only when it is empty or
    carries this project's mark for the same ``kind`` of output (never a directory of other files;
    ``legacy``: a file name that marks the kind in directories written before the mark existed)."""
    from lightformer.errors import LightformerError

    path, cwd = Path(out).resolve(), Path.cwd().resolve()
    if path == cwd or cwd.is_relative_to(path) or path == Path.home().resolve():
        raise LightformerError(f"--out {str(out)!r} is the working directory, an ancestor of it or the home "
                               f"directory; name a new directory for the {kind}")
    for src in (Path(p).resolve() for p in inputs if p):
        if path == src or src.is_relative_to(path) or path.is_relative_to(src):
            raise LightformerError(f"--out {str(out)!r} overlaps the input {str(src)!r}; write the {kind} elsewhere")
    if path.is_file() or path.is_symlink():
        raise LightformerError(f"--out {str(out)!r} is a file, not a directory; name a new directory")
    if path.is_dir() and any(path.iterdir()):
        if not force:
            raise LightformerError(f"--out {str(out)!r} exists; pass --force to replace it")
        mark = path / OUTPUT_MARK
        marked = mark.is_file() and mark.read_text(errors="replace").strip() == kind
        if not marked and not (legacy and not mark.exists() and (path / legacy).is_file()):
            raise LightformerError(f"--out {str(out)!r} holds files this project did not write as a {kind} (no "
                                   f"{OUTPUT_MARK} naming it); --force replaces only those: move or delete it yourself")
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, kind: str = "output", force: bool = False, legacy: str | None = None):
    """Yield a fresh temporary directory beside ``path``; on success it takes ``path``'s place, on
    error it is removed. An existing ``path`` is replaced only as ``check_output_dir`` allows (the
    old one is moved aside first and removed last, so a crash leaves one of the two whole)."""
    path = Path(path)
    check_output_dir(path, kind, force=force, legacy=legacy)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        (tmp / OUTPUT_MARK).write_text(kind + "\n")
        os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp's 0700 would hide results from a shared group
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, old / "was")
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def lock_path(directory: str | os.PathLike) -> Path:
    directory = Path(directory)
    return directory.parent / f".{directory.name}.lightformer.lock"


@contextlib.contextmanager
def one_writer(directory: str | os.PathLike, what: str):
    """Hold ``directory``'s writer lock for the block: a second ``what`` on the same directory is refused,
    naming the holder (pid, host, start). The kernel drops the lock when its process dies, however it
    dies, so no stale lock is ever left to clear (flock; NFSv4 maps it to a byte-range lock). The
    lock file is removed on release, so a refused command leaves nothing behind."""
    import datetime
    import fcntl
    import socket

    from lightformer.errors import LightformerError

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(directory)  # beside, not inside: a run moved aside by --restart keeps no lock
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise LightformerError(f"{directory} is in use by {holder}; one {what} at a time writes it: wait for "
                                   f"it, or write to another directory") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file as we opened it: lock the new one
    try:
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"lightformer {what} (pid {os.getpid()} on {socket.gethostname()}, since {now})\n".encode(), 0)
        yield
    finally:
        path.unlink(missing_ok=True)  # before the release: a waiter that opened it retries on a fresh file
        os.close(fd)


def read_json(path: str | os.PathLike, what: str = "JSON file", kind: type | None = dict):
    """A JSON file's contents, refused in one line naming the file, line and column when it is cut or
    damaged (``kind``: the type the top level must have)."""
    import json

    from lightformer.errors import LightformerError

    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LightformerError(f"{what} {path} is missing") from None
    except json.JSONDecodeError as e:
        raise LightformerError(f"{what} {path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg}); the file is cut or "
                               f"damaged: write it again") from None
    except UnicodeDecodeError as e:
        raise LightformerError(f"{what} {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if kind is not None and not isinstance(value, kind):
        raise LightformerError(f"{what} {path}: a JSON {type(value).__name__}, expected a JSON "
                               f"{'object' if kind is dict else kind.__name__}")
    return value


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
