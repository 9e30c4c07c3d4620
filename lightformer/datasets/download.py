"""Fetch and verify raw files: resumable downloads, sha256 + size checks, a manifest per dataset,
and one setting (``mirror``) that points every download at a local directory or an internal
HTTP server with the same ``<dataset>/<name>`` layout, for clusters without internet.

Nothing incomplete ever carries a final name: bytes stream into ``<name>.part`` (kept, so the next
fetch resumes with an HTTP Range request) and are renamed only after verification.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import platform
import re
import shutil
import tempfile
from pathlib import Path

import requests
from tqdm.auto import tqdm

from lightformer.data import raw_dir
from lightformer.datasets import hub, integrity
from lightformer.datasets.sources import Dataset, RemoteFile
from lightformer.errors import LightformerError
from lightformer.io import escapes, file_sha256, write_text_atomic

CHUNK = 1 << 20
NET_CHUNK = 1 << 16  # a connection cut mid-chunk loses that chunk, so keep network chunks small
MIRROR_ENV = "LIGHTFORMER_MIRROR"
SUMS = "SHA256SUMS"  # a mirror's own listing, as sha256sum writes it


def read_manifest(dest: Path) -> dict:
    path = dest / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {"files": {}}


def write_manifest(dest: Path, manifest: dict) -> None:
    write_text_atomic(dest / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _tool_versions() -> dict:
    from lightformer.version import __version__

    return {"lightformer": __version__, "requests": requests.__version__, "python": platform.python_version()}


def contained(dest: Path, name: str, where: str) -> Path:
    """``dest/name`` for a file name taken from a listing (Hub API, hub.json, manifest, SHA256SUMS),
    refused unless it is relative, free of ``..`` and resolves inside ``dest``."""
    if escapes(name) or not (dest.resolve() / name).resolve().is_relative_to(dest.resolve()):
        raise LightformerError(f"{where} lists the path {name!r}, which would be written outside {dest}; "
                               f"the listing is refused (paths must be relative, without '..')")
    return dest / name


RETRUST = "lightformer data fetch {dataset} --retrust"


def _expected(f: RemoteFile, manifest: dict, listed: dict | None = None) -> tuple[str | None, int | None, str]:
    """(sha256, size, where the expectation comes from): a pin, then a record made on first use,
    then the mirror's own SHA256SUMS (``listed``), else nothing yet."""
    if f.sha256:
        return f.sha256, f.size, f.vouched or "pinned"
    rec = manifest["files"].get(f.name)
    if rec:
        return rec["sha256"], f.size or rec["bytes"], "recorded on first use"
    if listed and f.name in listed["files"]:
        return listed["files"][f.name], f.size, f"the mirror's listing {listed['where']} (not a pin)"
    return None, f.size, "pinned size only" if f.size else "none yet (trust on first use)"


def parse_sums(text: str, where: str) -> dict[str, str]:
    """name -> sha256 from a ``sha256sum``-style listing; a malformed line is refused with its number."""
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            raise LightformerError(f"{where}:{n}: not a sha256sum line (\"<64 hex digits>  <name>\"): {line[:80]!r}")
        out[parts[1].strip().removeprefix("*")] = parts[0]
    return out


def mirror_listing(dataset: str, mirror: str | None, timeout: float = 60.0) -> dict | None:
    """The mirror's own ``<dataset>/SHA256SUMS`` (``lightformer data mirror`` writes it), if it has
    one: what its files are checked against when nothing pins or records them."""
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if not mirror:
        return None
    if mirror.startswith(("http://", "https://")):
        where = f"{mirror.rstrip('/')}/{dataset}/{SUMS}"
        try:
            r = requests.get(where, timeout=timeout)
        except requests.RequestException:
            return None  # the file's own download then says what is wrong with the mirror
        if r.status_code != 200:
            return None
        text = r.text
    else:
        path = Path(mirror) / dataset / SUMS
        if not path.is_file():
            return None
        where, text = str(path), path.read_text(encoding="utf-8", errors="replace")
    files = parse_sums(text, where)
    for name in files:
        contained(Path("/") / dataset, name, where)
    return {"where": where, "files": files}


def _fix(dataset: str, path: Path, basis: str) -> str:
    """What to do after a refusal: a record made on first use may itself be the wrong one."""
    again = "the download was deleted: fetch again" if path.suffix == ".part" else f"delete {path} and fetch again"
    if basis.startswith("recorded on first use"):
        return (f"{again}; if the recorded checksum is the wrong one (a cut download recorded on first use), "
                f"forget it and fetch anew with `{RETRUST.format(dataset=dataset)}`")
    return f"{again}, or check that the mirror holds the right file"


