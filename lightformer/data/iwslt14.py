"""IWSLT'14 De-En, prepared as fairseq's examples/translation/prepare-iwslt14.sh (docs/reference.md §5):

train: tag lines (<url>, <talkid>, <keywords>) dropped, <title>/<description> tags removed with
their text kept; Moses tokenizer (no -a, escaping on, as tokenizer.perl); lowercase; cleaned to
1-175 tokens with length ratio <= 1.5 (clean-corpus-n.perl); valid = every 23rd cleaned line.
test: TED.dev2010 + TEDX.dev2012 + TED.tst2010-2012 <seg> lines, ’ -> ', tokenized, lowercased,
not cleaned. Joint BPE with 10,000 merges (subword-nmt), separate dictionaries per language.
"""
from __future__ import annotations

import io
import re
import sys
from pathlib import Path

from sacremoses import MosesTokenizer

from lightformer.data.archives import read_tar_text, seg_lines
from lightformer.data.dictionary import Dictionary
from lightformer.data.indexed import write_parallel
from lightformer.errors import LightformerError
from lightformer.progress import track

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


def tokenize(lines: list[str], lang: str, progress: bool = False) -> list[str]:
    """Moses tokenizer.perl -l LANG (escape on, no -a), then lowercase, as the fairseq recipe."""
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


def prepare_iwslt14(tgz: Path, out: Path, bpe_merges: int = 10_000, expected: dict | None = None,
                    progress: bool = True) -> dict:
    files = read_archive(tgz)
    out.mkdir(parents=True, exist_ok=True)
    src_raw, tgt_raw = train_lines(files["train.tags.de-en.de"]), train_lines(files["train.tags.de-en.en"])
    if len(src_raw) != len(tgt_raw):
        raise LightformerError(f"{tgz}: train has {len(src_raw)} German and {len(tgt_raw)} English lines after "
                               f"dropping tag lines; the archive is not IWSLT'14 de-en")
    src, tgt = clean(tokenize(src_raw, SRC, progress), tokenize(tgt_raw, TGT, progress))
    # every 23rd line (1-based) to valid, the rest to train (awk 'NR%23==0')
    valid = ([s for i, s in enumerate(src, 1) if i % 23 == 0], [t for i, t in enumerate(tgt, 1) if i % 23 == 0])
    train = ([s for i, s in enumerate(src, 1) if i % 23], [t for i, t in enumerate(tgt, 1) if i % 23])
    test_src = [x for t in TEST_SETS for x in seg_lines(files[f"{t}.de-en.{SRC}.xml"])]
    test_tgt = [x for t in TEST_SETS for x in seg_lines(files[f"{t}.de-en.{TGT}.xml"])]
    if len(test_src) != len(test_tgt):
        raise LightformerError(f"{tgz}: test XML has {len(test_src)} German and {len(test_tgt)} English segments")
    test = (tokenize(test_src, SRC, progress), tokenize(test_tgt, TGT, progress))
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
