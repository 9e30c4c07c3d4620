"""Prepared splits: token ids of all sentences in one flat array plus offsets, memory-mapped,
so a split of millions of sentences loads in milliseconds.

Layout of a prepared directory (written by ``lightformer data prepare`` and by the synthetic
task): ``meta.json`` (source/target language), ``dict.{lang}.txt``, and per split and language
``{split}.{lang}.bin`` (int32 ids, </s> included) with ``{split}.{lang}.idx`` (int64 offsets, n+1).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from lightformer.data.dictionary import Dictionary
from lightformer.errors import LightformerError
from lightformer.io import file_sha256


def write_split(prefix: str | Path, sentences: list[torch.Tensor]) -> None:
    lengths = np.array([len(s) for s in sentences], dtype=np.int64)
    offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate([s.numpy().astype(np.int32) for s in sentences]) if sentences else np.zeros(0, np.int32)
    Path(f"{prefix}.bin").write_bytes(flat.tobytes())
    Path(f"{prefix}.idx").write_bytes(offsets.tobytes())


class IndexedTokens:
    """Sentence i is ``tokens[offsets[i]:offsets[i+1]]``; nothing is read until asked for."""

    def __init__(self, prefix: str | Path):
        bin_path, idx_path = Path(f"{prefix}.bin"), Path(f"{prefix}.idx")
        if not bin_path.is_file() or not idx_path.is_file():
            raise LightformerError(f"prepared split {str(prefix)!r} is missing ({bin_path.name}/{idx_path.name})")
        self.offsets = np.fromfile(idx_path, dtype=np.int64)
        size = bin_path.stat().st_size // 4
        if len(self.offsets) < 1 or self.offsets[-1] != size:
            raise LightformerError(f"prepared split {str(prefix)!r} is corrupt: offsets end at "
                                   f"{self.offsets[-1] if len(self.offsets) else None}, data holds {size} tokens")
        self.tokens = np.memmap(bin_path, dtype=np.int32, mode="r") if size else np.zeros(0, np.int32)
        self.sizes = np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.tokens[self.offsets[i]: self.offsets[i + 1]], dtype=np.int64))


class ParallelData:
    """A prepared directory: dictionaries and memory-mapped source/target splits."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.is_file():
            raise LightformerError(f"{str(self.root)!r} is not a prepared data directory (no meta.json)")
        try:
            self.meta = json.loads(meta_path.read_text())
            self.src, self.tgt = str(self.meta["src"]), str(self.meta["tgt"])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
            raise LightformerError(f"{meta_path} is malformed ({type(e).__name__}: {e}); expected JSON with 'src' "
                                   f"and 'tgt'; prepare the data again") from None
        for lang in (self.src, self.tgt):
            if not (self.root / f"dict.{lang}.txt").is_file():
                raise LightformerError(f"{str(self.root)!r} has no dictionary dict.{lang}.txt; prepare the data again")
        self.src_dict = Dictionary.load(self.root / f"dict.{self.src}.txt")
        self.tgt_dict = Dictionary.load(self.root / f"dict.{self.tgt}.txt")

    def split(self, name: str) -> tuple[IndexedTokens, IndexedTokens]:
        src, tgt = IndexedTokens(self.root / f"{name}.{self.src}"), IndexedTokens(self.root / f"{name}.{self.tgt}")
        if len(src) != len(tgt):
            raise LightformerError(f"split {name!r} has {len(src)} source and {len(tgt)} target sentences")
        if len(src) == 0:
            raise LightformerError(f"split {name!r} in {str(self.root)!r} is empty")
        return src, tgt


def fingerprint(root: str | Path) -> dict[str, str]:
    """What a training run is bound to: sha256 of ``meta.json``, the dictionaries and every split
    index, and the byte size of every token array (hashing those would cost seconds per GB at each
    start; their index already fixes every sentence's length)."""
    root, out = Path(root), {}
    for path in sorted(root.iterdir()):
        if path.name == "meta.json" or path.name.startswith("dict.") or path.suffix == ".idx":
            out[path.name] = "sha256:" + file_sha256(path)
        elif path.suffix == ".bin":
            out[path.name] = f"bytes:{path.stat().st_size}"
    return out


def write_parallel(root: str | Path, src: str, tgt: str, src_dict: Dictionary, tgt_dict: Dictionary,
                   splits: dict[str, tuple[list[str], list[str]]], meta: dict | None = None) -> Path:
    """Encode text splits with the dictionaries and write a prepared directory (token arrays plus
    the text they encode, ``<split>.<lang>``, for inspection and scoring)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    src_dict.save(root / f"dict.{src}.txt")
    tgt_dict.save(root / f"dict.{tgt}.txt")
    counts = {}
    for name, (s_lines, t_lines) in splits.items():
        write_split(root / f"{name}.{src}", [src_dict.encode(x) for x in s_lines])
        write_split(root / f"{name}.{tgt}", [tgt_dict.encode(x) for x in t_lines])
        for lang, lines in ((src, s_lines), (tgt, t_lines)):  # the (BPE'd) text, as fairseq's scripts leave it
            (root / f"{name}.{lang}").write_text("".join(line + "\n" for line in lines))
        counts[name] = len(s_lines)
    (root / "meta.json").write_text(json.dumps({"src": src, "tgt": tgt, "sentences": counts} | (meta or {}),
                                               indent=2) + "\n")
    return root


def write_joined(root: str | Path, src: str, tgt: str, splits: dict[str, tuple[list[str], list[str]]], meta: dict,
                 expected: dict | None = None) -> dict:
    """Split sizes (+ drift against ``expected``) after writing ``splits`` with one dictionary
    built from both sides of train (fairseq --joined-dictionary, as shared embeddings need)."""
    counts = {name: len(s) for name, (s, _) in splits.items()}
    meta = meta | {"joined_dictionary": True}
    if expected:
        meta["expected"] = expected
        meta["drift"] = {k: counts[k] - v for k, v in expected.items() if k in counts}
    joined = Dictionary.build(splits["train"][0] + splits["train"][1])
    write_parallel(root, src, tgt, joined, joined, splits, meta=meta)
    return counts | {"drift": meta.get("drift", {})}