def _verify(path: Path, f: RemoteFile, sha: str | None, size: int | None, basis: str, dataset: str) -> str:
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise LightformerError(f"{path}: {actual_size:,} bytes, expected {size:,} ({basis}); the download is "
                               f"truncated or another file: {_fix(dataset, path, basis)}")
    digest = file_sha256(path)
    if sha is not None and digest != sha:
        raise LightformerError(f"checksum mismatch for {f.name}: expected sha256 {sha} ({basis}), got {digest}; "
                               f"{_fix(dataset, path, basis)}")
    return digest


def check_complete(path: Path, name: str) -> None:
    """Before a checksum is trusted on first use (or on a mirror's word): the file reads to its end
    in its format with every checksum the format carries (data/integrity.py)."""
    try:
        integrity.check_complete(path, name)
    except LightformerError as e:
        raise LightformerError(f"{e}. The download was deleted: fetch again") from None


def resolve_source(dataset: str, f: RemoteFile, mirror: str | None) -> str:
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if not mirror:
        return f.url
    if mirror.startswith(("http://", "https://")):
        return f"{mirror.rstrip('/')}/{dataset}/{f.name}"
    return str(Path(mirror) / dataset / f.name)


def _resumes_at(r, have: int) -> bool:
    """Whether a 206 answer continues at byte ``have`` (``Content-Range: bytes have-end/total``)."""
    unit, _, spec = (r.headers.get("Content-Range") or "").partition(" ")
    start = spec.split("-", 1)[0]
    return unit == "bytes" and start.isdigit() and int(start) == have


