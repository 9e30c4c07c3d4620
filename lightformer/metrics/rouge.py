"""ROUGE-1/2/L/Lsum F1 with Google's rouge-score and Porter stemming (docs/reference.md §5).

rougeLsum splits summaries into sentences at newlines, so multi-sentence summaries must keep
one sentence per line (CNN/DailyMail highlights are joined by '\\n'). Scores are means of
per-example F1 x 100. fairseq and Lite Transformer reported files2rouge (Perl): close, not equal.
"""
from __future__ import annotations

from rouge_score import rouge_scorer, scoring

from lightformer.errors import LightformerError

TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def rouge(hyps: list[str], refs: list[str], bootstrap: bool = False) -> dict:
    if len(hyps) != len(refs) or not hyps:
        raise LightformerError(f"need as many summaries as references, got {len(hyps)} and {len(refs)}")
    scorer = rouge_scorer.RougeScorer(list(TYPES), use_stemmer=True)
    if bootstrap:  # rouge-score's own confidence intervals, as its command line prints them
        agg = scoring.BootstrapAggregator()
        for h, r in zip(hyps, refs):
            agg.add_scores(scorer.score(r, h))
        result = agg.aggregate()
        scores = {t: 100 * result[t].mid.fmeasure for t in TYPES}
    else:
        totals = dict.fromkeys(TYPES, 0.0)
        for h, r in zip(hyps, refs):
            s = scorer.score(r, h)  # (target, prediction)
            for t in TYPES:
                totals[t] += s[t].fmeasure
        scores = {t: 100 * totals[t] / len(hyps) for t in TYPES}
    import importlib.metadata

    version = importlib.metadata.version("rouge-score")
    # "score" is ROUGE-L, the column the tables average over seeds; every type is kept in "scores"
    return {"metric": "rougeL", "score": scores["rougeL"], "scores": scores,
            "label": "ROUGE F1 x100, rouge-score with Porter stemmer; Lsum on newline-split sentences",
            "signature": f"rouge-score {version}|stemmer:porter|fmeasure|mean over {len(hyps)}"}
