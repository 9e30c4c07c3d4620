"""Fetch and verify raw files: resumable downloads, sha256 + size checks, a manifest per dataset,
and one setting (``mirror``) that points every download at a local directory or an internal
HTTP server with the same ``<dataset>/<name>`` layout, for clusters without internet.

Nothing incomplete ever carries a final name: bytes stream into ``<name>.part`` (kept, so the next
fetch resumes with an HTTP Range request) and are renamed only after verification.
"""
from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import os
import platform
import shutil
from pathlib import Path

import requests
from tqdm.auto import tqdm

from lightformer.data import hub
from lightformer.data.sources import Dataset, RemoteFile
from lightformer.errors import LightformerError
from lightformer.io import write_text_atomic

CHUNK = 1 << 20
NET_CHUNK = 1 << 16  # a connection cut mid-chunk loses that chunk, so keep network chunks small
MIRROR_ENV = "LIGHTFORMER_MIRROR"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(dest: Path) -> dict:
    path = dest / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {"files": {}}


def write_manifest(dest: Path, manifest: dict) -> None:
    write_text_atomic(dest / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _tool_versions() -> dict:
    from lightformer import __version__

    return {"lightformer": __version__, "requests": requests.__version__, "python": platform.python_version()}


def _expected(f: RemoteFile, manifest: dict) -> tuple[str | None, int | None, str]:
    """(sha256, size, where the expectation comes from)."""
    if f.sha256:
        return f.sha256, f.size, "pinned"
    rec = manifest["files"].get(f.name)
    if rec:
        return rec["sha256"], f.size or rec["bytes"], "recorded on first use"
    return None, f.size, "pinned size only" if f.size else "none yet (trust on first use)"


def _verify(path: Path, f: RemoteFile, sha: str | None, size: int | None, basis: str) -> str:
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise LightformerError(
            f"{path}: {actual_size:,} bytes, expected {size:,} ({basis}); the download is truncated or another "
            f"file: delete it and fetch again")
    digest = sha256_of(path)
    if sha is not None and digest != sha:
        raise LightformerError(
            f"checksum mismatch for {f.name}: expected sha256 {sha} ({basis}), got {digest}; "
            f"{'the download was deleted: fetch' if path.suffix == '.part' else f'delete {path} and fetch'} again, or "
            f"check that the mirror holds the right file")
    return digest


def resolve_source(dataset: str, f: RemoteFile, mirror: str | None) -> str:
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if not mirror:
        return f.url
    if mirror.startswith(("http://", "https://")):
        return f"{mirror.rstrip('/')}/{dataset}/{f.name}"
    return str(Path(mirror) / dataset / f.name)


def _download(url: str, part: Path, label: str, progress: bool, timeout: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with requests.get(url, stream=True, timeout=timeout, headers=headers) as r:
            if r.status_code == 416:  # nothing left to send: the part file is complete
                return
            if r.status_code not in (200, 206):
                raise LightformerError(f"{url}: HTTP {r.status_code} {r.reason}")
            if r.status_code == 200 and have:  # the server ignored the Range: start over
                have = 0
            total = int(r.headers.get("Content-Length", 0)) + have or None
            with open(part, "ab" if have else "wb") as out, tqdm(
                    total=total, initial=have, unit="B", unit_scale=True, desc=part.name[:-5],
                    disable=not progress or None) as bar:
                for chunk in r.iter_content(NET_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
    except requests.RequestException as e:  # refused, timed out, or cut mid-body
        raise LightformerError(
            f"cannot download {url} ({type(e).__name__}); any partial file {part.name} is kept and the next "
            f"fetch resumes it. Without network, set --mirror DIR|URL (or {MIRROR_ENV}) to a mirror holding "
            f"{label}") from None
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise LightformerError(f"disk full while writing {part}; free space and fetch again (it resumes)") from None
        raise


def fetch_file(dataset: str, f: RemoteFile, dest: Path, mirror: str | None = None, progress: bool = True,
               timeout: float = 60.0) -> Path:
    """The verified file at ``dest/f.name``, downloading or copying it if needed."""
    manifest = read_manifest(dest)
    sha, size, basis = _expected(f, manifest)
    final, part = dest / f.name, dest / f"{f.name}.part"
    final.parent.mkdir(parents=True, exist_ok=True)  # Hub files sit in folders (3.0.0/train-...)
    source = resolve_source(dataset, f, mirror)
    if not final.exists():
        if source.startswith(("http://", "https://")):
            _download(source, part, f"{dataset}/{f.name}", progress, timeout)
        else:
            if not Path(source).is_file():
                raise LightformerError(
                    f"{f.name} for {dataset} is not in the mirror: {source} does not exist; copy it there "
                    f"(`lightformer data mirror {dataset} --to DIR` on a machine with the data) or point "
                    f"--mirror / {MIRROR_ENV} elsewhere")
            shutil.copyfile(source, part)
        try:
            digest = _verify(part, f, sha, size, basis)
        except LightformerError:
            part.unlink(missing_ok=True)  # a wrong file cannot be resumed into a right one
            raise
        os.replace(part, final)
    else:
        digest = _verify(final, f, sha, size, basis)
    rec = manifest["files"].get(f.name, {})
    if sha is None:
        print(f"{dataset}/{f.name}: no official checksum; recorded sha256 {digest} (trust on first use), "
              f"later fetches verify against it")
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
    pins = dict(reversed(line.split(None, 1)) for line in sums.read_text().splitlines() if line.strip())
    files = []
    for f in ds.files:
        if f.name not in pins:
            raise LightformerError(f"{sums} has no entry for {f.name}")
        files.append(RemoteFile(f.name, f.url, pins[f.name].strip(), (Path(mirror) / ds.name / f.name).stat().st_size))
    return Dataset(ds.name, tuple(files), notes="embedded fixture", expected={})


def fetch(ds: Dataset, root: Path, mirror: str | None = None, progress: bool = True,
          embedded: bool = False) -> list[Path]:
    dest = Path(root) / ds.name / "raw"
    dest.mkdir(parents=True, exist_ok=True)
    if ds.hub is not None:  # list the files at the pinned (or now recorded) commit first
        ds, listing = hub.resolve(ds, read_manifest(dest), mirror, embedded)
        write_manifest(dest, read_manifest(dest) | {"dataset": ds.name, "hub": listing})
    return [fetch_file(ds.name, f, dest, mirror, progress) for f in ds.files]


def verify(ds: Dataset, root: Path) -> list[str]:
    """Re-check every fetched file against its pinned or recorded checksum (for files fetched
    with --embedded, the pins recorded in the manifest at fetch time)."""
    dest = Path(root) / ds.name / "raw"
    manifest = read_manifest(dest)
    embedded = bool(manifest.get("embedded"))
    if ds.hub is not None:
        ds = hub.recorded(ds, manifest)  # pins: the Hub's sha256 per file at the recorded commit
    elif embedded:
        ds = Dataset(ds.name, tuple(RemoteFile(f.name, f.url) for f in ds.files))
    lines = []
    for f in ds.files:
        path = dest / f.name
        if not path.exists():
            raise LightformerError(f"{path} is missing; run `lightformer data fetch {ds.name}`")
        sha, size, basis = _expected(f, manifest)
        if sha is None:
            raise LightformerError(f"{path} has no pinned or recorded checksum; fetch it to record one")
        if ds.hub is not None:
            basis = f"Hub sha256 at {manifest['hub']['repo']}@{manifest['hub']['commit'][:12]}"
            basis += " (embedded fixture)" if embedded else ""
        elif embedded:
            basis = "embedded fixture SHA256SUMS"
        _verify(path, f, sha, size, basis)
        lines.append(f"{path}: OK ({basis})")
    return lines


def mirror_to(ds: Dataset, root: Path, target: Path) -> list[Path]:
    """Copy verified raw files into a mirror directory (``<target>/<dataset>/<name>``)."""
    verify(ds, root)
    out = []
    if ds.hub is not None:  # the listing, so offline fetches from this mirror need no Hub
        manifest = read_manifest(Path(root) / ds.name / "raw")
        ds = hub.recorded(ds, manifest)
        out.append(Path(target) / ds.name / "hub.json")
        out[-1].parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out[-1], json.dumps(manifest["hub"], indent=2) + "\n")
    for f in ds.files:
        dst = Path(target) / ds.name / f.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(root) / ds.name / "raw" / f.name, dst)
        out.append(dst)
    return out
