"""Decoding in an inference runtime on a CPU (ONNX Runtime or OpenVINO): the model exported once
to two ONNX graphs (lightformer/export/onnx.py: the encoder with the cross-attention keys/values,
and one decoder step over a static cache), our beam search around them.

The search's constraints, top-k and reorders stay ours (``static_candidates``/``static_advance``,
a few dozen operators a step against the decoder's hundreds); the cache lives in torch memory,
read by the runtime without a copy. ``int8``: ONNX Runtime's dynamic quantisation of every
product (weights int8 per output channel, activations quantised per call), CTranslate2's int8
scheme. docs/speed.md has what each runtime gave.

Exactness: the runtime's kernels round differently from ours, so scores agree to float rounding
and tokens agree on trained models (tested for dense, factorised, shared-basis and
factorised-embedding models, beam 1 and 5); int8 within its tolerance (tests/decode/test_runtime.py).
"""
from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from lightformer.decode.beam import static_advance, static_candidates
from lightformer.errors import LightformerError
from lightformer.export.onnx import export_onnx, quantize_int8
from lightformer.models.transformer import EncoderOut

RUNTIMES = ("onnxruntime", "openvino")


def check_runtime(runtime: str, device: torch.device) -> None:
    """Refuse a runtime that cannot run here before any model is exported."""
    if runtime not in RUNTIMES:
        raise LightformerError(f"runtime {runtime!r} is unknown; known: {', '.join(RUNTIMES)}")
    if device.type != "cpu":
        raise LightformerError(f"the {runtime} engine is a CPU path; on {device.type} use --cuda-graph")
    for module in ("onnxscript", "onnxruntime") + (("openvino",) if runtime == "openvino" else ()):
        try:
            __import__(module)
        except ImportError:
            raise LightformerError(f"the {runtime} engine needs the {module} package: "
                                   f"pip install 'lightformer[runtimes]'") from None


