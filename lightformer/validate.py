"""One place for the checks every verb shares: numbers in range, YAML files that parse, and
outputs that would overwrite an input or each other. Each failure is a LightformerError (one
line, exit 2, nothing written)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import yaml

from lightformer.errors import LightformerError

# rule name -> (test, what is allowed); NaN fails every comparison, so it fails every rule
RULES = {
    "positive": (lambda v: v > 0, "> 0"),
    "nonnegative": (lambda v: v >= 0, ">= 0"),
    "at_least_1": (lambda v: v >= 1, ">= 1"),
    "finite": (lambda v: math.isfinite(v), "a finite number"),
    "probability": (lambda v: 0 <= v < 1, "0 <= p < 1"),
    "fraction": (lambda v: 0 <= v <= 1, "0 <= x <= 1"),
}


def check(name: str, value, rule: str) -> None:
    """Refuse ``value`` unless it is a finite number that satisfies ``rule``."""
    test, allowed = RULES[rule]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not test(value):
        raise LightformerError(f"{name}={value!r} is invalid: expected {allowed}")


def checks(obj, rules: dict[str, str]) -> None:
    """Apply ``{field: rule}`` to a config object's attributes."""
    for name, rule in rules.items():
        check(name, getattr(obj, name), rule)


def arg(rule: str, kind=float):
    """An argparse ``type=`` that parses with ``kind`` and applies ``rule``: a value out of range is a
    usage error naming the option (``argument --beam: 0 is invalid: expected >= 1``)."""
    import argparse

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        test, allowed = RULES[rule]
        if not (math.isfinite(value) and test(value)):
            raise argparse.ArgumentTypeError(f"{text} is invalid: expected {allowed}")
        return value
    parse.__name__ = f"{kind.__name__} {RULES[rule][1]}"
    return parse


def load_yaml(path: str | os.PathLike, what: str):
    """A YAML file's contents; a missing file or a syntax error names the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise LightformerError(f"{what} {str(path)!r} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise LightformerError(f"{what} {where}: YAML syntax error ({getattr(e, 'problem', None) or e})") from None
    except UnicodeDecodeError as e:
        raise LightformerError(f"{what} {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def distinct_outputs(inputs: list, outputs: list) -> None:
    """Refuse an output that is one of the inputs (or lies inside an input directory), that
    another output also names, or that is an existing directory where a file is due."""
    ins = [Path(p).resolve() for p in inputs if p]
    seen: dict[Path, str] = {}
    for out in [o for o in outputs if o]:
        path = Path(out).resolve()
        for src in ins:
            if path == src or (src.is_dir() and path.is_relative_to(src)):
                raise LightformerError(f"output {str(out)!r} would overwrite the input {str(src)!r}; "
                                       f"write it elsewhere")
        if path in seen:
            raise LightformerError(f"outputs {seen[path]!r} and {str(out)!r} are the same file")
        if path.is_dir():
            raise LightformerError(f"output {str(out)!r} is an existing directory; name a file")
        seen[path] = str(out)
