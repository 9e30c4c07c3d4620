"""Debian's package-description translations (DDTP) as a small real parallel corpus (docs/reference.md §8).

apt fetches them itself (``apt-get update -o Acquire::Languages=de,en``) into its lists directory
as ``<archive>_dists_<suite>_main_i18n_Translation-<lang>[.lz4|.bz2|.xz]``. Our code only reads
those local files (or a mirror directory holding the same names); it never talks to the package
archive (for users elsewhere, ``fetch_ddtp_http`` reads the same files from an archive URL,
checked against the suite's Release file). Records are deb822 stanzas: ``Package``, ``Description-md5``, ``Description-<lang>``
(first line the short description; continuation lines start with a space; `` .`` separates
paragraphs). The translations align with the English originals through ``Description-md5``.

Segments: each short description, plus the long description's paragraphs where both sides have
the same number of them. Pairs are deduplicated, and split by a hash of the English side, so a
sentence and its duplicates always land in the same split and the split never depends on order.
"""
from __future__ import annotations

import bz2
import hashlib
import lzma
import re
import shutil
from pathlib import Path

from lightformer.errors import LightformerError
from lightformer.io import file_sha256

SUFFIXES = (".lz4", ".xz", ".bz2", "")
SPLIT_PERMILLE = {"test": 40, "valid": 40}  # of each 1000 hash buckets; the rest is train


def translation_name(suite: str, lang: str, archive: str = "deb.debian.org_debian") -> str:
    return f"{archive}_dists_{suite}_main_i18n_Translation-{lang}"


def find_translation(source: Path, suite: str, lang: str) -> Path:
    """The Translation file of ``lang`` in an apt lists (or mirror) directory, any compression."""
    pattern = re.compile(rf"(^|_)dists_{re.escape(suite)}_main_i18n_Translation-{re.escape(lang)}"
                         rf"({'|'.join(re.escape(s) for s in SUFFIXES if s)})?$")
    found = sorted(p for p in Path(source).iterdir() if p.is_file() and pattern.search(p.name))
    if not found:
        raise LightformerError(
            f"no Translation-{lang} for suite {suite!r} in {str(source)!r}; run "
            f"`apt-get update -o Acquire::Languages=de,en` (apt stores them in /var/lib/apt/lists), or name a "
            f"mirror directory holding {translation_name(suite, lang)}.lz4")
    return found[0]


def read_bytes(path: Path) -> bytes:
    """A Translation file's content, decompressed by its suffix (lz4 frames, xz, bz2, or plain)."""
    data = Path(path).read_bytes()
    try:
        if path.name.endswith(".lz4"):
            import lz4.frame

            data = lz4.frame.decompress(data)
        elif path.name.endswith(".xz"):
            data = lzma.decompress(data)
        elif path.name.endswith(".bz2"):
            data = bz2.decompress(data)
    except (OSError, RuntimeError, EOFError, lzma.LZMAError, ValueError) as e:
        raise LightformerError(f"{path}: cannot decompress ({e}); fetch it again") from None
    return data


def read_text(path: Path) -> str:
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise LightformerError(f"{path}:{line}: not UTF-8 ({e.reason})") from None


def parse(text: str, lang: str) -> dict[str, tuple[str, list[str]]]:
    """Description-md5 -> (short description, long-description paragraphs)."""
    records = {}
    key = f"Description-{lang}"
    for stanza in text.split("\n\n"):
        md5, short, body, in_desc = None, None, [], False
        for line in stanza.split("\n"):
            if line.startswith("Description-md5:"):
                md5, in_desc = line.split(":", 1)[1].strip(), False
            elif line.startswith(key + ":"):
                short, in_desc = line.split(":", 1)[1].strip(), True
            elif line.startswith(" ") and in_desc:
                body.append(line[1:])
            elif line and not line.startswith(" "):
                in_desc = False
        if md5 and short is not None:
            records[md5] = (short, paragraphs(body))
    return records


def paragraphs(lines: list[str]) -> list[str]:
    """deb822 long description -> paragraphs (a lone ``.`` separates them), lines joined by spaces."""
    out, cur = [], []
    for line in lines:
        if line.strip() == ".":
            if cur:
                out.append(" ".join(cur))
            cur = []
        else:
            cur.append(line.strip())
    if cur:
        out.append(" ".join(cur))
    return [" ".join(p.split()) for p in out if p.strip()]