def _session(runtime: str, path: Path, threads: int):
    """A callable: {input name: numpy array} -> [numpy outputs], on ``threads`` threads."""
    if runtime == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return lambda feeds: sess.run(None, feeds)
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {
        "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return lambda feeds: list(request.infer(feeds).to_tuple())


@dataclass
class RuntimeEncoderOut(EncoderOut):
    """The encoder's output with every decoder layer's cross-attention keys/values (L, B, H, S, hd)."""
    cross_k: torch.Tensor | None = None
    cross_v: torch.Tensor | None = None


class RuntimeCache:
    """A static cache in torch memory, stacked over layers (L, rows, H, capacity, hd): the step
    graph reads it without a copy (numpy views) and the search writes the new keys/values and
    reorders it, as ``DecoderCache`` does for a static search."""

    def __init__(self, k, v, cross_k, cross_v, memory_mask):
        self.k, self.v, self.cross_k, self.cross_v, self.memory_mask = k, v, cross_k, cross_v, memory_mask
        self.self_mask = torch.zeros(1, 1, 1, k.size(3), dtype=torch.bool)
        self.step = torch.zeros((), dtype=torch.long)
        # the step's feeds as numpy views, built once: the step and mask change in place, the
        # cross-attention keys/values never; self-attention's buffers alternate between two
        # pairs (a reorder writes into the spare one), each with its feeds
        self.feeds = {"step": self.step.numpy(), "self_mask": self.self_mask.numpy(),
                      "memory_mask": memory_mask.numpy()} | _per_layer(cross_k=cross_k, cross_v=cross_v)
        self._spare = (torch.empty_like(k), torch.empty_like(v))
        self._kv_feeds = {id(k): _per_layer(k=k, v=v), id(self._spare[0]): _per_layer(k=self._spare[0], v=self._spare[1])}
        self.feeds |= self._kv_feeds[id(k)]

    def reorder(self, order: torch.Tensor) -> None:
        """Rows in ``order``, written into the spare buffers: a new 10-MB tensor per step (batch 32
        x beam 5 at IWSLT size) cost more in page faults than the copy itself (44 ms a step against
        ~5, measured; docs/speed.md)."""
        L, rows = self.k.shape[:2]
        k, v = self._spare
        torch.index_select(self.k.view(L, rows, -1), 1, order, out=k.view(L, rows, -1))
        torch.index_select(self.v.view(L, rows, -1), 1, order, out=v.view(L, rows, -1))
        self._spare = (self.k, self.v)
        self.k, self.v = k, v
        self.feeds |= self._kv_feeds[id(k)]


def _per_layer(**stacked: torch.Tensor) -> dict:
    """{"k.0": numpy view of k[0], ...}: each layer's buffer as the step graph's input of that name."""
    return {f"{name}.{i}": t[i].numpy() for name, t in stacked.items() for i in range(t.size(0))}


class RuntimeSearch:
    """One model's two graphs in a runtime; pass it as ``beam_search(model, src, cfg, engine=...)``
    (``model`` is only read for its config). ``threads``: the runtime's intra-op threads
    (default: torch's). ``export``: the (encoder, step) files ``export_onnx`` wrote for this very
    model, to load several runtimes from one export (tests); by default the model is exported here."""

    def __init__(self, model, runtime: str = "onnxruntime", int8: bool = False, threads: int | None = None,
                 export: tuple[Path, Path] | None = None):
        check_runtime(runtime, next(model.parameters()).device)
        import onnx

        if any(type(m).__name__ == "Int8Linear" for m in model.modules()):
            raise LightformerError("give the runtime the fp32 model: it quantises it itself (int8=True)")
        self.model, self.runtime, self.int8 = model.eval(), runtime, int8
        threads = threads or torch.get_num_threads()
        with tempfile.TemporaryDirectory(prefix="lightformer-onnx-") as tmp:
            paths = export or export_onnx(model, tmp)
            if int8:
                paths = tuple(quantize_int8(p, Path(tmp)) for p in paths)
            self.step_nodes = len(onnx.load(str(paths[1])).graph.node)  # the speed rows' work per step
            self._encoder, self._step = (_session(runtime, p, threads) for p in paths)

    def encoder(self, src_tokens: torch.Tensor) -> RuntimeEncoderOut:
        padding_mask = src_tokens.eq(self.model.encoder.padding_idx)
        out, ck, cv = (torch.from_numpy(a) for a in self._encoder(
            {"src_tokens": src_tokens.numpy(), "padding_mask": padding_mask.numpy()}))
        return RuntimeEncoderOut(out, padding_mask if bool(padding_mask.any()) else None, ck, cv)

    def state(self, src_tokens: torch.Tensor, K: int, max_len: int, encoder_out):
        """(the encoder output, repeated per beam, and a fresh static cache)."""
        enc = encoder_out if isinstance(encoder_out, RuntimeEncoderOut) else self.encoder(src_tokens)
        B = src_tokens.size(0)
        expand = torch.arange(B).repeat_interleave(K)
        enc = copy.copy(enc)
        enc.out = enc.out.index_select(0, expand)
        ck, cv = enc.cross_k.index_select(1, expand), enc.cross_v.index_select(1, expand)
        keep = torch.ones(B * K, 1, 1, enc.out.size(1), dtype=torch.bool)
        if enc.padding_mask is not None:
            enc.padding_mask = enc.padding_mask.index_select(0, expand)
            keep = ~enc.padding_mask[:, None, None, :]
        L, rows, H, _, hd = ck.shape
        k = torch.zeros(L, rows, H, max_len + 1, hd)  # masked slots must hold numbers, not garbage
        return enc, RuntimeCache(k, torch.zeros_like(k), ck, cv, keep)

    def _decoder(self, token, _encoder_out, cache: RuntimeCache):
        """The decoder's static step as ``static_candidates`` calls it: logits (rows, 1, V). The
        runtime reads each layer's cache as a numpy view of the stacked torch buffers."""
        cache.self_mask.index_fill_(3, cache.step.view(1), True)
        L = cache.k.size(0)
        out = [torch.from_numpy(a) for a in self._step(cache.feeds | {"token": token.numpy()})]
        cache.k.index_copy_(3, cache.step.view(1), torch.stack(out[1:1 + L]))
        cache.v.index_copy_(3, cache.step.view(1), torch.stack(out[1 + L:]))
        cache.step.add_(1)
        return out[0][:, None]

    def candidates(self, _decoder, cache, tokens, scores, mode: str, unk_penalty: float, K: int, topk: bool = True):
        return static_candidates(self._decoder, cache, tokens, scores, mode, unk_penalty, K, topk)

    def advance(self, cache, top, tokens, pos_scores, scores, K: int):
        return static_advance(cache, top, tokens, pos_scores, scores, K)
