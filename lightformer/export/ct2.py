"""Export to CTranslate2, the inference engine a user would otherwise pick (docs/reference.md §6).

Our parameter names are fairseq's, so the mapping is the one CTranslate2's own fairseq converter
makes (``ctranslate2/converters/fairseq.py``), without needing fairseq: fused q/k/v for
self-attention, fused k/v for cross-attention, sinusoidal positions from row ``pad + 1``, the
source gets ``</s>`` appended and decoding starts from ``</s>``. CTranslate2 has no low-rank
layer, so factorised matrices are exported merged (A @ B): the export computes the same function
with the dense model's cost, and says how many factors it merged.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from lightformer.errors import LightformerError
from lightformer.io import atomic_dir, check_output_dir, read_json
from lightformer.models.lowrank import FactorizedEmbedding, LowRankLinear

MARKER = "lightformer_export.json"
QUANTIZATIONS = ("float32", "float16", "bfloat16", "int8", "int8_float32", "int8_float16", "int8_bfloat16")
SPECIALS = ["<s>", "<blank>", "</s>", "<unk>"]  # fairseq's first four ids; CTranslate2 names <pad> <blank>

KIND = "CTranslate2 export"

def _ct2():
    try:
        import ctranslate2
    except ImportError:
        raise LightformerError("CTranslate2 is not installed: pip install 'lightformer[speed]' "
                               "(or pip install ctranslate2)") from None
    return ctranslate2


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).contiguous().numpy()


def _weight(module) -> np.ndarray:
    """The dense (out, in) weight of a Linear, or of a factorised stand-in merged (A @ B)."""
    if isinstance(module, (LowRankLinear, FactorizedEmbedding)):
        return _array(module.A @ module.B)
    return _array(module.weight)


def factorised_modules(model) -> int:
    """Factorised matrices in ``model``, each once (a tied embedding is one module)."""
    return sum(isinstance(m, (LowRankLinear, FactorizedEmbedding)) for m in model.modules())


def _linear(spec, module) -> None:
    spec.weight = _weight(module)
    if getattr(module, "bias", None) is not None:
        spec.bias = _array(module.bias)


def _fused(spec, modules) -> None:
    spec.weight = np.concatenate([_weight(m) for m in modules])
    spec.bias = np.concatenate([_array(m.bias) for m in modules])


def _layer_norm(spec, module) -> None:
    spec.gamma, spec.beta = _array(module.weight), _array(module.bias)


def _inputs(spec, module) -> None:
    spec.position_encodings.encodings = _array(module.embed_positions.table[module.padding_idx + 1:])
    emb = spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings
    emb.weight = _weight(module.embed_tokens)
    spec.scale_embeddings = module.embed_scale


def _attention(spec, attn, self_attention: bool) -> None:
    if self_attention:
        _fused(spec.linear[0], [attn.q_proj, attn.k_proj, attn.v_proj])
    else:
        _linear(spec.linear[0], attn.q_proj)
        _fused(spec.linear[1], [attn.k_proj, attn.v_proj])
    _linear(spec.linear[-1], attn.out_proj)


def _ffn(spec, layer) -> None:
    _layer_norm(spec.layer_norm, layer.final_layer_norm)
    _linear(spec.linear_0, layer.fc1)
    _linear(spec.linear_1, layer.fc2)


def _check_exportable(model) -> None:
    cfg = model.cfg
    if cfg.encoder_heads != cfg.decoder_heads:
        raise LightformerError(f"CTranslate2's Transformer has one head count; this model has "
                               f"{cfg.encoder_heads} (encoder) and {cfg.decoder_heads} (decoder)")
    for m in model.modules():
        if getattr(m, "inference_only", False):  # speed.fast's rewritten modules
            raise LightformerError("export the stored model, not one prepared for inference (fused q/k/v)")


def model_spec(model, src_symbols: list[str], tgt_symbols: list[str]):
    """The CTranslate2 TransformerSpec holding ``model``'s function."""
    _ct2()  # a clear error if it is not installed
    from ctranslate2.specs import common_spec, transformer_spec

    _check_exportable(model)
    cfg = model.cfg
    spec = transformer_spec.TransformerSpec.from_config(
        (cfg.encoder_layers, cfg.decoder_layers), cfg.encoder_heads, pre_norm=cfg.normalize_before,
        activation=common_spec.Activation.RELU)
    enc, dec = model.encoder, model.decoder
    _inputs(spec.encoder, enc)
    for ls, layer in zip(spec.encoder.layer, enc.layers):
        _attention(ls.self_attention, layer.self_attn, True)
        _layer_norm(ls.self_attention.layer_norm, layer.self_attn_layer_norm)
        _ffn(ls.ffn, layer)
    _inputs(spec.decoder, dec)
    for ls, layer in zip(spec.decoder.layer, dec.layers):
        _attention(ls.self_attention, layer.self_attn, True)
        _layer_norm(ls.self_attention.layer_norm, layer.self_attn_layer_norm)
        _attention(ls.attention, layer.encoder_attn, False)
        _layer_norm(ls.attention.layer_norm, layer.encoder_attn_layer_norm)
        _ffn(ls.ffn, layer)
    if enc.layer_norm is not None:
        _layer_norm(spec.encoder.layer_norm, enc.layer_norm)
    if dec.layer_norm is not None:
        _layer_norm(spec.decoder.layer_norm, dec.layer_norm)
    tied = dec.output_projection is None
    spec.decoder.projection.weight = _weight(dec.embed_tokens if tied else dec.output_projection)
    spec.register_source_vocabulary(src_symbols)
    spec.register_target_vocabulary(tgt_symbols)
    spec.config.decoder_start_token = "</s>"  # fairseq starts decoding from </s>
    spec.config.add_source_eos = True  # and ends every source with it
    return spec


