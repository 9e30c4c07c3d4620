"""ONNX export of a model prepared for inference, as two graphs an inference runtime runs around
our beam search (lightformer/speed/runtime.py):

* the encoder, with every decoder layer's cross-attention keys/values, once per source;
* one decoder step over a static cache: the new token's logits and its self-attention
  keys/values, which the search writes into the cache (the runtime never copies the cache back).

Both graphs have symbolic batch, source and cache sizes, so one export serves every shape.
``quantize_int8``: ONNX Runtime's dynamic quantisation of every product.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import torch

from lightformer.export.ct2 import MARKER  # one name for what every export says of itself
from lightformer.io import atomic_dir, check_output_dir

# the step at opset 23, which has Attention: scaled_dot_product_attention exports as one node, not
# a dozen (transposes, masking, NaN guards): 504 -> 292 nodes per IWSLT LightFormer step. The
# encoder, run once per source, stays at 20: ONNX Runtime's Attention does not broadcast a padding
# mask over the queries of a whole sequence
OPSET = {"encoder": 20, "step": 23}


class _Slot:
    """A decoder layer's cache as the exported step sees it: the new keys/values placed out of
    place (ONNX has no in-place writes) and kept, so the step can return them."""

    def __init__(self, k, v, cross_k, cross_v, mask):
        self.k, self.v, self.cross_k, self.cross_v, self.mask = k, v, cross_k, cross_v, mask
        self.new = None

    def append(self, k, v, start):
        self.new = (k, v)
        # the new token at its slot: a select, where index_copy would export as transposes of the
        # whole cache around a scatter (three copies per layer and step)
        at = (torch.arange(self.k.size(2), device=k.device) == start).view(1, 1, -1, 1)
        return torch.where(at, k, self.k), torch.where(at, v, self.v), self.mask


class _StepCache:
    """``DecoderCache``'s static interface, over the graph's inputs."""

    def __init__(self, layers, memory_mask, step):
        self.layers, self.memory_mask, self.step = layers, memory_mask, step

    def new_tokens(self, prev_output_tokens):
        return prev_output_tokens[:, -1:], self.step

    def advance(self, n):
        pass


class _EncoderGraph(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.encoder, self.decoder = model.encoder, model.decoder

    def forward(self, src_tokens, padding_mask):
        out = self.encoder.encode(src_tokens, padding_mask).out
        kv = [layer.encoder_attn.kv(out) for layer in self.decoder.layers]
        return out, torch.stack([k for k, _ in kv]), torch.stack([v for _, v in kv])


class _StepGraph(torch.nn.Module):
    """Each layer's cache is its own input and each new key/value its own output: a stacked cache
    would cost the runtime a copy per layer and step to split it (measured: ~13% of a step)."""

    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, token, step, self_mask, memory_mask, k, v, cross_k, cross_v):
        layers = [_Slot(*kv, self_mask) for kv in zip(k, v, cross_k, cross_v)]
        logits = self.decoder(token, None, _StepCache(layers, memory_mask, step))[:, -1]
        return logits, [s.new[0] for s in layers], [s.new[1] for s in layers]


def step_names(layers: int) -> tuple[list[str], list[str]]:
    """(inputs, outputs) of the step graph, as a runtime is fed: per-layer names are ``k.3`` etc."""
    def per(*names):
        return [f"{n}.{i}" for n in names for i in range(layers)]
    return (["token", "step", "self_mask", "memory_mask"] + per("k", "v", "cross_k", "cross_v"),
            ["logits"] + per("new_k", "new_v"))


def _example(model, rows=3, src_len=5, capacity=4):
    L, H = len(model.decoder.layers), model.decoder.num_heads
    hd = model.cfg.embed_dim // H
    src = torch.full((rows, src_len), 4, dtype=torch.long)
    cache = [torch.zeros(rows, H, capacity, hd) for _ in range(2 * L)]
    cross = [torch.zeros(rows, H, src_len, hd) for _ in range(2 * L)]
    mask = torch.ones(1, 1, 1, capacity, dtype=torch.bool)
    step = (src[:, :1], torch.tensor(1), mask, torch.ones(rows, 1, 1, src_len, dtype=torch.bool),
            cache[:L], cache[L:], cross[:L], cross[L:])
    return (src, torch.zeros(rows, src_len, dtype=torch.bool)), step


@contextlib.contextmanager
def _quiet():
    """The exporter and the quantiser talk: progress on stdout, a log line per torchvision operator
    it cannot register, advice through the root logger. None of it is about our model."""
    loggers = [logging.getLogger(), logging.getLogger("torch.onnx")]
    levels = [lg.level for lg in loggers]
    null = logging.NullHandler()  # the root logger would otherwise configure itself on first use
    logging.getLogger().addHandler(null)
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.getLogger().removeHandler(null)
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_onnx(model, out_dir: str | Path) -> tuple[Path, Path]:
    """(encoder.onnx, step.onnx) of a model prepared for inference (``prepare_for_inference``,
    fp32), with symbolic batch, source and cache sizes."""
    from torch.export import Dim

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, src, cap = Dim("rows", min=1), Dim("src", min=2), Dim("cap", min=2)
    enc_args, step_args = _example(model)
    L = len(model.decoder.layers)
    inputs, outputs = step_names(L)
    cached, crossed = [{0: rows, 2: cap}] * L, [{0: rows, 2: src}] * L
    graphs = [
        (_EncoderGraph(model), enc_args, ("src_tokens", "padding_mask"), ("out", "cross_k", "cross_v"),
         ({0: rows, 1: src}, {0: rows, 1: src}), out_dir / "encoder.onnx"),
        (_StepGraph(model.decoder), step_args, inputs, outputs,
         ({0: rows}, None, {3: cap}, {0: rows, 3: src}, cached, cached, crossed, crossed), out_dir / "step.onnx"),
    ]
    for module, args, names, outputs, dynamic, path in graphs:
        with torch.no_grad(), _quiet():
            program = torch.onnx.export(module.eval(), args, dynamo=True, input_names=list(names),
                                        output_names=list(outputs), dynamic_shapes=dynamic, optimize=True,
                                        verbose=False, opset_version=OPSET[path.stem])
        program.save(str(path))
    return out_dir / "encoder.onnx", out_dir / "step.onnx"


def quantize_int8(path: Path, out_dir: Path) -> Path:
    """ONNX Runtime's dynamic int8 quantisation of every MatMul/Gemm: int8 weights with one scale
    per output channel, activations quantised per call (as CTranslate2's int8)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = out_dir / path.with_suffix(".int8.onnx").name
    with _quiet():
        quantize_dynamic(path, out, weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gemm"])
    return out


KIND = "ONNX export"


def export_onnx_dir(model, out_dir: str | Path, *, int8: bool = False, source: dict | None = None,
                    force: bool = False) -> dict:
    """A directory a runtime can decode from without this package's model code: encoder.onnx and
    step.onnx (``int8``: quantised), and what they are in ``MARKER`` (their inputs, the cache layout,
    the model's config). ``model``: prepared for inference (``prepare_for_inference``), fp32."""
    out = Path(out_dir)
    check_output_dir(out, KIND, force=force)
    inputs, outputs = step_names(len(model.decoder.layers))
    report = {"kind": KIND, "int8": int8, "opset": OPSET, "encoder": ["src_tokens", "padding_mask"],
              "encoder_outputs": ["out", "cross_k", "cross_v"], "step": inputs, "step_outputs": outputs,
              "cache": "per layer (rows, heads, capacity, head_dim); the step returns the new token's keys/values "
                       "for the caller to write at `step`, and attends where self_mask is true",
              "model": model.cfg.to_dict(),
              "source": source or {}}
    with atomic_dir(out, KIND, force=force) as tmp:  # a crash leaves no half export under the name
        paths = export_onnx(model, tmp)
        if int8:
            for p in paths:
                quantize_int8(p, tmp).replace(p)
        (tmp / MARKER).write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report
