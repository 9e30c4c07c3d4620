"""Datasets (and models) on the Hugging Face Hub, pinned to a commit and checksummed like any
other download.

A Hub source is a repository, a revision and the folders wanted (``3.0.0/``, ``cola/``). It is
resolved to a plain :class:`~lightformer.datasets.sources.Dataset` whose files carry the commit in
their URL (``<endpoint>/datasets/<repo>/resolve/<commit>/<path>``) and the sha256 and size the Hub
stores for each LFS file, so fetch, resume, verify and mirror are the ordinary code paths. The
listing comes, in order, from the dataset's manifest (a fetched dataset never asks again), a
mirror's ``hub.json`` (written by ``lightformer data mirror``; offline clusters), or the Hub API
``GET /api/datasets/<repo>/revision/<revision>?blobs=true``. A branch name as revision is resolved
once and the commit recorded (trust on first use, as for IWSLT'14); a commit sha is checked.
``HF_ENDPOINT`` points at another Hub (docs/reference.md §5).
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import requests

from lightformer.errors import LightformerError
from lightformer.io import escapes

DEFAULT_ENDPOINT = "https://huggingface.co"
COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch: its URL, the sha256 and size it must have (None: recorded on first use),
    and who vouches for them when they are not our own pin (the Hub, a mirror's listing)."""
    name: str
    url: str
    sha256: str | None = None
    size: int | None = None
    vouched: str | None = None