def align(src: dict, tgt: dict) -> list[tuple[str, str]]:
    """Pairs for every Description-md5 on both sides: the short descriptions, and the paragraphs
    where both sides have as many; deduplicated, in md5 order (deterministic)."""
    pairs, seen = [], set()
    for md5 in sorted(src.keys() & tgt.keys()):
        (s_short, s_par), (t_short, t_par) = src[md5], tgt[md5]
        candidates = [(s_short, t_short)] + (list(zip(s_par, t_par)) if len(s_par) == len(t_par) else [])
        for s, t in candidates:
            if s and t and (s, t) not in seen:
                seen.add((s, t))
                pairs.append((s, t))
    return pairs


def split_of(english: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(english.encode("utf-8")).digest()[:4], "big") % 1000
    if bucket < SPLIT_PERMILLE["test"]:
        return "test"
    if bucket < SPLIT_PERMILLE["test"] + SPLIT_PERMILLE["valid"]:
        return "valid"
    return "train"


def split_pairs(pairs: list[tuple[str, str]], english_side: int) -> dict[str, tuple[list[str], list[str]]]:
    out = {name: ([], []) for name in ("train", "valid", "test")}
    for pair in pairs:
        s, t = out[split_of(pair[english_side])]
        s.append(pair[0])
        t.append(pair[1])
    return out


def release_date(source: Path, suite: str) -> str | None:
    """The ``Date:`` of the suite's (In)Release file beside the Translation files, if there."""
    for p in sorted(Path(source).glob(f"*_dists_{suite}_*Release")):
        if p.name.endswith(("_InRelease", "_Release")):
            for line in p.read_text(errors="replace").splitlines():
                if line.startswith("Date:"):
                    return line.split(":", 1)[1].strip()
    return None


def release_beside(source: Path, suite: str) -> dict[str, tuple[str, int]]:
    """The SHA256 section of the suite's (In)Release file in an apt lists directory, or {}."""
    for p in sorted(Path(source).glob(f"*_dists_{suite}_*Release")):
        if p.name.endswith(("_InRelease", "_Release")):
            return release_sha256(p.read_text(errors="replace"))
    return {}


def check_translation(path: Path, lang: str, listed: dict[str, tuple[str, int]]) -> str:
    """Refuse a Translation file that does not read to its end with its format's checksums, or whose
    content differs from what the suite's Release lists for the uncompressed file (apt recompresses
    its lists as lz4 frames without a content checksum, so only this sees an altered byte).
    Returns what vouches for it. With the Release listing, hashing the decompressed content is the
    whole check (a cut stream fails to decompress or hashes otherwise); without it, the format's own."""
    from lightformer.datasets.integrity import check_complete

    rel = f"main/i18n/Translation-{lang}"
    if rel not in listed:
        check_complete(path)
        return "trust on first use: apt verified it against the suite's Release file"
    content = read_bytes(path)
    sha, size = listed[rel]
    got = hashlib.sha256(content).hexdigest()
    if got != sha or len(content) != size:
        raise LightformerError(f"{path}: its content has sha256 {got[:12]}... ({len(content):,} bytes), the suite's "
                               f"Release file lists {sha[:12]}... ({size:,} bytes) for {rel}: the file is corrupt "
                               f"or from another suite; run `apt-get update` (or fetch it again), nothing was recorded")
    return "content checked against the suite's Release file beside it"