def synthetic_symbols(n: int) -> list[str]:
    """Names for a vocabulary the checkpoint does not carry: the specials, then ``w<id>``."""
    return SPECIALS[:n] + [f"w{i}" for i in range(len(SPECIALS), n)]


def read_symbols(dictionary, size: int, where: str) -> list[str]:
    """A fairseq Dictionary's symbols in id order, named as CTranslate2 names them."""
    if len(dictionary) != size:
        raise LightformerError(f"{where}: the dictionary holds {len(dictionary)} symbols, "
                               f"but the model's vocabulary is {size}")
    return ["<blank>" if s == "<pad>" else s for s in dictionary.symbols]


def export_ct2(model, out_dir: str | os.PathLike, *, src_symbols: list[str] | None = None,
               tgt_symbols: list[str] | None = None, quantization: str | None = None,
               source: dict | None = None, force: bool = False) -> dict:
    """Write a CTranslate2 model directory; returns what the export did (also in ``MARKER``)."""
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise LightformerError(f"quantization={quantization!r} is invalid; allowed: {', '.join(QUANTIZATIONS)}")
    out = Path(out_dir)
    check_output_dir(out, KIND, force=force)
    cfg = model.cfg
    vocabulary = "dictionary" if src_symbols or tgt_symbols else "synthetic"
    src_symbols = src_symbols or synthetic_symbols(cfg.src_vocab)
    tgt_symbols = tgt_symbols or synthetic_symbols(cfg.tgt_vocab)
    for side, syms, n in (("source", src_symbols, cfg.src_vocab), ("target", tgt_symbols, cfg.tgt_vocab)):
        if len(syms) != n:
            raise LightformerError(f"{side} vocabulary has {len(syms)} symbols, the model {n}")
    spec, merged = model_spec(model, src_symbols, tgt_symbols), factorised_modules(model)
    spec.validate()
    spec.optimize(quantization=quantization)  # also stores tied matrices once (aliases)
    exported = sum(math.prod(v.shape) for name, v in spec.variables().items()
                   if not isinstance(v, str) and not v.is_scalar() and "position_encodings" not in name)
    from lightformer.compress.count import count_parameters

    report = {
        "format": "ctranslate2", "ctranslate2": _ct2().__version__,
        "quantization": quantization or "float32",
        "merged_factors": merged,
        "note": (f"{merged} factorised matrices exported merged (A @ B): CTranslate2 has no low-rank layer, "
                 f"so this export runs at the dense model's cost" if merged else "dense model, exported as is"),
        "params_stored": count_parameters(model)["total"],
        "params_exported": exported,  # what CTranslate2 stores: merged factors, no positions, zero biases dropped
        "src_vocab": cfg.src_vocab, "tgt_vocab": cfg.tgt_vocab,
        "vocabulary": vocabulary,
    } | (source or {})
    with atomic_dir(out, KIND, force=force) as tmp:  # a crash leaves no half export under the name
        spec.save(str(tmp))
        (tmp / MARKER).write_text(json.dumps(report, indent=2) + "\n")
    return report


def read_export(path: str | os.PathLike) -> dict:
    """Check that ``path`` is a CTranslate2 model directory; our export's record if it has one."""
    p = Path(path)
    missing = [f for f in ("model.bin", "config.json") if not (p / f).is_file()]
    if not p.is_dir() or missing:
        raise LightformerError(f"{str(path)!r} is not a CTranslate2 export (no {' or '.join(missing or ['directory'])}); "
                               f"make one with: lightformer export ct2 CHECKPOINT --out DIR")
    vocab = {}
    for side in ("source", "target"):
        files = [p / f"{side}_vocabulary.{ext}" for ext in ("json", "txt")] + \
                [p / f"shared_vocabulary.{ext}" for ext in ("json", "txt")]
        found = next((f for f in files if f.is_file()), None)
        if found is None:
            raise LightformerError(f"{str(path)!r} has no {side} vocabulary: not a CTranslate2 Transformer export")
        vocab[side] = (read_json(found, "CTranslate2 vocabulary", list) if found.suffix == ".json"
                       else found.read_text(encoding="utf-8").splitlines())
        if not all(isinstance(s, str) for s in vocab[side]):
            raise LightformerError(f"{found}: a vocabulary holds strings, one per token")
    record = read_json(p / MARKER, "CTranslate2 export record") if (p / MARKER).is_file() else {}
    return record | {"source_symbols": vocab["source"], "target_symbols": vocab["target"]}
