"""One way to build a config dataclass: a preset (a dict), then a YAML file, then ``key=value``
pairs, each value typed by the field it sets; an unknown key is an error that lists the keys
and names the closest one. ModelConfig, TrainConfig, CompressionSpec and GlueConfig all go
through it, and so does the workflow's parse-time check of its config."""
from __future__ import annotations

import dataclasses
import difflib
import re

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


# --- command-line options generated from the same dataclasses (as fairseq and HF do) --------------

def option(default=dataclasses.MISSING, *, help: str = "", check: str | None = None, choices=None,
           flag: str | None = None, default_factory=dataclasses.MISSING):
    """A dataclass field that is also a command-line option: its help, its range rule
    (lightformer.validate.RULES, checked by the dataclass and by the parser), its choices, and a
    flag when it is not ``--field-name`` (a bool that defaults to True is switched off by ``flag``)."""
    meta = {"help": help, "check": check, "choices": choices, "flag": flag}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def check_fields(obj) -> None:
    """Apply every field's ``check`` rule (unset optional fields pass)."""
    from lightformer.validate import check

    for f in dataclasses.fields(obj):
        rule, value = f.metadata.get("check"), getattr(obj, f.name)
        if rule and value is not None:
            check(f.name, value, rule)


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def add_options(parser, cls, only=None, skip=()) -> None:
    """Add ``cls``'s fields to an argparse parser: type from the annotation, help from the field,
    the range rule checked as the value is parsed. Nothing given leaves the attribute unset, so
    :func:`from_args` lets the dataclass's own default apply: each default exists once. Only
    fields made with :func:`option` become options."""
    import argparse

    from lightformer.validate import arg

    kinds_of = {"int": int, "float": float, "str": str}
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata or (only is not None and f.name not in only) or f.name in skip:
            continue  # a plain field is the library's alone
        meta, default = f.metadata, _default(f)
        many = re.match(r"(?:list|tuple)\[(\w+)", str(f.type))  # list[str] | None -> several str
        kinds = {many.group(1)} if many else {k.strip() for k in str(f.type).split("|")} - {"None"}
        text = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        shown = "" if text is None or isinstance(text, bool) or text == "" else f" (default: {text})"
        kw = {"dest": f.name, "default": argparse.SUPPRESS, "help": (meta.get("help") or "") + shown}
        if kinds == {"bool"}:
            kw["action"] = "store_false" if default else "store_true"
        else:
            kind = kinds_of[kinds.pop()]
            kw["type"] = arg(meta["check"], kind) if meta.get("check") else kind
            if many:
                kw["nargs"] = "+"
            if meta.get("choices"):
                kw["choices"] = list(meta["choices"])
        parser.add_argument(flag_of(f), **kw)


def given(cls, args) -> dict:
    """The options of ``cls`` that the command line set."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


def from_args(cls, args, **extra):
    """``cls`` from the options the command line set (lists become tuples where the field is one),
    then ``extra``; everything else keeps the dataclass's default."""
    values = given(cls, args)
    for f in dataclasses.fields(cls):
        if f.name in values and str(f.type).startswith("tuple") and isinstance(values[f.name], list):
            values[f.name] = tuple(values[f.name])
    return cls(**values | extra)


def command_flags(values: dict) -> list[str]:
    """``{option: value}`` as a command's flags: ``--option-name value``; True is the bare flag,
    False and None are left out, a list is several values. The workflow passes what a config sets
    through it, so a default it does not set is the library's."""
    out = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is not None and value is not False:
            out += [flag, *map(str, value if isinstance(value, (list, tuple)) else [value])]
    return out
