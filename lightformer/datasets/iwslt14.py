"""IWSLT'14 De-En, prepared as fairseq's examples/translation/prepare-iwslt14.sh (docs/reference.md §5):

train: tag lines (<url>, <talkid>, <keywords>) dropped, <title>/<description> tags removed with
their text kept; Moses tokenizer (no -a, escaping on, as tokenizer.perl); lowercase; cleaned to
1-175 tokens with length ratio <= 1.5 (clean-corpus-n.perl); valid = every 23rd cleaned line.
test: TED.dev2010 + TEDX.dev2012 + TED.tst2010-2012 <seg> lines, ’ -> ', tokenized, lowercased,
not cleaned. Joint BPE with 10,000 merges (subword-nmt), separate dictionaries per language.
"""
from __future__ import annotations

import re
from pathlib import Path

from lightformer.datasets.archives import read_tar_text, seg_lines
from lightformer.data.dictionary import Dictionary
from lightformer.data.indexed import write_parallel
from lightformer.datasets.text import clean, learn_and_apply_bpe, tokenize_lowercase
from lightformer.errors import LightformerError

SRC, TGT = "de", "en"
TEST_SETS = ["IWSLT14.TED.dev2010", "IWSLT14.TEDX.dev2012", "IWSLT14.TED.tst2010", "IWSLT14.TED.tst2011",
             "IWSLT14.TED.tst2012"]
_DROP = ("<url>", "<talkid>", "<keywords>")
_TAGS = re.compile(r"</?(title|description)>")


def read_archive(tgz: Path) -> dict[str, list[str]]:
    """The text members of de-en.tgz by base name."""
    need = [f"train.tags.de-en.{lang}" for lang in (SRC, TGT)] + [
        f"{t}.de-en.{lang}.xml" for t in TEST_SETS for lang in (SRC, TGT)]
    return read_tar_text(tgz, need, by_basename=True)


def train_lines(raw: list[str]) -> list[str]:
    return [_TAGS.sub("", line) for line in raw if not any(tag in line for tag in _DROP)]


def prepare_iwslt14(tgz: Path, out: Path, bpe_merges: int = 10_000, expected: dict | None = None,
                    progress: bool = True) -> dict:
    files = read_archive(tgz)
    out.mkdir(parents=True, exist_ok=True)
    src_raw, tgt_raw = train_lines(files["train.tags.de-en.de"]), train_lines(files["train.tags.de-en.en"])
    if len(src_raw) != len(tgt_raw):
        raise LightformerError(f"{tgz}: train has {len(src_raw)} German and {len(tgt_raw)} English lines after "
                               f"dropping tag lines; the archive is not IWSLT'14 de-en")
    src, tgt = clean(tokenize_lowercase(src_raw, SRC, progress), tokenize_lowercase(tgt_raw, TGT, progress))
    # every 23rd line (1-based) to valid, the rest to train (awk 'NR%23==0')
    valid = ([s for i, s in enumerate(src, 1) if i % 23 == 0], [t for i, t in enumerate(tgt, 1) if i % 23 == 0])
    train = ([s for i, s in enumerate(src, 1) if i % 23], [t for i, t in enumerate(tgt, 1) if i % 23])
    test_src = [x for t in TEST_SETS for x in seg_lines(files[f"{t}.de-en.{SRC}.xml"])]
    test_tgt = [x for t in TEST_SETS for x in seg_lines(files[f"{t}.de-en.{TGT}.xml"])]
    if len(test_src) != len(test_tgt):
        raise LightformerError(f"{tgz}: test XML has {len(test_src)} German and {len(test_tgt)} English segments")
    test = (tokenize_lowercase(test_src, SRC, progress), tokenize_lowercase(test_tgt, TGT, progress))
    for name, (s, _) in (("train", train), ("valid", valid), ("test", test)):
        if not s:
            raise LightformerError(f"{tgz}: split {name!r} is empty after preparation")
    splits, codes = learn_and_apply_bpe(train[0], train[1], {"valid": valid, "test": test}, bpe_merges, out)
    counts = {name: len(s) for name, (s, _) in splits.items()}
    meta = {"dataset": "iwslt14", "recipe": "fairseq prepare-iwslt14.sh", "bpe_merges": bpe_merges,
            "bpe_codes": codes.name, "source_archive": str(tgz)}
    if expected:
        meta["expected"] = expected
        meta["drift"] = {k: counts[k] - v for k, v in expected.items() if k in counts}
    write_parallel(out, SRC, TGT, Dictionary.build(splits["train"][0]), Dictionary.build(splits["train"][1]),
                   splits, meta=meta)
    return counts | {"drift": meta.get("drift", {})}
