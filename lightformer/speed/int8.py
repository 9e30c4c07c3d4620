"""An int8 CPU path for both models, so "LightFormer + int8" can be set against "dense int8"
(CTranslate2's int8 mode is the rival a user would reach for).

Weights are quantised once to int8 with one scale per matrix and packed for FBGEMM; activations
are quantised on the fly per call (dynamic quantisation), products accumulate in int32 and come
back in fp32. At batch 1 on a CPU a decoder step streams its weights from memory, so a quarter of
the bytes is most of the gain. Each factor of a low-rank product is its own int8 matrix. This
changes the function (about 1-2% relative error per product): it is a speed path, and its quality
must be measured before it is used for translation.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from lightformer.errors import LightformerError


def _fbgemm_linear(x, qweight, packed, col_offsets, scale, zero_point, bias):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.fbgemm_linear_int8_weight_fp32_activation(x, qweight, packed, col_offsets, scale, zero_point, bias)


@torch.library.custom_op("lightformer::int8_linear", mutates_args=())
def int8_linear(x: torch.Tensor, qweight: torch.Tensor, packed: torch.Tensor, col_offsets: torch.Tensor,
                scale: float, zero_point: int, bias: torch.Tensor) -> torch.Tensor:
    """The FBGEMM product as an opaque operator, so a compiled graph (decode/compiled.py) calls it
    as one node: the packed weight is an FBGEMM blob that tracing cannot look into."""
    return _fbgemm_linear(x, qweight, packed, col_offsets, scale, zero_point, bias)


@int8_linear.register_fake
def _(x, qweight, packed, col_offsets, scale, zero_point, bias):
    return x.new_empty(x.shape[0], qweight.shape[0])


class Int8Linear(nn.Module):
    """y = x W^T + b with W in int8 (FBGEMM, per-matrix scale), x quantised per call."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        w = weight.detach().float().contiguous()
        self.out_features, self.in_features = w.shape
        with warnings.catch_warnings():  # deprecated in favour of torchao; present through torch 2.14
            warnings.simplefilter("ignore", UserWarning)
            self.qweight, self.col_offsets, self.scale, self.zero_point = torch.fbgemm_linear_quantize_weight(w)
            self.packed = torch.fbgemm_pack_quantized_matrix(self.qweight)
        # the op wants a bias tensor; zeros where the layer has none
        self.bias = bias.detach().float().contiguous() if bias is not None else torch.zeros(self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        args = (x.reshape(-1, shape[-1]).contiguous(), self.qweight, self.packed, self.col_offsets, self.scale,
                self.zero_point, self.bias)
        y = int8_linear(*args) if torch.compiler.is_compiling() else _fbgemm_linear(*args)
        return y.view(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, int8"


class Int8LowRank(nn.Module):
    def __init__(self, A: torch.Tensor, B: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.inner = Int8Linear(B, None)
        self.outer = Int8Linear(A, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(self.inner(x))


def check_int8(device: torch.device, dtype: torch.dtype) -> None:
    if device.type != "cpu":
        raise LightformerError(f"--int8 is a CPU path (FBGEMM); on {device.type} use bf16 instead")
    if dtype != torch.float32:
        raise LightformerError("--int8 takes fp32 activations: drop --dtype or use --dtype fp32")
    if not torch.backends.quantized.supported_engines or "fbgemm" not in torch.backends.quantized.supported_engines:
        raise LightformerError("--int8 needs PyTorch's FBGEMM (x86 CPUs); this build lacks it")