def _download(url: str, part: Path, label: str, progress: bool, timeout: float) -> bool:
    """Stream ``url`` into ``part`` (resuming it); True when the server said how long the body was."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with requests.get(url, stream=True, timeout=timeout, headers=headers) as r:
            if r.status_code == 416:  # nothing left to send: the part file is complete
                return True
            if r.status_code not in (200, 206):
                raise LightformerError(f"{url}: HTTP {r.status_code} {r.reason}")
            if r.status_code == 200 and have:  # the server ignored the Range: start over
                have = 0
            if r.status_code == 206 and not _resumes_at(r, have):
                part.unlink(missing_ok=True)  # appending another offset's bytes would corrupt it
                raise LightformerError(f"{url}: asked for bytes from {have:,}, the server answered 206 with "
                                       f"Content-Range {r.headers.get('Content-Range')!r}; the partial file was "
                                       f"deleted: fetch again (it starts over)")
            length = r.headers.get("Content-Length")
            total = int(length or 0) + have or None
            got = 0
            with open(part, "ab" if have else "wb") as out, tqdm(
                    total=total, initial=have, unit="B", unit_scale=True, desc=part.name[:-5],
                    disable=not progress or None) as bar:
                for chunk in r.iter_content(NET_CHUNK):
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            if length is not None and got != int(length):  # closed early: keep the part, resume next time
                raise LightformerError(f"{url}: the server sent {got:,} of {int(length):,} bytes; the partial file "
                                       f"{part.name} is kept and the next fetch resumes it")
            return length is not None
    except requests.RequestException as e:  # refused, timed out, or cut mid-body
        raise LightformerError(
            f"cannot download {url} ({type(e).__name__}); any partial file {part.name} is kept and the next "
            f"fetch resumes it. Without network, set --mirror DIR|URL (or {MIRROR_ENV}) to a mirror holding "
            f"{label}") from None
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise LightformerError(f"disk full while writing {part}; free space and fetch again (it resumes)") from None
        raise


def _trusted_now(f: RemoteFile, basis: str) -> bool:
    """Whether this fetch is where the file's bytes become trusted without an official pin (or the
    Hub's own sha256): then it must read to its end in its format. A file matching a record made
    on first use was checked when the record was made."""
    pinned = bool(f.sha256) and not (f.vouched or "").startswith("trust on first use")
    return not pinned and basis != "recorded on first use"


def _trust_note(dataset: str, f: RemoteFile, digest: str, sha: str | None, basis: str) -> str | None:
    if sha is None:
        return (f"{dataset}/{f.name}: no official checksum; recorded sha256 {digest} (trust on first use), "
                f"later fetches verify against it")
    if basis.startswith("the mirror's listing"):
        return f"{dataset}/{f.name}: sha256 {digest[:16]}... matches {basis}; only that mirror vouches for it"
    if f.vouched and f.vouched.startswith("trust on first use"):
        return (f"{dataset}/{f.name}: sha256 {digest[:16]}... checked against {f.vouched}; nothing but that "
                f"listing vouches for it")
    return None


def fetch_file(dataset: str, f: RemoteFile, dest: Path, mirror: str | None = None, progress: bool = True,
               timeout: float = 60.0, listed: dict | None = None) -> Path:
    """The verified file at ``dest/f.name``, downloading or copying it if needed. ``listed``: the
    mirror's own SHA256SUMS (``mirror_listing``), used when nothing pins or records the file."""
    manifest = read_manifest(dest)
    sha, size, basis = _expected(f, manifest, listed)
    final = contained(dest, f.name, f"the file list of {dataset}")
    part = final.with_name(final.name + ".part")
    final.parent.mkdir(parents=True, exist_ok=True)  # Hub files sit in folders (3.0.0/train-...)
    source = resolve_source(dataset, f, mirror)
    if not final.exists():
        sized = True
        if source.startswith(("http://", "https://")):
            sized = _download(source, part, f"{dataset}/{f.name}", progress, timeout)
        else:
            if not Path(source).is_file():
                raise LightformerError(
                    f"{f.name} for {dataset} is not in the mirror: {source} does not exist; copy it there "
                    f"(`lightformer data mirror {dataset} --to DIR` on a machine with the data) or point "
                    f"--mirror / {MIRROR_ENV} elsewhere")
            shutil.copyfile(source, part)
        try:
            digest = _verify(part, f, sha, size, basis, dataset)
            if _trusted_now(f, basis):
                check_complete(part, f.name)
            if sha is None and size is None and not sized and not integrity.self_checking(f.name):
                raise LightformerError(f"{source}: the server sent no Content-Length, and a {f.name.rsplit('.', 1)[-1]} "
                                       f"file cannot show it is whole; nothing was recorded. Pin its sha256 (or size) "
                                       f"in the spec, or fetch it from a server that sends its length")
        except LightformerError:
            part.unlink(missing_ok=True)  # a wrong file cannot be resumed into a right one
            raise
        os.replace(part, final)
    else:
        digest = _verify(final, f, sha, size, basis, dataset)
        if _trusted_now(f, basis):
            check_complete(final, f.name)
    rec = manifest["files"].get(f.name, {})
    note = _trust_note(dataset, f, digest, sha, basis)
    if note:
        print(note)
    manifest["files"][f.name] = rec | {
        "url": f.url, "source": source, "bytes": final.stat().st_size, "sha256": digest,
        "verified_against": basis if sha else "recorded now (trust on first use)",
        "retrieved": rec.get("retrieved") or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tools": _tool_versions()}
    manifest["dataset"] = dataset
    write_manifest(dest, manifest)
    return final


def embedded_pins(ds: Dataset, mirror: str) -> Dataset:
    """The dataset with checksums and sizes taken from ``<mirror>/<dataset>/SHA256SUMS``: the
    embedded fixtures are other files than the published ones, so they carry their own pins."""
    sums = Path(mirror) / ds.name / "SHA256SUMS"
    if not sums.is_file():
        raise LightformerError(f"{sums} is missing; write the embedded data with `lightformer data fixtures --out {mirror}`")
    pins = parse_sums(sums.read_text(encoding="utf-8", errors="replace"), str(sums))
    for name in pins:
        contained(Path(mirror) / ds.name, name, str(sums))
    files = []
    for f in ds.files:
        if f.name not in pins:
            raise LightformerError(f"{sums} has no entry for {f.name}")
        files.append(RemoteFile(f.name, f.url, pins[f.name], (Path(mirror) / ds.name / f.name).stat().st_size))
    return Dataset(ds.name, tuple(files), notes="embedded fixture", expected={})


def forget_recorded(ds: Dataset, dest: Path, only: set[str] | None = None, aside: Path | None = None) -> list[str]:
    """``--retrust``: drop the checksums recorded on first use (never a pinned one) and the local
    copies they vouched for, so the next fetch downloads, checks and records them anew; ``only``
    limits it to those names (a refused fetch forgets what it recorded, nothing earlier); ``aside``
    receives the local copies instead of their deletion."""
    manifest, dropped = read_manifest(dest), []
    pinned = {f.name for f in ds.files if f.sha256}
    for name in [n for n in manifest["files"] if n not in pinned and (only is None or n in only)]:
        path = contained(dest, name, str(dest / "manifest.json"))
        if aside is not None and path.exists():
            (aside / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, aside / name)
        path.unlink(missing_ok=True)
        del manifest["files"][name]
        dropped.append(name)
    if ds.hub is not None:
        manifest.pop("hub", None)  # the listing (and a branch's commit) is resolved again too
    write_manifest(dest, manifest)
    return dropped


@contextlib.contextmanager
def retrusting(ds: Dataset, dest: Path):
    """``--retrust`` that loses nothing: the first-use records are dropped and their local copies set
    aside for the block; if it fails (source unreachable, a file refused) both come back as they were,
    and only once it succeeds are the old copies deleted. Yields the names dropped."""
    before = read_manifest(dest) if (dest / "manifest.json").exists() else None
    aside = Path(tempfile.mkdtemp(dir=dest, prefix=".retrust."))
    try:
        yield forget_recorded(ds, dest, aside=aside)
    except BaseException:
        for p in sorted(q for q in aside.rglob("*") if q.is_file()):
            os.replace(p, dest / p.relative_to(aside))
        if before is not None:
            write_manifest(dest, before)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def fetch(ds: Dataset, root: Path, mirror: str | None = None, progress: bool = True,
          embedded: bool = False, retrust: bool = False) -> list[Path]:
    dest = raw_dir(root, ds.name)
    dest.mkdir(parents=True, exist_ok=True)
    if not retrust:
        return _fetch_all(ds, dest, mirror, progress, embedded)
    with retrusting(ds, dest) as dropped:
        for name in dropped:
            print(f"{ds.name}/{name}: recorded checksum set aside (--retrust); fetching anew, the old copy comes "
                  f"back if this fails")
        return _fetch_all(ds, dest, mirror, progress, embedded)


def _fetch_all(ds: Dataset, dest: Path, mirror: str | None, progress: bool, embedded: bool) -> list[Path]:
    if ds.hub is not None:  # list the files at the pinned (or now recorded) commit first
        ds, listing = hub.resolve(ds, read_manifest(dest), mirror, embedded)
        write_manifest(dest, read_manifest(dest) | {"dataset": ds.name, "hub": listing})
    listed = None if embedded or ds.hub is not None else mirror_listing(ds.name, mirror)
    return [fetch_file(ds.name, f, dest, mirror, progress, listed=listed) for f in ds.files]


def verify(ds: Dataset, root: Path) -> list[str]:
    """Re-check every fetched file against its pinned or recorded checksum (for files fetched
    with --embedded, the pins recorded in the manifest at fetch time)."""
    dest = raw_dir(root, ds.name)
    manifest = read_manifest(dest)
    embedded = bool(manifest.get("embedded"))
    if ds.hub is not None:
        ds = hub.recorded(ds, manifest)  # pins: the Hub's sha256 per file at the recorded commit
    elif embedded:
        ds = Dataset(ds.name, tuple(RemoteFile(f.name, f.url) for f in ds.files))
    lines = []
    for f in ds.files:
        path = contained(dest, f.name, f"the file list of {ds.name}")
        if not path.exists():
            raise LightformerError(f"{path} is missing; run `lightformer data fetch {ds.name}`")
        sha, size, basis = _expected(f, manifest)
        if sha is None:
            raise LightformerError(f"{path} has no pinned or recorded checksum; fetch it to record one")
        if ds.hub is not None:
            basis = f.vouched or basis
            basis += " (embedded fixture)" if embedded else ""
        elif embedded:
            basis = "embedded fixture SHA256SUMS"
        _verify(path, f, sha, size, basis, ds.name)
        lines.append(f"{path}: OK ({basis})")
    return lines


def mirror_to(ds: Dataset, root: Path, target: Path) -> list[Path]:
    """Copy verified raw files into a mirror directory (``<target>/<dataset>/<name>``)."""
    verify(ds, root)
    out = []
    if ds.hub is not None:  # the listing, so offline fetches from this mirror need no Hub
        manifest = read_manifest(raw_dir(root, ds.name))
        ds = hub.recorded(ds, manifest)
        out.append(Path(target) / ds.name / "hub.json")
        out[-1].parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out[-1], json.dumps(manifest["hub"], indent=2) + "\n")
    for f in ds.files:
        dst = contained(Path(target) / ds.name, f.name, f"the file list of {ds.name}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(raw_dir(root, ds.name) / f.name, dst)
        out.append(dst)
    if ds.hub is None:  # the mirror's own listing: fetches from it are checked against it
        sums = Path(target) / ds.name / SUMS
        write_text_atomic(sums, "".join(f"{file_sha256(p)}  {p.relative_to(sums.parent).as_posix()}\n" for p in out))
        out.append(sums)
    return out
