"""CNN/DailyMail 3.0.0 (the Hub's parquet) prepared for a Transformer encoder-decoder, as See et
al. (2017) set it up: Moses-tokenized, cased; articles truncated to 400 tokens and summaries to
100 (both configurable); joint BPE over articles and summaries with one dictionary (shared
embeddings). Summary sentences are kept apart by a ``<q>`` token (PreSumm's convention) so
ROUGE-Lsum can split hypotheses into sentences without a sentence splitter at run time; the
untouched highlights are written beside the splits as references (``{split}.ref.jsonl``).
Nothing is filtered, so the split sizes stay the published 287,113 / 13,368 / 11,490.
"""
from __future__ import annotations

import json
from pathlib import Path

from lightformer.data.indexed import write_joined
from lightformer.datasets.text import learn_and_apply_bpe, tokenize
from lightformer.errors import LightformerError

SRC, TGT = "article", "summary"
SEP = "<q>"
HUB_SPLITS = {"train": "train", "valid": "validation", "test": "test"}
CONFIG = "3.0.0"


def read_split(raw: Path, split: str) -> tuple[list[str], list[str]]:
    """(articles, highlights) of one split from its parquet shards, in shard order."""
    import pyarrow.parquet as pq

    shards = sorted((Path(raw) / CONFIG).glob(f"{HUB_SPLITS[split]}-*.parquet"))
    if not shards:
        raise LightformerError(f"{raw}/{CONFIG}: no {HUB_SPLITS[split]}-*.parquet; fetch cnndm first")
    articles, highlights = [], []
    for path in shards:
        try:
            table = pq.read_table(path)
        except Exception as e:  # pyarrow raises several types for damaged files
            raise LightformerError(f"{path}: not a readable parquet file ({e}); delete it and fetch again") from None
        missing = {"article", "highlights"} - set(table.column_names)
        if missing:
            raise LightformerError(f"{path}: columns {sorted(missing)} missing (has {table.column_names}); "
                                   f"is this abisee/cnn_dailymail {CONFIG}?")
        articles += table.column("article").to_pylist()
        highlights += table.column("highlights").to_pylist()
    return articles, highlights


def _truncate(line: str, n: int) -> str:
    return " ".join(line.split()[:n])


def summary_sentences(highlights: str) -> list[str]:
    return [s.strip() for s in highlights.split("\n") if s.strip()]


def prepare_cnndm(raw: Path, out: Path, bpe_merges: int = 20_000, src_max_tokens: int = 400,
                  tgt_max_tokens: int = 100, workers: int = 1, expected: dict | None = None) -> dict:
    text = {}
    for split in HUB_SPLITS:
        text[split] = read_split(raw, split)
        if not text[split][0]:
            raise LightformerError(f"{raw}: split {split!r} is empty")
    meta = {"dataset": "cnndm", "recipe": "See et al. 2017 truncation, Moses tokens, joint BPE"}
    return prepare_summaries(text, out, bpe_merges, src_max_tokens, tgt_max_tokens, workers, meta, expected)


def prepare_summaries(text: dict[str, tuple[list[str], list[str]]], out: Path, bpe_merges: int, src_max_tokens: int,
                      tgt_max_tokens: int, workers: int, meta: dict, expected: dict | None = None, lang: str = "en",
                      lowercase: bool = False) -> dict:
    """(documents, summaries) per split -> truncated Moses tokens, ``<q>`` between summary
    sentences (one per line of the summary), joint BPE, one dictionary; references beside."""
    out.mkdir(parents=True, exist_ok=True)
    tokens = {}
    for split, (articles, highlights) in text.items():
        src = [_truncate(x, src_max_tokens) for x in tokenize(articles, lang, normalize=False, workers=workers,
                                                                 aggressive=False, escape=False)]
        sentences = [summary_sentences(h) for h in highlights]
        flat = tokenize([s for ss in sentences for s in ss], lang, normalize=False, workers=workers,
                        aggressive=False, escape=False)
        tgt, i = [], 0
        for ss in sentences:
            tgt.append(_truncate(f" {SEP} ".join(flat[i: i + len(ss)]), tgt_max_tokens))
            i += len(ss)
        if lowercase:
            src, tgt = [x.lower() for x in src], [x.lower() for x in tgt]  # SEP is lowercase already
        tokens[split] = (src, tgt)
        with open(out / f"{split}.ref.jsonl", "w") as f:  # references for ROUGE: the original summaries
            f.writelines(json.dumps(h) + "\n" for h in highlights)
    splits, codes = learn_and_apply_bpe(*tokens["train"], {k: v for k, v in tokens.items() if k != "train"},
                                        bpe_merges, out, glossaries=(SEP,))
    meta = meta | {"bpe_merges": bpe_merges, "bpe_codes": codes.name, "src_max_tokens": src_max_tokens,
                   "tgt_max_tokens": tgt_max_tokens, "sentence_separator": SEP}
    return write_joined(out, SRC, TGT, splits, meta, expected)
