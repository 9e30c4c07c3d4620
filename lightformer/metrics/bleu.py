"""The three BLEUs of the literature, always returned with a label saying which (docs/reference.md §4).

* tokenized: on already tokenized (and for IWSLT lowercased) text, sacrebleu with tokenize='none'
  — comparable to fairseq's scorer / multi-bleu on IWSLT'14;
* sacrebleu: detokenized text, sacreBLEU's own 13a tokenization, with its signature (WMT);
* compound-split: tokenized text with (\\S)-(\\S) rewritten as `\\1 ##AT##-##AT## \\2` on both sides
  (fairseq's compound_split_bleu.sh; reads ≈1.5 BLEU above sacreBLEU on WMT'14).
"""
from __future__ import annotations

import re

from sacrebleu.metrics import BLEU

from lightformer.errors import LightformerError

_COMPOUND = re.compile(r"(\S)-(\S)")


def compound_split(line: str) -> str:
    r"""One left-to-right pass, as fairseq's `perl -ple 's{(\S)-(\S)}{$1 ##AT##-##AT## $2}g'`:
    matches do not overlap, so in "a-b-c" only the first hyphen splits, exactly as in Perl."""
    return _COMPOUND.sub(r"\1 ##AT##-##AT## \2", line)


def _check(hyps: list[str], refs: list[str]) -> None:
    if len(hyps) != len(refs):
        raise LightformerError(f"{len(hyps)} hypotheses but {len(refs)} references")
    if not hyps:
        raise LightformerError("no sentences to score")


def tokenized_bleu(hyps: list[str], refs: list[str], lowercase: bool = False) -> dict:
    _check(hyps, refs)
    bleu = BLEU(tokenize="none", lowercase=lowercase, force=True)
    score = bleu.corpus_score(hyps, [refs])
    return {"metric": "bleu_tokenized", "score": score.score, "signature": str(bleu.get_signature()),
            "label": f"tokenized BLEU{' (lowercased)' if lowercase else ''}, sacrebleu tokenize=none"}


def sacre_bleu(hyps: list[str], refs: list[str], test_set: str | None = None, langpair: str | None = None) -> dict:
    _check(hyps, refs)
    bleu = BLEU()
    score = bleu.corpus_score(hyps, [refs])
    sig = str(bleu.get_signature())
    extra = "".join(f"|{k}:{v}" for k, v in (("test", test_set), ("lang", langpair)) if v)
    return {"metric": "bleu_sacrebleu", "score": score.score, "signature": sig + extra,
            "label": "detokenized sacreBLEU (13a)"}


def compound_split_bleu(hyps: list[str], refs: list[str]) -> dict:
    _check(hyps, refs)
    out = tokenized_bleu([compound_split(h) for h in hyps], [compound_split(r) for r in refs])
    return out | {"metric": "bleu_compound_split", "label": "compound-split tokenized BLEU (fairseq ##AT##)"}


def score_bleu(kind: str, hyps: list[str], refs: list[str], **kw) -> dict:
    kinds = {"tokenized": tokenized_bleu, "sacrebleu": sacre_bleu, "compound": compound_split_bleu}
    if kind not in kinds:
        raise LightformerError(f"BLEU kind {kind!r} is unknown; allowed: {', '.join(kinds)}")
    return kinds[kind](hyps, refs, **kw)
