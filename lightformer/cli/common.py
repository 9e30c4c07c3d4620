"""What the verbs share: the exit status for bad input, the one check of every numeric option,
and typed ``key=value`` model options."""
from __future__ import annotations

from lightformer.validate import check

EXIT_USAGE = 2
# every numeric option of every verb, checked once after parsing (None = not given)
OPTION_RULES = {
    "nproc_per_node": "at_least_1", "batch_size": "at_least_1", "beam": "at_least_1", "max_tokens": "at_least_1",
    "max_len_a": "nonnegative", "max_len_b": "nonnegative", "min_len": "nonnegative", "lenpen": "finite",
    "no_repeat_ngram_size": "nonnegative", "runs": "at_least_1", "warmup": "nonnegative", "threads": "at_least_1",
    "batch": "at_least_1", "sentences": "at_least_1", "src_len": "at_least_1", "tgt_len": "at_least_1",
    "ratio": "positive", "share_layers": "at_least_1", "seed": "nonnegative", "src_vocab": "at_least_1",
    "tgt_vocab": "at_least_1", "train": "at_least_1", "valid": "at_least_1", "test": "at_least_1",
    "vocab": "at_least_1", "workers": "at_least_1", "bpe_merges": "at_least_1", "src_max_tokens": "at_least_1",
    "tgt_max_tokens": "at_least_1", "seq_len": "at_least_1", "hidden": "at_least_1", "layers": "at_least_1",
    "heads": "at_least_1", "ffn": "at_least_1", "max_len": "at_least_1", "calib_batches": "at_least_1",
    "calib_max_tokens": "at_least_1", "whiten_eps": "positive", "asvd_alpha": "positive", "steps": "at_least_1",
    "peak_tflops": "positive", "updates": "at_least_1",
}


def json_object(text: str) -> dict:
    """An argparse type: a JSON object (anything else is a usage error naming what it was)."""
    import argparse
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e.msg}, column {e.colno})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"a JSON {type(value).__name__}, expected an object")
    return value


def check_options(args) -> None:
    for name, rule in OPTION_RULES.items():
        value = getattr(args, name, None)
        if value is not None and not isinstance(value, (list, str)):
            check(f"--{name.replace('_', '-')}", value, rule)


def parse_overrides(pairs: list[str]) -> dict:
    """``--set key=value`` model options, typed by ModelConfig (lightformer.options)."""
    from lightformer.config import ModelConfig
    from lightformer.options import parse_pairs

    return parse_pairs(ModelConfig, pairs, "model option")
