"""Text processing shared by every recipe: the Moses tokenizer pipelines (as fairseq's prepare
scripts run them), clean-corpus-n.perl's length filter, and joint BPE (subword-nmt)
(docs/reference.md §5)."""
from __future__ import annotations

import io
import sys
import unicodedata
from multiprocessing import Pool
from pathlib import Path

from sacremoses import MosesPunctNormalizer, MosesTokenizer

from lightformer.progress import track

CHUNK_LINES = 5_000  # tokenizer work unit: small enough for steady progress lines, large enough to amortise IPC


def remove_non_printing(line: str) -> str:
    """remove-non-printing-char.perl: every Unicode 'Other' character (\\p{C}) becomes a space."""
    return "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in line)


def _process_chunk(args):
    lines, lang, normalize, aggressive, escape = args
    norm = MosesPunctNormalizer(lang=lang)
    tok = MosesTokenizer(lang=lang)
    out = []
    for line in lines:
        if normalize:
            line = remove_non_printing(norm.normalize(line))
        out.append(tok.tokenize(line.strip(), return_str=True, escape=escape, aggressive_dash_splits=aggressive))
    return out


def tokenize(lines: list[str], lang: str, normalize: bool = True, workers: int = 1, aggressive: bool = True,
             escape: bool = True) -> list[str]:
    """normalize-punctuation + remove-non-printing-char (train/valid) and tokenizer -a, in
    ``workers`` processes for large inputs."""
    size = min(CHUNK_LINES, max(1, (len(lines) + workers - 1) // workers))
    chunks = [(lines[i: i + size], lang, normalize, aggressive, escape) for i in range(0, len(lines), size)]
    label = f"tokenize {lang} ({size:,}-line chunks)"
    if workers <= 1 or len(lines) < 20_000:
        parts = [_process_chunk(c) for c in track(chunks, label, unit="chunk")]
    else:
        with Pool(workers) as pool:
            parts = list(track(pool.imap(_process_chunk, chunks), label, total=len(chunks), unit="chunk"))
    return [x for p in parts for x in p]


def tokenize_lowercase(lines: list[str], lang: str, progress: bool = False) -> list[str]:
    """Moses tokenizer.perl -l LANG (escape on, no -a), then lowercase: fairseq's IWSLT'14 recipe."""
    tok = MosesTokenizer(lang=lang)
    return [tok.tokenize(line.strip(), return_str=True, escape=True).lower()
            for line in track(lines, f"tokenize {lang}", unit="line", enabled=progress)]


def clean(src: list[str], tgt: list[str], min_len: int = 1, max_len: int = 175, ratio: float = 1.5):
    """clean-corpus-n.perl: keep pairs with min..max tokens per side and length ratio <= ratio."""
    keep_s, keep_t = [], []
    for s, t in zip(src, tgt):
        s, t = " ".join(s.split()), " ".join(t.split())
        ns, nt = len(s.split()), len(t.split())
        if min_len <= ns <= max_len and min_len <= nt <= max_len and ns / nt <= ratio and nt / ns <= ratio:
            keep_s.append(s)
            keep_t.append(t)
    return keep_s, keep_t


def learn_and_apply_bpe(train_src, train_tgt, others: dict[str, tuple[list[str], list[str]]], merges: int,
                        work: Path, glossaries: tuple[str, ...] = ()) -> tuple[dict, Path]:
    """Joint BPE (subword-nmt learn_bpe on train.de + train.en), applied to every split;
    ``glossaries`` are never split (e.g. a sentence separator token)."""
    from subword_nmt.apply_bpe import BPE
    from subword_nmt.learn_bpe import learn_bpe

    codes = work / "code"
    print(f"learn BPE: {merges:,} merges on {len(train_src):,} training pairs", file=sys.stderr, flush=True)
    with open(codes, "w") as out:
        learn_bpe(io.StringIO("\n".join(train_src + train_tgt) + "\n"), out, merges)
    with open(codes) as f:
        bpe = BPE(f, glossaries=list(glossaries) or None)
    splits = {"train": (train_src, train_tgt)} | others
    out = {}
    for name, (s, t) in splits.items():
        pairs = track(zip(s, t), f"apply BPE to {name}", total=len(s), unit="pair")
        done = [(bpe.process_line(x), bpe.process_line(y)) for x, y in pairs]
        out[name] = ([x for x, _ in done], [y for _, y in done])
    return out, codes
