"""Model checkpoints: safetensors (no pickled code runs on load) plus JSON metadata carrying
the architecture, the compression plan and provenance, so a file rebuilds its model alone.

Tied tensors (shared embeddings, shared factors) are stored once, under the first name
``named_parameters()`` gives them; the rest of the tie is rebuilt from the plan.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from lightformer.compress.factorize import factorize
from lightformer.compress.plan import plan_from_json
from lightformer.config import ModelConfig
from lightformer.errors import LightformerError
from lightformer.io import atomic_path
from lightformer.models.transformer import Transformer

FORMAT = "lightformer-model"
VERSION = 1


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _unique_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    keep = {name for name, _ in model.named_parameters()}  # one name per Parameter object
    keep |= {name for name, _ in model.named_buffers()}
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if k in keep}


def _provenance(extra: dict | None) -> dict:
    from lightformer import __version__

    return {
        "lightformer_version": __version__,
        "torch_version": torch.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
    } | (extra or {})


def save_checkpoint(model: Transformer, path: str | os.PathLike, provenance: dict | None = None) -> Path:
    """Write atomically (temp file in the same directory, then rename): a crash never leaves a
    half-written checkpoint under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "version": VERSION,
        "model": model.cfg.to_dict(),
        "compression": model.compression,
        "provenance": _provenance(provenance),
    }
    tensors = {k: v.cpu() for k, v in _unique_tensors(model).items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "lightformer": json.dumps(meta)})
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    """The checkpoint's JSON metadata, or a one-line error saying what the file is instead."""
    path = Path(path)
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
    meta = json.loads(header["lightformer"])
    if meta.get("version") != VERSION:
        raise LightformerError(f"{str(path)!r} has checkpoint version {meta.get('version')!r}; "
                               f"this lightformer reads version {VERSION}")
    return meta


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> Transformer:
    meta = read_metadata(path)
    model = Transformer(ModelConfig.from_dict(meta["model"]))
    if meta["compression"]:
        factorize(model, plan_from_json(meta["compression"]["groups"]))
        model.compression = meta["compression"]
    tensors = load_file(str(path), device="cpu")
    expected = _unique_tensors(model).keys()
    if set(tensors) != set(expected):
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        raise LightformerError(f"{str(path)!r} does not match its own architecture: "
                               f"missing {missing[:5]}, unexpected {extra[:5]}")
    model.load_state_dict(tensors, strict=False)  # tied aliases are filled through their owner
    model.provenance = meta["provenance"]
    return model.to(device)