@dataclass(frozen=True)
class HubSource:
    repo: str  # "abisee/cnn_dailymail"
    revision: str  # a commit sha (pinned) or a branch (resolved on first fetch, then recorded)
    folders: tuple[str, ...] = ()  # files under these folders; () = the whole repository
    patterns: tuple[str, ...] = ("*.parquet",)  # file names wanted (fnmatch)
    kind: str = "datasets"  # or "models"


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def _wanted(src: HubSource, path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return (any(fnmatch.fnmatchcase(name, p) for p in src.patterns)
            and (not src.folders or any(path.startswith(f"{d}/") for d in src.folders)))


def api_listing(src: HubSource, timeout: float = 60.0) -> dict:
    """{"commit", "files": [{"path", "size", "sha256"}]} from the Hub API at src.revision."""
    url = f"{endpoint()}/api/{src.kind}/{src.repo}/revision/{src.revision}"
    try:
        r = requests.get(url, params={"blobs": "true"}, timeout=timeout)
    except requests.RequestException as e:
        raise LightformerError(
            f"cannot reach the Hub for {src.repo}@{src.revision} ({type(e).__name__}: {url}). Without network, "
            f"point --mirror at a directory filled by `lightformer data mirror` (it holds hub.json and the "
            f"files), or HF_ENDPOINT at a Hub mirror") from None
    if r.status_code != 200:
        raise LightformerError(f"{url}: HTTP {r.status_code} {r.reason}; check the repository and revision")
    info = r.json()
    files = [{"path": s["rfilename"], "size": (s.get("lfs") or {}).get("size", s.get("size")),
              "sha256": (s.get("lfs") or {}).get("sha256")}
             for s in info.get("siblings", []) if _wanted(src, s["rfilename"])]
    return {"commit": info["sha"], "files": sorted(files, key=lambda f: f["path"])}


def mirror_listing(name: str, mirror: str, timeout: float = 60.0) -> dict | None:
    where = f"{mirror.rstrip('/')}/{name}/hub.json"
    try:
        if mirror.startswith(("http://", "https://")):
            try:
                r = requests.get(where, timeout=timeout)
            except requests.RequestException:
                return None
            return r.json() if r.status_code == 200 else None
        path = Path(mirror) / name / "hub.json"
        return json.loads(path.read_text()) if path.is_file() else None
    except (ValueError, UnicodeDecodeError) as e:
        raise LightformerError(f"{where} is not valid JSON ({e}); rewrite it with `lightformer data mirror`") from None


def check_paths(listing: dict, where: str) -> None:
    """Every listed path must stay inside the dataset's raw directory (see download.contained)."""
    try:
        paths = [f["path"] for f in listing["files"]]
        commit = listing["commit"]
    except (KeyError, TypeError):
        raise LightformerError(f"{where} is not a Hub listing (expected 'commit' and 'files' with 'path')") from None
    if not isinstance(commit, str) or not all(isinstance(p, str) for p in paths):
        raise LightformerError(f"{where} is not a Hub listing (commit and paths must be strings)")
    for p in paths:
        if escapes(p):
            raise LightformerError(f"{where} lists the path {p!r}, which would be written outside the dataset's raw "
                                   f"directory; the listing is refused (paths must be relative, without '..')")


def _check(src: HubSource, listing: dict, where: str, embedded: bool) -> None:
    check_paths(listing, where)
    if listing.get("repo") not in (None, src.repo):
        raise LightformerError(f"{where} lists {listing['repo']}, not {src.repo}")
    if COMMIT.match(src.revision) and listing["commit"] != src.revision and not embedded:
        raise LightformerError(f"{where} is commit {listing['commit']}, but {src.repo} is pinned to {src.revision}; "
                               f"refresh the mirror or change the pin")
    if not listing["files"]:
        raise LightformerError(f"{where}: no {' / '.join(src.patterns)} files under {', '.join(src.folders) or 'the repository'} "
                               f"in {src.repo}@{listing['commit']}")


def vouched_by(listing: dict) -> str:
    """Who gives the listed sha256s: the Hub itself, or only the mirror the listing came from."""
    listed = listing.get("listed_by", "hub")
    if listed == "hub":
        return f"Hub sha256 at {listing['repo']}@{listing['commit'][:12]}"
    if listed == "embedded":
        return "the embedded fixtures' hub.json"
    return f"trust on first use: the listing in {listed.removeprefix('mirror ')}"


def with_files(ds, listing: dict):
    """The dataset with one RemoteFile per listed file, each carrying who vouches for its sha256."""
    src = ds.hub
    check_paths(listing, f"the recorded listing of {ds.name}")
    base = f"{endpoint()}/{'datasets/' if src.kind == 'datasets' else ''}{src.repo}/resolve/{listing['commit']}"
    vouched = vouched_by(listing)
    files = tuple(RemoteFile(f["path"], f"{base}/{f['path']}", f["sha256"], f["size"], vouched)
                  for f in listing["files"])
    return replace(ds, files=files)


def resolve(ds, manifest: dict, mirror: str | None = None, embedded: bool = False):
    """(dataset with files, listing to record) for a Hub dataset, without network when possible."""
    src = ds.hub
    recorded = manifest.get("hub")
    if recorded and recorded.get("revision") == src.revision and recorded.get("repo") == src.repo:
        return with_files(ds, recorded), recorded
    mirror = mirror or os.environ.get("LIGHTFORMER_MIRROR")
    listing = mirror_listing(ds.name, mirror) if mirror else None
    where = f"{mirror}/{ds.name}/hub.json"
    listed_by = "embedded" if embedded else f"mirror {where}"
    if listing is None:
        if embedded:
            raise LightformerError(f"{where} is missing; write the embedded data with `lightformer data fixtures`")
        try:
            listing, where, listed_by = api_listing(src), f"the Hub ({endpoint()})", "hub"
        except LightformerError as e:
            if not mirror:
                raise
            raise LightformerError(f"the mirror has no listing for {ds.name} ({where} is missing; `lightformer data "
                                   f"mirror {ds.name} --to {mirror}` writes it), and the Hub API fallback failed: "
                                   f"{e}") from None
        if not COMMIT.match(src.revision):
            print(f"{ds.name}: {src.repo}@{src.revision} resolved to commit {listing['commit']}; recorded in the "
                  f"manifest, later fetches use it (pin it with the dataset's revision to be explicit)")
    elif not embedded:
        print(f"{ds.name}: file list and sha256s from {where}; only that mirror vouches for them (trust on first "
              f"use: recorded in the manifest as such)")
    _check(src, listing, where, embedded)
    listing = {"repo": src.repo, "revision": src.revision, "commit": listing["commit"], "files": listing["files"],
               "listed_by": listed_by}
    return with_files(ds, listing), listing


def recorded(ds, manifest: dict):
    """The dataset as fetched (its recorded listing); an error if it was never fetched."""
    rec = manifest.get("hub")
    if not rec:
        raise LightformerError(f"{ds.name} has not been fetched (no Hub listing in its manifest); "
                               f"run `lightformer data fetch {ds.name}`")
    return with_files(ds, rec)
