"""Token-bucketed batches, as fairseq: sentences sorted by length, a batch's cost is
max(src, tgt) length x sentences (padded), never above max_tokens (docs/reference.md §4)."""
from __future__ import annotations

import numpy as np
import torch

from lightformer.config import EOS, PAD
from lightformer.errors import LightformerError


def length_buckets(src_sizes: np.ndarray, tgt_sizes: np.ndarray, max_tokens: int,
                   max_sentences: int | None = None) -> list[np.ndarray]:
    """Batches of sentence indices in length order; each obeys max(len) * n <= max_tokens."""
    sizes = np.maximum(src_sizes, tgt_sizes)
    too_long = np.nonzero(sizes > max_tokens)[0]
    if len(too_long):
        raise LightformerError(f"sentence {int(too_long[0])} has {int(sizes[too_long[0]])} tokens, more than "
                               f"max_tokens={max_tokens}; raise max_tokens or filter long sentences")
    order = np.lexsort((tgt_sizes, src_sizes))  # by source length, then target length (fairseq)
    batches, start, longest = [], 0, 0
    for pos, i in enumerate(order):
        longest_if = max(longest, int(sizes[i]))
        n = pos - start + 1
        if longest_if * n > max_tokens or (max_sentences and n > max_sentences):
            batches.append(order[start:pos])
            start, longest_if = pos, int(sizes[i])
        longest = longest_if
    if start < len(order):
        batches.append(order[start:])
    return batches


def epoch_order(n_batches: int, seed: int, epoch: int) -> list[int]:
    """The batch order of an epoch: a permutation determined by (seed, epoch) alone, so a
    resumed run can rebuild it and skip to where it stopped."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n_batches, generator=g).tolist()


def _padded(width: int, multiple: int) -> int:
    return -(-width // multiple) * multiple


def collate(src: list[torch.Tensor], tgt: list[torch.Tensor] | None = None, pad_to: int = 1) -> dict:
    """Left-pad sources (fairseq left_pad_source), right-pad targets; prev_output_tokens is the
    target shifted right with </s> first (fairseq move_eos_to_beginning). ``pad_to``: widths
    rounded up to a multiple (tensor cores want 8; padding is masked, so the loss is the same)."""
    width = _padded(max(len(s) for s in src), pad_to)
    src_tokens = torch.full((len(src), width), PAD, dtype=torch.long)
    for k, s in enumerate(src):
        src_tokens[k, width - len(s):] = s
    batch = {"src_tokens": src_tokens}
    if tgt is not None:
        width = _padded(max(len(t) for t in tgt), pad_to)
        target = torch.full((len(tgt), width), PAD, dtype=torch.long)
        prev = torch.full((len(tgt), width), PAD, dtype=torch.long)
        for k, t in enumerate(tgt):
            target[k, : len(t)] = t
            prev[k, 0] = EOS
            prev[k, 1: len(t)] = t[:-1]
        batch |= {"target": target, "prev_output_tokens": prev, "ntokens": int(sum(len(t) for t in tgt))}
    return batch