def fetch_ddtp(source: Path, raw: Path, pair: tuple[str, str], suite: str, retrust: bool = False) -> dict:
    """Copy the pair's Translation files from ``source`` into ``raw`` and record their sha256 in
    ``raw/manifest.json`` on first use; later fetches must find the same bytes (``retrust``: new
    bytes replace the records, once they pass every other check)."""
    from lightformer.datasets.download import read_manifest, write_manifest

    source, raw = Path(source), Path(raw)
    if not source.is_dir():
        raise LightformerError(f"DDTP source {str(source)!r} is not a directory (apt's lists directory or a mirror)")
    listed = release_beside(source, suite)
    found = {lang: find_translation(source, suite, lang) for lang in pair}
    basis = {lang: check_translation(src, lang, listed) for lang, src in found.items()}  # before anything is written
    raw.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(raw)
    files = manifest.setdefault("files", {})
    shas = {lang: file_sha256(src) for lang, src in found.items()}
    for lang, src in found.items():  # every refusal before the first write
        known = None if retrust else files.get(src.name, {}).get("sha256")
        if known and known != shas[lang]:
            raise LightformerError(f"{src} has sha256 {shas[lang][:12]}..., but {raw / 'manifest.json'} recorded "
                                   f"{known[:12]}... on first use: the suite moved on; prepare into a new root, or "
                                   f"trust the new file with `lightformer data fetch ddtp --retrust`")
    for lang, src in found.items():
        sha = shas[lang]
        dest = raw / src.name
        if not dest.exists() or file_sha256(dest) != sha:
            shutil.copyfile(src, dest.with_name(dest.name + ".part"))
            dest.with_name(dest.name + ".part").replace(dest)
        files[src.name] = {"sha256": sha, "size": src.stat().st_size, "lang": lang, "basis": basis[lang]}
    manifest |= {"dataset": "ddtp", "suite": suite, "pair": "-".join(pair), "source": str(source),
                 "release_date": release_date(source, suite) or manifest.get("release_date")}
    write_manifest(raw, manifest)
    return manifest


def archive_prefix(base_url: str) -> str:
    """apt's file-name prefix for an archive URL (slashes to underscores, a port keeps its colon):
    ``https://deb.debian.org/debian`` -> ``deb.debian.org_debian``, so files fetched over http(s)
    carry the names apt gives them."""
    rest = base_url.split("://", 1)[-1].strip("/")
    return rest.replace("/", "_")


def release_sha256(text: str) -> dict[str, tuple[str, int]]:
    """The Release file's SHA256 section: path under dists/<suite>/ -> (sha256, size)."""
    out, inside = {}, False
    for line in text.splitlines():
        if not line.startswith(" "):
            inside = line.strip() == "SHA256:"
            continue
        parts = line.split()
        if inside and len(parts) == 3:
            out[parts[2]] = (parts[0], int(parts[1]))
    return out


def _download_checked(url: str, dest: Path, sha: str | None, size: int | None, what: str) -> str:
    """``url`` into ``dest`` through ``dest.part``, renamed only when sha256 and size match."""
    from lightformer.datasets.download import _download

    part = dest.with_name(dest.name + ".part")
    part.unlink(missing_ok=True)  # the Release pins whole files: never resume into a mismatch
    _download(url, part, what, progress=True, timeout=60.0)
    digest, got = file_sha256(part), part.stat().st_size
    if (sha and digest != sha) or (size is not None and got != size):
        part.unlink()
        raise LightformerError(f"{url}: sha256 {digest[:12]}..., {got:,} bytes: does not match the suite's Release "
                               f"file (sha256 {sha[:12]}..., {size:,} bytes); the download was deleted: fetch again, "
                               f"or check the archive URL")
    part.replace(dest)
    return digest


