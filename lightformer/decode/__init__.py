"""Decoding: batched beam search (greedy = beam 1) over the incremental cache."""
from lightformer.decode.beam import Hypothesis, SearchConfig, beam_search

__all__ = ["Hypothesis", "SearchConfig", "beam_search"]
