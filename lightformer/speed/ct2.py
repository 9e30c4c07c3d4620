"""CTranslate2 as a timed entry next to our models: ``ct2:DIR[:fp32|fp16|bf16|int8]``.

Under ``fixed_length`` the translator decodes exactly ``tgt_len + 1`` tokens (min = max decoding
length, no end token), the same number of decoder steps as our search (``tgt_len`` tokens, then
the forced ``</s>``). CTranslate2 runs encoder and decoder in one call, so its rows have a total
time only.
"""
from __future__ import annotations

import torch

from lightformer.config import EOS, PAD
from lightformer.errors import LightformerError
from lightformer.export.ct2 import _ct2, read_export

PREFIX = "ct2:"
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
_COMPUTE = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def is_ct2(entry: str) -> bool:
    return str(entry).startswith(PREFIX)


def parse_entry(entry: str) -> tuple[str, str | None]:
    """``ct2:DIR`` or ``ct2:DIR:PRECISION`` -> (DIR, precision or None = the run's dtype)."""
    body = entry[len(PREFIX):]
    head, sep, tail = body.rpartition(":")
    if sep and tail in PRECISIONS:
        return head, tail
    if sep and tail and "/" not in tail and not tail.startswith("."):
        raise LightformerError(f"{entry!r}: unknown precision {tail!r}; allowed: {', '.join(PRECISIONS)}")
    return body, None


def compute_type(precision: str, device: torch.device) -> str:
    if precision == "int8":  # int8 weights; activations in float32 on CPU, float16 on GPU
        return "int8_float16" if device.type == "cuda" else "int8_float32"
    return _COMPUTE[precision]


class CT2Model:
    """A CTranslate2 export with the interface ``run_speed`` needs."""

    def __init__(self, path: str, precision: str | None = None):
        self.path, self.precision = path, precision
        self.record = read_export(path)
        self.src_symbols, self.tgt_symbols = self.record["source_symbols"], self.record["target_symbols"]
        self.vocab = (len(self.src_symbols), len(self.tgt_symbols))
        self.translator = None

    @property
    def params(self) -> int | None:
        return self.record.get("params_exported")

    def load(self, device: torch.device, dtype: str, threads: int) -> None:
        ct2 = _ct2()
        precision = self.precision or dtype
        ctype = compute_type(precision, device)
        supported = ct2.get_supported_compute_types(device.type, device.index or 0)
        if ctype not in supported:
            raise LightformerError(f"{PREFIX}{self.path}: CTranslate2 {ct2.__version__} cannot compute in {ctype} on "
                                   f"{device.type}; supported there: {', '.join(sorted(supported))}")
        self.compute_type = ctype
        try:
            self.translator = ct2.Translator(self.path, device=device.type, device_index=device.index or 0,
                                             compute_type=ctype, inter_threads=1, intra_threads=threads)
        except RuntimeError as e:  # e.g. its CUDA 12 libraries missing on a CUDA 13 host
            raise LightformerError(f"{PREFIX}{self.path}: CTranslate2 {ct2.__version__} cannot load on "
                                   f"{device}: {e}") from None

    def tokens(self, src: torch.Tensor) -> list[list[str]]:
        """Left-padded id rows ending in </s> -> token strings (CTranslate2 appends </s> itself)."""
        rows = [[i for i in row if i != PAD] for row in src.tolist()]
        return [[self.src_symbols[i] for i in (row[:-1] if row and row[-1] == EOS else row)] for row in rows]

    def translate(self, batch: list[list[str]], beam: int, lenpen: float, max_len: int, fixed: bool) -> int:
        """Decode one batch; the number of tokens generated (with </s> when it ends a hypothesis)."""
        n = max_len + 1  # our step count: max_len tokens, then </s>
        res = self.translator.translate_batch(batch, beam_size=beam, length_penalty=lenpen,
                                              max_decoding_length=n, min_decoding_length=n if fixed else 1,
                                              return_end_token=True)
        return sum(len(r.hypotheses[0]) for r in res)
