"""Model checkpoints: safetensors (no pickled code runs on load) plus JSON metadata carrying
the architecture, the compression plan and provenance, so a file rebuilds its model alone.

Tied tensors (shared embeddings, shared factors) are stored once, under the first name
``named_parameters()`` gives them; the rest of the tie is rebuilt from the plan.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import typing
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from lightformer.compress.swap import swap_in_factors
from lightformer.compress.plan import Group, plan_from_json
from lightformer.config import ModelConfig
from lightformer.errors import LightformerError
from lightformer.io import atomic_path, command_line
from lightformer.models.build import shapes_only
from lightformer.models.transformer import Transformer

FORMAT = "lightformer-model"
VERSION = 1


def _unique_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    keep = {name for name, _ in model.named_parameters()}  # one name per Parameter object
    keep |= {name for name, _ in model.named_buffers()}
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if k in keep}


def _provenance(extra: dict | None) -> dict:
    from lightformer.version import __version__

    return {
        "lightformer_version": __version__,
        "torch_version": torch.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
    } | (extra or {})


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and raw bytes in name order: one flipped weight byte shows."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b"")  # hashed in place, no copy
    return "sha256:" + h.hexdigest()


def save_checkpoint(model: Transformer, path: str | os.PathLike, provenance: dict | None = None) -> Path:
    """Write atomically (temp file in the same directory, then rename): a crash never leaves a
    half-written checkpoint under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.cpu() for k, v in _unique_tensors(model).items()}
    meta = {
        "version": VERSION,
        "model": model.cfg.to_dict(),
        "compression": model.compression,
        "provenance": _provenance(provenance),
        "digest": tensors_digest(tensors),
    }
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"format": FORMAT, "lightformer": json.dumps(meta)})
    except SafetensorError as e:  # the library's own error for a failed write (disk full, file too large)
        raise LightformerError(f"cannot write {path}: {e}; nothing was left under its name or beside it") from None
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    """The checkpoint's JSON metadata, or a one-line error saying what the file is instead."""
    path = Path(path)
    if path.is_dir():
        inside = next((p for p in ("model.safetensors", "checkpoints/last") if (path / p).exists()), None)
        hint = (f"; did you mean {path / 'model.safetensors'}?" if inside == "model.safetensors" else
                "; it is a training run: give checkpoints/<update_N>/model.safetensors" if inside else
                "; it is a GLUE classifier directory, which `glue` verbs and `compress` take"
                if (path / "lightformer.json").is_file() else "")
        raise LightformerError(f"checkpoint {str(path)!r} is a directory, not a model file{hint}")
    if not path.is_file():
        raise LightformerError(f"checkpoint {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        with open(path, "rb") as fh:
            magic = fh.read(4)
        kind = ("a PyTorch pickle/zip file (torch.save, e.g. a fairseq checkpoint)" if magic[:2] == b"PK"
                or magic[:1] == b"\x80" else f"not a safetensors file ({e})")
        raise LightformerError(f"{str(path)!r} is {kind}; expected a lightformer checkpoint "
                               f"(safetensors with {FORMAT!r} metadata)") from None
    if header.get("format") != FORMAT or "lightformer" not in header:
        raise LightformerError(f"{str(path)!r} is a safetensors file but not a lightformer checkpoint "
                               f"(format={header.get('format')!r}, expected {FORMAT!r})")
    try:
        meta = json.loads(header["lightformer"])
    except ValueError as e:
        raise LightformerError(f"{str(path)!r}: its metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("version") != VERSION:
        version = meta.get("version") if isinstance(meta, dict) else None
        raise LightformerError(f"{str(path)!r} has checkpoint version {version!r}; "
                               f"this lightformer reads version {VERSION}")
    return meta


def _type_ok(value, kind) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is str:
        return isinstance(value, str)
    if typing.get_origin(kind) is list:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return True


def _check_fields(row, cls, where: str) -> None:
    """Every field of ``cls`` that has no default is present, and every value has its field's type."""
    if not isinstance(row, dict):
        raise LightformerError(f"{where} must be a mapping, got {type(row).__name__}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(row) - set(hints))
    if unknown:
        raise LightformerError(f"{where} has unknown keys {unknown}")
    for f in dataclasses.fields(cls):
        if f.name not in row:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise LightformerError(f"{where} lacks {f.name!r}")
            continue
        if not _type_ok(row[f.name], hints[f.name]):
            raise LightformerError(f"{where}: {f.name}={row[f.name]!r} is not a valid {getattr(hints[f.name], '__name__', hints[f.name])}")


def validated_parts(meta: dict, where: str) -> tuple[ModelConfig, list[Group] | None]:
    """The metadata parsed against its schema (types, then ranges through ModelConfig and the
    plan's own rank bounds), before any module is built."""
    for key in ("model", "compression", "provenance"):
        if key not in meta:
            raise LightformerError(f"{where}: its metadata lacks {key!r}")
    _check_fields(meta["model"], ModelConfig, f"{where}: model")
    cfg = ModelConfig.from_dict(meta["model"])
    comp = meta["compression"]
    if not comp:
        return cfg, None
    if not isinstance(comp, dict) or not isinstance(comp.get("groups"), list):
        raise LightformerError(f"{where}: compression must hold a list of groups")
    for i, row in enumerate(comp["groups"]):
        _check_fields(row, Group, f"{where}: compression group {i}")
    groups = plan_from_json(comp["groups"])
    for g in groups:
        if g.kind not in ("linear", "embedding") or g.side not in ("none", "in", "out", "both") or not g.members:
            raise LightformerError(f"{where}: compression group {g.name!r} has kind={g.kind!r}, side={g.side!r}, "
                                   f"{len(g.members)} members")
        if not 1 <= g.rank <= g.max_rank or g.out_features < 1 or g.in_features < 1:
            raise LightformerError(f"{where}: compression group {g.name!r} has rank {g.rank} for "
                                   f"{g.out_features}x{g.in_features} (allowed 1..{g.max_rank})")
    return cfg, groups


def _build(cfg: ModelConfig, groups: list[Group] | None, where: str) -> Transformer:
    model = Transformer(cfg)
    if groups:
        try:
            for g in groups:
                for member in g.members:
                    shape = tuple(model.get_submodule(member).weight.shape)
                    if shape != (g.out_features, g.in_features):
                        raise LightformerError(f"{where}: compression group {g.name!r} says {member} is "
                                               f"{g.out_features}x{g.in_features}, the architecture makes it "
                                               f"{shape[0]}x{shape[1]}")
            swap_in_factors(model, groups)
        except (AttributeError, KeyError, RuntimeError) as e:
            raise LightformerError(f"{where}: its compression plan does not fit its architecture ({e})") from None
    return model


def _check_shapes(path: Path, cfg: ModelConfig, groups: list[Group] | None) -> None:
    """Every stored tensor has the shape the architecture and plan imply (read from the header only)."""
    with shapes_only():
        expected = {k: tuple(v.shape) for k, v in _unique_tensors(_build(cfg, groups, str(path))).items()}
    with safe_open(str(path), framework="pt") as f:
        stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    if set(stored) != set(expected):
        missing, extra = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
        raise LightformerError(f"{str(path)!r} does not match its own architecture: "
                               f"missing {missing[:5]}, unexpected {extra[:5]}")
    wrong = [f"{k} {stored[k]} (expected {expected[k]})" for k in sorted(stored) if stored[k] != expected[k]]
    if wrong:
        raise LightformerError(f"{str(path)!r} does not match its own metadata: {'; '.join(wrong[:3])}")


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu", verify: bool = False) -> Transformer:
    """The model, after the metadata and every tensor shape are checked; ``verify`` also recomputes
    the content digest (a flipped byte anywhere is then an error)."""
    path = Path(path)
    meta = read_metadata(path)
    cfg, groups = validated_parts(meta, str(path))
    _check_shapes(path, cfg, groups)
    model = _build(cfg, groups, str(path))
    if groups:
        model.compression = meta["compression"]
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as e:
        raise LightformerError(f"{str(path)!r}: its tensors cannot be read ({e})") from None
    if verify:
        if "digest" not in meta:
            raise LightformerError(f"{str(path)!r} carries no content digest (written before digests); "
                                   f"nothing to verify against")
        if tensors_digest(tensors) != meta["digest"]:
            raise LightformerError(f"{str(path)!r}: its tensors do not match the content digest in its metadata "
                                   f"(the file was changed or damaged after it was written)")
    model.load_state_dict(tensors, strict=False)  # tied aliases are filled through their owner
    model.provenance = meta["provenance"] if isinstance(meta["provenance"], dict) else {}
    return model.to(device)
