"""WMT'14 En-De, prepared as fairseq's examples/translation/prepare-wmt14en2de.sh --icml17
(REFERENCE.md §5): europarl-v7 + commoncrawl + news-commentary-v9; per language normalize
punctuation, remove non-printing characters, Moses tokenizer with -a (aggressive hyphen
splitting); joint BPE (40,000 merges as fairseq, 32,000 as Vaswani); train (and a train-drawn
valid) cleaned after BPE to 1-250 tokens with ratio 1.5; test = newstest2014 *full* (3,003),
tokenized, never cleaned. Valid defaults to newstest2013 (3,000 lines, processed like train);
``valid_from="train"`` takes fairseq's every 100th training line instead. One joined dictionary
(fairseq --joined-dictionary), as share_all_embeddings needs.
"""
from __future__ import annotations

import unicodedata
from multiprocessing import Pool
from pathlib import Path

from sacremoses import MosesPunctNormalizer, MosesTokenizer

from lightformer.data.archives import read_tar_text, seg_lines
from lightformer.data.dictionary import Dictionary
from lightformer.data.indexed import write_parallel
from lightformer.data.iwslt14 import clean, learn_and_apply_bpe
from lightformer.errors import LightformerError

SRC, TGT = "en", "de"
CORPORA = {  # archive -> member prefix (fairseq CORPORA with --icml17)
    "training-parallel-europarl-v7.tgz": "training/europarl-v7.de-en",
    "training-parallel-commoncrawl.tgz": "commoncrawl.de-en",
    "training-parallel-nc-v9.tgz": "training/news-commentary-v9.de-en",
}
DEV = "dev.tgz"
DEV_MEMBERS = {"valid": "dev/newstest2013", "test_src": "dev/newstest2014-deen-src.en.sgm",
               "test_ref": "dev/newstest2014-deen-ref.de.sgm"}


def remove_non_printing(line: str) -> str:
    """remove-non-printing-char.perl: every Unicode 'Other' character (\\p{C}) becomes a space."""
    return "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in line)


def _process_chunk(args):
    lines, lang, normalize = args
    norm = MosesPunctNormalizer(lang=lang)
    tok = MosesTokenizer(lang=lang)
    out = []
    for line in lines:
        if normalize:
            line = remove_non_printing(norm.normalize(line))
        out.append(tok.tokenize(line.strip(), return_str=True, escape=True, aggressive_dash_splits=True))
    return out


def tokenize(lines: list[str], lang: str, normalize: bool = True, workers: int = 1) -> list[str]:
    """normalize-punctuation + remove-non-printing-char (train/valid) and tokenizer -a."""
    if workers <= 1 or len(lines) < 20_000:
        return _process_chunk((lines, lang, normalize))
    size = (len(lines) + workers * 4 - 1) // (workers * 4)
    with Pool(workers) as pool:
        parts = pool.map(_process_chunk, [(lines[i: i + size], lang, normalize) for i in range(0, len(lines), size)])
    return [x for p in parts for x in p]


def prepare_wmt14(raw: Path, out: Path, bpe_merges: int = 40_000, valid_from: str = "newstest2013",
                  workers: int = 1, expected: dict | None = None) -> dict:
    if valid_from not in ("newstest2013", "train"):
        raise LightformerError(f"valid_from={valid_from!r} is invalid; allowed: newstest2013, train")
    src_lines, tgt_lines = [], []
    for archive, prefix in CORPORA.items():
        files = read_tar_text(raw / archive, [f"{prefix}.{SRC}", f"{prefix}.{TGT}"])
        s, t = files[f"{prefix}.{SRC}"], files[f"{prefix}.{TGT}"]
        if len(s) != len(t):
            raise LightformerError(f"{raw / archive}: {len(s)} English but {len(t)} German lines in {prefix}")
        src_lines += s
        tgt_lines += t
    dev = read_tar_text(raw / DEV, [f"{DEV_MEMBERS['valid']}.{SRC}", f"{DEV_MEMBERS['valid']}.{TGT}",
                               DEV_MEMBERS["test_src"], DEV_MEMBERS["test_ref"]])
    src, tgt = tokenize(src_lines, SRC, workers=workers), tokenize(tgt_lines, TGT, workers=workers)
    if valid_from == "train":  # fairseq: awk 'NR%100 == 0' to valid, the rest to train
        valid = ([x for i, x in enumerate(src, 1) if i % 100 == 0], [x for i, x in enumerate(tgt, 1) if i % 100 == 0])
        src, tgt = [x for i, x in enumerate(src, 1) if i % 100], [x for i, x in enumerate(tgt, 1) if i % 100]
    else:
        valid = (tokenize(dev[f"{DEV_MEMBERS['valid']}.{SRC}"], SRC), tokenize(dev[f"{DEV_MEMBERS['valid']}.{TGT}"], TGT))
    test = (tokenize(seg_lines(dev[DEV_MEMBERS["test_src"]]), SRC, normalize=False),
            tokenize(seg_lines(dev[DEV_MEMBERS["test_ref"]]), TGT, normalize=False))
    if len(test[0]) != len(test[1]):
        raise LightformerError(f"newstest2014: {len(test[0])} source but {len(test[1])} reference segments")
    out.mkdir(parents=True, exist_ok=True)
    splits, codes = learn_and_apply_bpe(src, tgt, {"valid": valid, "test": test}, bpe_merges, out)
    splits["train"] = clean(*splits["train"], min_len=1, max_len=250, ratio=1.5)
    if valid_from == "train":
        splits["valid"] = clean(*splits["valid"], min_len=1, max_len=250, ratio=1.5)
    for name, (s, t) in splits.items():
        if not s:
            raise LightformerError(f"split {name!r} is empty after preparation")
        (out / f"{name}.{SRC}").write_text("\n".join(s) + "\n")
        (out / f"{name}.{TGT}").write_text("\n".join(t) + "\n")
    counts = {name: len(s) for name, (s, _) in splits.items()}
    meta = {"dataset": "wmt14", "recipe": "fairseq prepare-wmt14en2de.sh --icml17", "bpe_merges": bpe_merges,
            "bpe_codes": codes.name, "valid_from": valid_from, "joined_dictionary": True}
    if expected:
        meta["expected"] = expected
        meta["drift"] = {k: counts[k] - v for k, v in expected.items() if k in counts}
    joined = Dictionary.build(splits["train"][0] + splits["train"][1])
    write_parallel(out, SRC, TGT, joined, joined, splits, meta=meta)
    return counts | {"drift": meta.get("drift", {})}
