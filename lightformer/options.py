"""One way to build a config dataclass: a preset (a dict), then a YAML file, then ``key=value``
pairs, each value typed by the field it sets; an unknown key is an error that lists the keys
and names the closest one. ModelConfig, TrainConfig, CompressionSpec and GlueConfig all go
through it, and so does the workflow's parse-time check of its config."""
from __future__ import annotations

import dataclasses
import difflib

import yaml

from lightformer.errors import LightformerError
from lightformer.validate import load_yaml

TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def field_types(cls) -> dict[str, str]:
    """Field name -> its annotation as written (a string under ``from __future__ import annotations``)."""
    return {f.name: str(f.type) for f in dataclasses.fields(cls)}


def check_known(cls, keys, what: str) -> None:
    """Refuse keys that are not fields of ``cls``, naming the closest field of each."""
    known = sorted(field_types(cls))
    unknown = [k for k in keys if k not in known]
    if not unknown:
        return
    hints = []
    for k in unknown:
        close = difflib.get_close_matches(k, known, n=1)
        hints.append(f"{k!r}; " + (f"did you mean {close[0]!r}? " if close else ""))
    raise LightformerError(f"unknown {what} {''.join(hints)}allowed: {', '.join(known)}")


def parse_typed(name: str, text: str, annotation: str):
    """The value of ``name=text`` as its field's annotation says: bool, int, float, str (``none``
    unsets an optional field), else YAML (lists, mappings, ``int | dict``)."""
    kinds = {k.strip().split("[")[0] for k in annotation.split("|")}  # list[str] -> list
    optional = "None" in kinds
    kinds.discard("None")
    if optional and text.strip().lower() in ("none", "null", ""):
        return None
    if kinds == {"bool"}:
        if text.lower() in TRUE:
            return True
        if text.lower() in FALSE:
            return False
        raise LightformerError(f"{name} expects true/false, got {text!r}")
    if kinds in ({"int"}, {"float"}):
        try:  # YAML 1.1 reads "1e-3" as a string; numbers go by the field's type
            return int(text) if kinds == {"int"} else float(text)
        except ValueError:
            raise LightformerError(f"{name} expects {kinds.pop()}, got {text!r}") from None
    if kinds == {"str"}:
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise LightformerError(f"{name}: cannot parse {text!r}") from None
    wrong_list = kinds & {"tuple", "list"} and not isinstance(value, list)
    if wrong_list or (kinds == {"dict"} and not isinstance(value, dict)):
        raise LightformerError(f"{name} expects {annotation}, got {text!r}")
    return value


def parse_pairs(cls, pairs, what: str, nested: dict | None = None) -> dict:
    """``key=value`` strings -> typed values for ``cls``'s fields. ``nested`` maps a dict field
    to the dataclass its keys belong to (``model.dropout=0.3`` sets TrainConfig.model['dropout'])."""
    types, out = field_types(cls), {}
    for item in pairs:
        key, sep, text = item.partition("=")
        if not sep:
            raise LightformerError(f"{item!r} is not key=value")
        head, dot, sub = key.partition(".")
        if dot and nested and head in nested:
            inner = nested[head]
            check_known(inner, [sub], f"{head} option")
            out[head] = dict(out.get(head, {})) | {sub: parse_typed(key, text, field_types(inner)[sub])}
            continue
        check_known(cls, [key], what)
        out[key] = parse_typed(key, text, types[key])
    return out


def build(cls, preset: dict | None = None, config_file: str | None = None, pairs=(), what: str = "option",
          nested: dict | None = None):
    """``cls`` from a preset, then a YAML mapping, then key=value pairs (later wins; a nested dict
    field is merged key by key)."""
    values, layers = dict(preset or {}), []
    if config_file:
        loaded = load_yaml(config_file, "config file") or {}
        if not isinstance(loaded, dict):
            raise LightformerError(f"config file {config_file!r} must hold a mapping")
        check_known(cls, loaded, what)
        layers.append(loaded)
    layers.append(parse_pairs(cls, pairs, what, nested))  # checked key by key as it parses
    for layer in layers:
        for key, value in layer.items():
            if nested and key in nested and isinstance(value, dict):
                check_known(nested[key], value, f"{key} option")
                value = dict(values.get(key) or {}) | value
            values[key] = value
    return cls(**values)
