"""What the verbs share: the exit status for bad input, the one check of every numeric option,
and typed ``key=value`` model options."""
from __future__ import annotations

import dataclasses

from lightformer.errors import LightformerError
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
    "calib_max_tokens": "at_least_1", "whiten_eps": "positive", "asvd_alpha": "positive",
}



def check_options(args) -> None:
    for name, rule in OPTION_RULES.items():
        value = getattr(args, name, None)
        if value is not None and not isinstance(value, (list, str)):
            check(f"--{name.replace('_', '-')}", value, rule)


def parse_value(text: str, kind) -> object:
    """Typed value for a ``key=value`` override, by the dataclass field's type name."""
    kind = str(kind)
    if "bool" in kind:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise LightformerError(f"expected a boolean (true/false), got {text!r}")
    try:
        if "int" in kind:
            return int(text)
        if "float" in kind:
            return float(text)
    except ValueError:
        raise LightformerError(f"expected {kind}, got {text!r}") from None
    return text


def parse_overrides(pairs: list[str]) -> dict:
    from lightformer.config import ModelConfig

    types = {f.name: f.type for f in dataclasses.fields(ModelConfig)}
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise LightformerError(f"--set expects key=value, got {pair!r}")
        if key not in types:
            raise LightformerError(f"unknown model option {key!r}; allowed: {', '.join(sorted(types))}")
        out[key] = parse_value(value, types[key])
    return out
