"""Is a downloaded file whole? Read it through its decompressor to the very end, so the format's
own integrity checks run: gzip's CRC32 and ISIZE after every member, xz's and bz2's stream and block
checks, lz4's frame checksums, zip's per-member CRC. A tar inside is walked through the same stream
and the stream is then drained: stopping at tar's end-of-archive blocks would skip the gzip trailer,
so a byte flipped inside a member would decode to other bytes and pass (docs/reference.md §5).

Used before a checksum is trusted on first use, by every dataset kind (published, DDTP, own corpus).
"""
from __future__ import annotations

import bz2
import gzip
import json
import lzma
import tarfile
import zipfile
from pathlib import Path

from lightformer.errors import LightformerError

CHUNK = 1 << 20
TEXT_SUFFIXES = (".json", ".jsonl", ".txt", ".xml", ".sgm", ".tsv", ".csv", ".src", ".tgt")
# suffix -> opener of the decompressed stream; each raises on a bad checksum or a cut stream
CODECS = {".gz": gzip.open, ".tgz": gzip.open, ".xz": lzma.open, ".txz": lzma.open, ".bz2": bz2.open,
          ".tbz2": bz2.open}


def _lz4_open(path: Path):
    import lz4.frame

    return lz4.frame.open(path, "rb")


def _opener(name: str):
    if name.endswith(".lz4"):
        return _lz4_open
    return next((open_ for suffix, open_ in CODECS.items() if name.endswith(suffix)), None)


def _is_tar(name: str) -> bool:
    return name.endswith((".tar", ".tgz", ".txz", ".tbz2")) or ".tar." in name


def _drain(fh) -> None:
    while fh.read(CHUNK):
        pass


def _read_stream(path: Path, name: str) -> None:
    opener = _opener(name)
    with (opener(path) if opener else open(path, "rb")) as fh:
        if _is_tar(name):
            with tarfile.open(fileobj=fh, mode="r|") as tar:  # streaming: one pass, nothing extracted
                for member in tar:
                    if member.isfile():
                        _drain(tar.extractfile(member))
        _drain(fh)  # past tar's end-of-archive blocks: the decompressor's trailer and checksums


def _read_inner(path: Path, name: str) -> None:
    if name.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()  # reads every member, checking its CRC
            if bad is not None:
                raise zipfile.BadZipFile(f"member {bad} fails its CRC")
    elif name.endswith(".parquet"):
        import pyarrow.parquet as pq

        pq.ParquetFile(path).metadata
    elif name.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            fh.keys()
    elif _opener(name) or _is_tar(name):
        _read_stream(path, name)
    elif name.endswith(TEXT_SUFFIXES):
        text = path.read_text(encoding="utf-8")
        if name.endswith(".json"):
            json.loads(text)


def self_checking(name: str) -> bool:
    """Whether the format itself shows a cut file (an end marker, a footer, a length header): plain
    text does not, so a text file whose length nobody vouched for cannot be trusted on first use."""
    return bool(_opener(name) or _is_tar(name) or name.endswith((".zip", ".parquet", ".safetensors", ".json")))


def check_complete(path: str | Path, name: str | None = None) -> None:
    """Refuse ``path`` unless it reads to its end in its format (``name`` gives the format when
    ``path`` is a ``.part`` file) and every checksum the format carries holds."""
    path = Path(path)
    name = name or path.name
    try:
        _read_inner(path, name)
    except Exception as e:  # each codec has its own errors for a cut or altered stream
        raise LightformerError(f"{name} is incomplete or not a valid {name.rsplit('.', 1)[-1]} file "
                               f"({type(e).__name__}: {str(e)[:120]}); its checksum was not recorded") from None

