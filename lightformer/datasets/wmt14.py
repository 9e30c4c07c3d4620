"""WMT'14 En-De, prepared as fairseq's examples/translation/prepare-wmt14en2de.sh --icml17
(docs/reference.md §5): europarl-v7 + commoncrawl + news-commentary-v9; per language normalize
punctuation, remove non-printing characters, Moses tokenizer with -a (aggressive hyphen
splitting); joint BPE (40,000 merges as fairseq, 32,000 as Vaswani); train (and a train-drawn
valid) cleaned after BPE to 1-250 tokens with ratio 1.5; test = newstest2014 *full* (3,003),
tokenized, never cleaned. Valid defaults to newstest2013 (3,000 lines, processed like train);
``valid_from="train"`` takes fairseq's every 100th training line instead. One joined dictionary
(fairseq --joined-dictionary), as share_all_embeddings needs.
"""
from __future__ import annotations

from pathlib import Path

from lightformer.datasets.archives import read_tar_text, seg_lines
from lightformer.data.indexed import write_joined
from lightformer.datasets.text import clean, learn_and_apply_bpe, tokenize
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


def read_statmt(raw: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Raw (English, German) lines of train, newstest2013 and newstest2014 from the statmt archives."""
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
    return {"train": (src_lines, tgt_lines),
            "newstest2013": (dev[f"{DEV_MEMBERS['valid']}.{SRC}"], dev[f"{DEV_MEMBERS['valid']}.{TGT}"]),
            "newstest2014": (seg_lines(dev[DEV_MEMBERS["test_src"]]), seg_lines(dev[DEV_MEMBERS["test_ref"]]))}


HUB_SPLITS = {"train": "train", "newstest2013": "validation", "newstest2014": "test"}


def read_hub(raw: Path) -> dict[str, tuple[list[str], list[str]]]:
    """The same three sets from the Hub's wmt/wmt14 de-en parquet (column translation {de, en};
    validation = newstest2013, test = newstest2014 full)."""
    import pyarrow.parquet as pq

    out = {}
    for name, split in HUB_SPLITS.items():
        shards = sorted((Path(raw) / "de-en").glob(f"{split}-*.parquet"))
        if not shards:
            raise LightformerError(f"{raw}/de-en: no {split}-*.parquet; fetch wmt14_hub first")
        en, de = [], []
        for path in shards:
            table = pq.read_table(path)
            if "translation" not in table.column_names:
                raise LightformerError(f"{path}: no 'translation' column (has {table.column_names}); is this wmt/wmt14 de-en?")
            pairs = table.column("translation").to_pylist()
            en += [p["en"] for p in pairs]
            de += [p["de"] for p in pairs]
        out[name] = (en, de)
    return out


def prepare_wmt14(raw: Path, out: Path, bpe_merges: int = 40_000, valid_from: str = "newstest2013",
                  workers: int = 1, expected: dict | None = None, source: str = "statmt") -> dict:
    if valid_from not in ("newstest2013", "train"):
        raise LightformerError(f"valid_from={valid_from!r} is invalid; allowed: newstest2013, train")
    sets = read_hub(raw) if source == "hub" else read_statmt(raw)
    src_lines, tgt_lines = sets["train"]
    src, tgt = tokenize(src_lines, SRC, workers=workers), tokenize(tgt_lines, TGT, workers=workers)
    if valid_from == "train":  # fairseq: awk 'NR%100 == 0' to valid, the rest to train
        valid = ([x for i, x in enumerate(src, 1) if i % 100 == 0], [x for i, x in enumerate(tgt, 1) if i % 100 == 0])
        src, tgt = [x for i, x in enumerate(src, 1) if i % 100], [x for i, x in enumerate(tgt, 1) if i % 100]
    else:
        valid = (tokenize(sets["newstest2013"][0], SRC), tokenize(sets["newstest2013"][1], TGT))
    test = (tokenize(sets["newstest2014"][0], SRC, normalize=False),
            tokenize(sets["newstest2014"][1], TGT, normalize=False))
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
    meta = {"dataset": "wmt14", "source": source, "recipe": "fairseq prepare-wmt14en2de.sh --icml17",
            "bpe_merges": bpe_merges, "bpe_codes": codes.name, "valid_from": valid_from}
    return write_joined(out, SRC, TGT, splits, meta, expected)
