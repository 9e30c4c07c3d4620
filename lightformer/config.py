"""Model configuration and the named architecture presets.

The presets restate fairseq's ``transformer_legacy.py`` architectures as plain functions
(docs/reference.md §3); there is no registry: ``PRESETS`` below is the whole list.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lightformer.errors import LightformerError
from lightformer.options import check_known

# fairseq's Dictionary: <s>=0, <pad>=1, </s>=2, <unk>=3 (docs/reference.md §3).
BOS, PAD, EOS, UNK = 0, 1, 2, 3
LAYER_SHARING = ("none", "all", "sandwich", "cycle_rev")  # dense cross-layer sharing (models/layer_sharing.py)
DROPOUTS = ("dropout", "attention_dropout", "activation_dropout")  # the model options fine-tuning may change


@dataclass
class ModelConfig:
    src_vocab: int
    tgt_vocab: int
    embed_dim: int = 512  # one width for encoder and decoder, as in every fairseq preset we use
    encoder_layers: int = 6
    decoder_layers: int = 6
    encoder_ffn_dim: int = 2048
    decoder_ffn_dim: int = 2048
    encoder_heads: int = 8
    decoder_heads: int = 8
    dropout: float = 0.1  # fairseq's base_architecture default; the training recipes override it
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    normalize_before: bool = False  # False = post-LN (fairseq default), True = pre-LN + final LayerNorm
    share_decoder_input_output_embed: bool = False
    share_all_embeddings: bool = False  # needs src_vocab == tgt_vocab (one joined dictionary)
    max_source_positions: int = 1024
    max_target_positions: int = 1024
    scale_embedding: bool = True  # multiply token embeddings by sqrt(embed_dim), as fairseq
    pad: int = PAD
    # cross-layer sharing of a dense model (models/layer_sharing.py): none | all | sandwich | cycle_rev
    layer_sharing: str = "none"
    layer_sharing_unique: int = 0  # cycle_rev: distinct layers M (0 = half the layers)
    share_layer_norms: bool = False

    def __post_init__(self):
        for name in ("src_vocab", "tgt_vocab", "embed_dim", "encoder_layers", "decoder_layers",
                     "encoder_ffn_dim", "decoder_ffn_dim", "encoder_heads", "decoder_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise LightformerError(f"{name}={value!r} is invalid: expected a positive integer")
        for name in DROPOUTS:
            value = getattr(self, name)
            if not 0.0 <= float(value) < 1.0:
                raise LightformerError(f"{name}={value!r} is out of range: allowed 0 <= p < 1")
        for heads in (self.encoder_heads, self.decoder_heads):
            if self.embed_dim % heads:
                raise LightformerError(
                    f"embed_dim={self.embed_dim} is not divisible by {heads} attention heads")
        if self.layer_sharing not in LAYER_SHARING:
            raise LightformerError(f"layer_sharing={self.layer_sharing!r} is invalid; allowed: {', '.join(LAYER_SHARING)}")
        for name in ("max_source_positions", "max_target_positions"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise LightformerError(f"{name}={value!r} is invalid: expected a positive integer")
        if not isinstance(self.pad, int) or isinstance(self.pad, bool) or not 0 <= self.pad < min(self.src_vocab,
                                                                                                    self.tgt_vocab):
            raise LightformerError(f"pad={self.pad!r} is invalid: a token id below both vocabulary sizes "
                                   f"(fairseq's dictionaries use {PAD})")
        if not 0 <= self.layer_sharing_unique <= min(self.encoder_layers, self.decoder_layers):
            raise LightformerError(f"layer_sharing_unique={self.layer_sharing_unique} must be 0 (half the layers) "
                                   f"or at most the number of layers")
        if self.share_all_embeddings and self.src_vocab != self.tgt_vocab:
            raise LightformerError(
                f"share_all_embeddings needs one joined dictionary, got src_vocab={self.src_vocab} "
                f"and tgt_vocab={self.tgt_vocab}")
        if self.share_all_embeddings:
            # fairseq implies the decoder input/output tie under share_all_embeddings
            self.share_decoder_input_output_embed = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise LightformerError(f"unknown model config keys {unknown}; allowed: {sorted(known)}")
        return cls(**d)


# --- presets (fairseq transformer_legacy.py; docs/reference.md §3) -------------------------------

def transformer_iwslt_de_en(**kw) -> dict:
    return dict(embed_dim=512, encoder_ffn_dim=1024, decoder_ffn_dim=1024,
                encoder_heads=4, decoder_heads=4, encoder_layers=6, decoder_layers=6) | kw


def transformer_wmt_en_de(**kw) -> dict:
    return dict(embed_dim=512, encoder_ffn_dim=2048, decoder_ffn_dim=2048,
                encoder_heads=8, decoder_heads=8, encoder_layers=6, decoder_layers=6) | kw


def transformer_wmt_en_de_big(**kw) -> dict:
    # fairseq's transformer_vaswani_wmt_en_de_big: also sets dropout 0.3
    return dict(embed_dim=1024, encoder_ffn_dim=4096, decoder_ffn_dim=4096,
                encoder_heads=16, decoder_heads=16, encoder_layers=6, decoder_layers=6,
                dropout=0.3) | kw


def transformer_tiny(**kw) -> dict:
    """Two layers of width 32: for tests and the embedded smoke run."""
    return dict(embed_dim=32, encoder_ffn_dim=64, decoder_ffn_dim=64,
                encoder_heads=4, decoder_heads=4, encoder_layers=2, decoder_layers=2) | kw


def transformer_tiny6(**kw) -> dict:
    """Six narrow layers, so cross-layer sharing groups of 2, 3 and 6 can be tested cheaply."""
    return dict(embed_dim=32, encoder_ffn_dim=64, decoder_ffn_dim=64,
                encoder_heads=4, decoder_heads=4, encoder_layers=6, decoder_layers=6) | kw


PRESETS = {
    "transformer_iwslt_de_en": transformer_iwslt_de_en,
    "transformer_wmt_en_de": transformer_wmt_en_de,
    "transformer_wmt_en_de_big": transformer_wmt_en_de_big,
    "transformer_tiny": transformer_tiny,
    "transformer_tiny6": transformer_tiny6,
}


def model_config(arch: str, src_vocab: int, tgt_vocab: int, **overrides) -> ModelConfig:
    """Resolve a preset name plus overrides into a validated ModelConfig."""
    if arch not in PRESETS:
        raise LightformerError(f"unknown architecture {arch!r}; allowed: {', '.join(PRESETS)}")
    fields = PRESETS[arch](src_vocab=src_vocab, tgt_vocab=tgt_vocab)
    check_known(ModelConfig, overrides, "model option")
    return ModelConfig(**(fields | overrides))
