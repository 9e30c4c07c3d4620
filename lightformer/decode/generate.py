"""Translate a prepared split: hypotheses in the split's order, timing, and the labelled metric."""
from __future__ import annotations

import json
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from lightformer.data.batching import collate, length_buckets
from lightformer.data.indexed import ParallelData
from lightformer.decode.beam import SearchConfig, beam_search
from lightformer.errors import LightformerError
from lightformer.metrics.bleu import score_bleu
from lightformer.metrics.rouge import rouge


def postprocess(text: str, detok=None) -> str:
    return detok.detokenize(text.split()) if detok is not None else text


def detokenizer(lang: str | None):
    """Moses detokenizer for ``lang`` (sacremoses), or None."""
    if not lang:
        return None
    from sacremoses import MosesDetokenizer

    return MosesDetokenizer(lang=lang)


def check_vocabularies(model, data: ParallelData) -> None:
    if (model.cfg.src_vocab, model.cfg.tgt_vocab) != (len(data.src_dict), len(data.tgt_dict)):
        raise LightformerError(f"the model's vocabularies ({model.cfg.src_vocab}/{model.cfg.tgt_vocab}) do not "
                               f"match the data's dictionaries ({len(data.src_dict)}/{len(data.tgt_dict)})")


def summary_sentences(text: str, sep: str, detok=None) -> list[str]:
    """A decoded summary split at the sentence separator, each sentence post-processed."""
    return [postprocess(x.strip(), detok) for x in text.split(sep) if x.strip()]


def references(data: ParallelData, split: str) -> list[str] | None:
    """Untouched reference summaries written at preparation ({split}.ref.jsonl), if any."""
    path = data.root / f"{split}.ref.jsonl"
    if not path.is_file():
        return None
    with open(path) as f:
        return [json.loads(line) for line in f]


def decode_sources(sources: list[torch.Tensor], model, data: ParallelData, search: SearchConfig,
                   device: torch.device, max_tokens: int, batch_size: int, remove_bpe: str | None, detok,
                   progress: bool = False, desc: str = "decode") -> tuple[list[str], int, float]:
    """(hypotheses in input order, generated tokens incl. </s>, seconds): beam search over
    length-bucketed batches; a summary's sentences are post-processed one by one."""
    sep = data.meta.get("sentence_separator")
    model = model.to(device).eval()
    hyps: list[str] = [""] * len(sources)
    n_tokens = 0
    sizes = np.array([len(x) for x in sources], dtype=np.int64)
    start = time.perf_counter()
    batches = length_buckets(sizes, sizes, max_tokens, max_sentences=batch_size)
    for idx in tqdm(batches, desc=desc, unit="batch", disable=not progress or None):
        b = collate([sources[i] for i in idx])
        for i, found in zip(idx, beam_search(model, b["src_tokens"].to(device), search)):
            best = found[0]
            n_tokens += len(best.tokens) + 1
            text = data.tgt_dict.decode(best.tokens, remove_bpe)
            hyps[i] = f" {sep} ".join(summary_sentences(text, sep, detok)) if sep else postprocess(text, detok)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return hyps, n_tokens, time.perf_counter() - start


def encode_lines(lines: list[str], model, data: ParallelData, truncate: bool = False,
                 where: str = "input") -> list[torch.Tensor]:
    """Token ids of raw lines (tokenised and BPE'd as in training); a line beyond the model's
    positions is an error naming it, or is cut with ``truncate`` (keeping </s>)."""
    check_vocabularies(model, data)
    if not lines:
        raise LightformerError("no input lines to translate")
    sources = [data.src_dict.encode(line).long() for line in lines]
    limit = model.cfg.max_source_positions
    for n, src in enumerate(sources, 1):
        if len(src) > limit and not truncate:
            raise LightformerError(f"{where}:{n}: {len(src)} tokens (with </s>), but the model takes at most {limit}; "
                                   f"shorten the line or pass --truncate")
    return [s if len(s) <= limit else torch.cat([s[: limit - 1], s[-1:]]) for s in sources]


def generate(model, data: ParallelData, split: str, search: SearchConfig, device: torch.device,
             max_tokens: int = 8192, batch_size: int = 128, remove_bpe: str | None = None,
             detok_lang: str | None = None, bleu: str | None = "tokenized", progress: bool = True) -> dict:
    """``bleu`` names the metric: a BLEU kind (lightformer.metrics.bleu), ``rouge`` (summaries:
    sentences split at the data's separator token, scored against the untouched references
    with one sentence per line for ROUGE-Lsum), or None."""
    check_vocabularies(model, data)
    detok = detokenizer(detok_lang)
    sep = data.meta.get("sentence_separator")
    if bleu == "rouge" and not sep:
        raise LightformerError(f"{data.root} has no sentence separator (meta.json): ROUGE is for summarization data")
    src, tgt = data.split(split)
    too_long = int((src.sizes > model.cfg.max_source_positions).sum())
    if too_long:
        first = int((src.sizes > model.cfg.max_source_positions).argmax())
        raise LightformerError(f"{too_long} source sentence(s) of {data.root}/{split} are longer than the model's "
                               f"{model.cfg.max_source_positions} positions (first: sentence {first + 1}, "
                               f"{int(src.sizes[first])} tokens); prepare the data with shorter limits")
    hyps, n_tokens, seconds = decode_sources([src[i] for i in range(len(src))], model, data, search, device,
                                             max_tokens, batch_size, remove_bpe, detok, progress, f"generate {split}")
    out = {"hypotheses": hyps, "sentences": len(hyps), "generated_tokens": n_tokens,
           "seconds": seconds, "sentences_per_s": len(hyps) / seconds, "tokens_per_s": n_tokens / seconds}
    if bleu == "rouge":
        refs = references(data, split) or ["\n".join(summary_sentences(data.tgt_dict.decode(tgt[i].tolist(), remove_bpe),
                                                                        sep, detok)) for i in range(len(tgt))]
        out["references"] = refs
        out["rouge"] = rouge([h.replace(f" {sep} ", "\n") for h in hyps], refs)
        return out
    out["references"] = [postprocess(data.tgt_dict.decode(tgt[i].tolist(), remove_bpe), detok) for i in range(len(tgt))]
    if bleu:
        out["bleu"] = score_bleu(bleu, hyps, out["references"])
    return out
