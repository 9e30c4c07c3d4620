"""What the verbs share: the exit status for bad input, JSON arguments and typed ``key=value``
model options. Numeric options are checked as they are parsed (lightformer.options.add_options,
lightformer.validate.arg)."""
from __future__ import annotations

EXIT_USAGE = 2
RECORD_HELP = ("the run's identity as a JSON object ({\"task\": ..., \"model\": ..., \"seed\": ...}), written into "
               "the output: reports group results by it, never by their paths")


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


def record_object(text: str) -> dict:
    """An argparse type for ``--record``: a JSON object whose identity fields are what reports group
    by, so they are checked here: task, model and variant non-empty text without control
    characters, seed an integer >= 0."""
    import argparse

    record = json_object(text)
    for key in ("task", "model", "variant"):
        value = record.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()
                                  or any(ord(c) < 32 or c == "\ufeff" for c in value)):
            raise argparse.ArgumentTypeError(f"{key}={value!r}: expected a name (text, no control characters)")
    seed = record.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise argparse.ArgumentTypeError(f"seed={seed!r}: expected an integer >= 0")
    return record


def parse_overrides(pairs: list[str]) -> dict:
    """``--set key=value`` model options, typed by ModelConfig (lightformer.options)."""
    from lightformer.config import ModelConfig
    from lightformer.options import parse_pairs

    return parse_pairs(ModelConfig, pairs, "model option")