def fetch_ddtp_http(base_url: str, raw: Path, pair: tuple[str, str], suite: str, retrust: bool = False) -> dict:
    """The pair's Translation files from a Debian archive over http(s), as apt gets them: the
    suite's Release file (its sha256 recorded on first use, as apt's InRelease signature is not
    checked here), then each ``main/i18n/Translation-<lang>.{xz,bz2}`` checked against it."""
    from lightformer.datasets.download import read_manifest, write_manifest

    base, raw = base_url.rstrip("/"), Path(raw)
    raw.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(raw)
    prefix = archive_prefix(base)
    release = raw / f"{prefix}_dists_{suite}_Release"
    fresh = release.with_name(release.name + ".new")  # the recorded Release stays until the new one agrees
    digest = _download_checked(f"{base}/dists/{suite}/Release", fresh, None, None, f"{suite}/Release")
    known = None if retrust else manifest.get("release", {}).get("sha256")
    if known and known != digest:
        fresh.unlink()
        raise LightformerError(f"{base}/dists/{suite}/Release has sha256 {digest[:12]}..., but {raw / 'manifest.json'} "
                               f"recorded {known[:12]}... on first use: the suite moved on; prepare into a new root, or "
                               f"trust the new file with `lightformer data fetch ddtp --retrust`")
    fresh.replace(release)
    listed = release_sha256(release.read_text(errors="replace"))
    files = manifest.setdefault("files", {})
    for lang in pair:
        rel = next((f"main/i18n/Translation-{lang}{x}" for x in (".xz", ".bz2", "")
                    if f"main/i18n/Translation-{lang}{x}" in listed), None)
        if rel is None:
            raise LightformerError(f"{base}/dists/{suite}/Release lists no main/i18n/Translation-{lang}[.xz|.bz2]; "
                                   f"is {lang!r} translated in {suite}?")
        sha, size = listed[rel]
        dest = raw / (translation_name(suite, lang, prefix) + rel[len(f"main/i18n/Translation-{lang}"):])
        if not dest.exists() or file_sha256(dest) != sha:
            _download_checked(f"{base}/dists/{suite}/{rel}", dest, sha, size, f"{suite}/{rel}")
        files[dest.name] = {"sha256": sha, "size": size, "lang": lang, "url": f"{base}/dists/{suite}/{rel}",
                            "basis": "checked against the suite's Release file (its sha256 recorded on first use)"}
    manifest |= {"dataset": "ddtp", "suite": suite, "pair": "-".join(pair), "source": base,
                 "release": {"name": release.name, "sha256": digest}, "release_date": release_date(raw, suite)}
    write_manifest(raw, manifest)
    return manifest


def verify_ddtp(raw: Path) -> dict:
    from lightformer.datasets.download import read_manifest

    manifest = read_manifest(Path(raw))
    if not manifest.get("files"):
        raise LightformerError(f"{raw} holds no fetched DDTP files; run lightformer data fetch ddtp first")
    from lightformer.datasets.download import contained

    for name, rec in manifest["files"].items():
        path = contained(Path(raw), name, f"{raw}/manifest.json")
        if not path.is_file() or file_sha256(path) != rec["sha256"]:
            raise LightformerError(f"{path} is missing or changed since it was fetched; fetch it again")
    return manifest


def prepare_ddtp(raw: Path, out: Path, pair: tuple[str, str], bpe_merges: int = 8_000, progress: bool = True) -> dict:
    """Aligned, tokenised (Moses, lowercased, as the IWSLT recipe), length-cleaned, BPE'd splits."""
    from lightformer.data.dictionary import Dictionary
    from lightformer.data.indexed import write_parallel
    from lightformer.datasets.text import clean, learn_and_apply_bpe, tokenize_lowercase

    manifest = verify_ddtp(raw)
    by_lang = {rec["lang"]: Path(raw) / name for name, rec in manifest["files"].items()}
    src_lang, tgt_lang = pair
    records = {lang: parse(read_text(by_lang[lang]), lang) for lang in pair}
    english = pair.index("en") if "en" in pair else 1
    pairs = align(records[src_lang], records[tgt_lang])
    if not pairs:
        raise LightformerError(f"no aligned {src_lang}-{tgt_lang} descriptions in {raw}")
    splits = {}
    for name, (s, t) in split_pairs(pairs, english).items():
        s, t = clean(tokenize_lowercase(s, src_lang, progress), tokenize_lowercase(t, tgt_lang, progress))
        if not s:
            raise LightformerError(f"DDTP split {name!r} is empty after cleaning")
        splits[name] = (s, t)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bpe_splits, codes = learn_and_apply_bpe(*splits["train"], {k: v for k, v in splits.items() if k != "train"},
                                            bpe_merges, out)
    meta = {"dataset": "ddtp", "recipe": "DDTP aligned by Description-md5; Moses tokenised, lowercased, BPE",
            "suite": manifest.get("suite"), "release_date": manifest.get("release_date"),
            "records": {lang: len(r) for lang, r in records.items()}, "aligned_pairs": len(pairs),
            "split_permille": SPLIT_PERMILLE, "bpe_merges": bpe_merges, "bpe_codes": codes.name}
    write_parallel(out, src_lang, tgt_lang, Dictionary.build(bpe_splits["train"][0]),
                   Dictionary.build(bpe_splits["train"][1]), bpe_splits, meta=meta)
    return {name: len(s) for name, (s, _) in bpe_splits.items()} | {"aligned_pairs": len(pairs)}
