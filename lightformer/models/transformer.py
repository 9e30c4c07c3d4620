"""The Transformer encoder–decoder, matching fairseq's ``TransformerModel`` (transformer_legacy.py).

Read top to bottom in data-flow order: positions -> attention -> layers -> encoder -> decoder
-> model. Parameter names follow fairseq's state-dict keys (``encoder.layers.0.self_attn.q_proj``,
``decoder.layers.0.encoder_attn``, ``fc1``/``fc2``, ``final_layer_norm`` = the FFN's LayerNorm),
so the parameter counts of docs/reference.md §3 can be checked key by key.

Tensors are batch-first: tokens (B, T); activations (B, T, C); per-head (B, H, T, hd).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from lightformer.config import ModelConfig
from lightformer.models.layer_sharing import layer_owners, tie_layers
from lightformer.models.lowrank import Embedding, shared_input_basis

if TYPE_CHECKING:  # decoding state lives in lightformer.decode; the model only reads and writes it
    from lightformer.decode.cache import DecoderCache, LayerCache


# --- positions --------------------------------------------------------------------------------

def sinusoidal_table(num_positions: int, dim: int, padding_idx: int) -> torch.Tensor:
    """fairseq's SinusoidalPositionalEmbedding.get_embedding: [sin | cos] halves, pad row zero.
    Computed on the CPU whatever the default device (the same values everywhere; on the meta
    device these operators would run torch's Python reference kernels), then moved there."""
    half = dim // 2
    cpu = torch.device("cpu")
    freq = torch.exp(torch.arange(half, dtype=torch.float, device=cpu) * -(math.log(10000) / (half - 1)))
    angles = torch.arange(num_positions, dtype=torch.float, device=cpu)[:, None] * freq[None, :]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        table = torch.cat([table, torch.zeros(num_positions, 1, device=cpu)], dim=1)
    table[padding_idx] = 0
    return table.to(torch.get_default_device())


class SinusoidalPositions(nn.Module):
    """No parameters. Positions count non-pad tokens from padding_idx+1 (fairseq make_positions),
    so left- and right-padding give every real token the same position."""

    def __init__(self, dim: int, padding_idx: int, max_positions: int):
        super().__init__()
        self.padding_idx = padding_idx
        self.register_buffer("table", sinusoidal_table(max_positions + padding_idx + 1, dim, padding_idx),
                             persistent=False)

    @property
    def max_positions(self) -> int:
        return self.table.size(0) - self.padding_idx - 1

    def forward(self, tokens: torch.Tensor, start: int | torch.Tensor | None = None) -> torch.Tensor:
        """``start``: None for whole (padded) sequences; an int offset for the new tokens of an
        unpadded prefix; a 0-d device tensor for static-shape decoding (one token, no host sync)."""
        if isinstance(start, torch.Tensor):
            return self.table[(start + self.padding_idx + 1).view(1, 1)].expand(tokens.size(0), 1, -1)
        end = tokens.size(1) + (0 if start is None else start)
        if end > self.max_positions:  # checked on sizes: no host sync
            raise ValueError(f"sequence of {end} tokens is longer than max positions {self.max_positions}")
        if start is None:  # whole sequences, possibly padded
            mask = tokens.ne(self.padding_idx).int()
            positions = torch.cumsum(mask, dim=1) * mask + self.padding_idx
        else:  # incremental decoding: new tokens at offsets start.. of an unpadded prefix
            first = self.padding_idx + 1 + start
            positions = torch.arange(first, first + tokens.size(1), device=tokens.device).expand_as(tokens)
        return self.table[positions]  # (B, T, C)


# --- attention --------------------------------------------------------------------------------

class MultiheadAttention(nn.Module):
    """fairseq's MultiheadAttention with scaled_dot_product_attention as the kernel."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        # fairseq reset_parameters: q/k/v xavier with gain 1/sqrt(2) (same-dim case), out_proj
        # xavier with zero bias; q/k/v biases keep nn.Linear's default init.
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.xavier_uniform_(proj.weight, gain=1 / math.sqrt(2))
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.constant_(self.out_proj.bias, 0.0)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        B, T, _ = t.shape
        if T == 1:  # a decoding step: the same layout without a transpose (an exported graph would copy)
            return t.view(B, self.num_heads, 1, self.head_dim)
        return t.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)

    def qkv(self, x: torch.Tensor):
        """q, k, v for self-attention; a shared low-rank input basis is applied to x once."""
        basis = shared_input_basis(self.q_proj, self.k_proj, self.v_proj)
        if basis is not None:
            h = F.linear(x, basis)  # (B, T, r)
            q, k, v = self.q_proj.expand(h), self.k_proj.expand(h), self.v_proj.expand(h)
        else:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        return self._heads(q), self._heads(k), self._heads(v)

    def query(self, x: torch.Tensor) -> torch.Tensor:
        return self._heads(self.q_proj(x))

    def kv(self, memory: torch.Tensor):
        """k, v of cross-attention over the encoder output (computed once per source in decoding)."""
        basis = shared_input_basis(self.k_proj, self.v_proj)
        if basis is not None:
            h = F.linear(memory, basis)
            k, v = self.k_proj.expand(h), self.v_proj.expand(h)
        else:
            k, v = self.k_proj(memory), self.v_proj(memory)
        return self._heads(k), self._heads(v)

    def attend(self, q, k, v, mask=None, is_causal=False) -> torch.Tensor:
        # mask: bool, True = may attend, broadcastable to (B, H, Tq, Tk)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal,
            dropout_p=self.dropout if self.training else 0.0)  # (B, H, Tq, hd); scale hd^-1/2 as fairseq
        B, H, T, hd = out.shape
        out = out.reshape(B, 1, H * hd) if T == 1 else out.transpose(1, 2).reshape(B, T, H * hd)
        return self.out_proj(out)


# --- layers -----------------------------------------------------------------------------------

def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    # skip the call entirely at inference: decoding runs ~100 of these per step
    return F.dropout(x, p, True) if training and p > 0 else x


def feed_forward(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """ReLU FFN of a layer holding fc1/fc2 (fairseq keeps them on the layer itself)."""
    x = F.relu(layer.fc1(x))
    x = dropout(x, layer.activation_dropout, layer.training)
    return layer.fc2(x)


def sublayer(layer: nn.Module, x: torch.Tensor, norm: nn.LayerNorm, fn) -> torch.Tensor:
    """Residual with the LayerNorm after it (post-LN, fairseq's default) or before it (pre-LN,
    ``normalize_before``); ``fn`` maps the (normalised) input to the sublayer's output."""
    if layer.normalize_before:
        return x + dropout(fn(norm(x)), layer.dropout, layer.training)
    return norm(x + dropout(fn(x), layer.dropout, layer.training))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.embed_dim
        self.normalize_before = cfg.normalize_before
        self.dropout = cfg.dropout
        self.self_attn = MultiheadAttention(d, cfg.encoder_heads, cfg.attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.activation_dropout = cfg.activation_dropout
        self.fc1 = nn.Linear(d, cfg.encoder_ffn_dim)  # fairseq keeps nn.Linear's default init here
        self.fc2 = nn.Linear(cfg.encoder_ffn_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = sublayer(self, x, self.self_attn_layer_norm, lambda h: self.self_attn.attend(*self.self_attn.qkv(h), mask))
        return sublayer(self, x, self.final_layer_norm, lambda h: feed_forward(self, h))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.embed_dim
        self.normalize_before = cfg.normalize_before
        self.dropout = cfg.dropout
        self.self_attn = MultiheadAttention(d, cfg.decoder_heads, cfg.attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.encoder_attn = MultiheadAttention(d, cfg.decoder_heads, cfg.attention_dropout)
        self.encoder_attn_layer_norm = nn.LayerNorm(d)
        self.activation_dropout = cfg.activation_dropout
        self.fc1 = nn.Linear(d, cfg.decoder_ffn_dim)
        self.fc2 = nn.Linear(cfg.decoder_ffn_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)

    def _self_attention(self, x, cache: LayerCache | None, start):
        q, k, v = self.self_attn.qkv(x)
        if cache is None:  # teacher forcing: right-padded targets need only the causal mask
            return self.self_attn.attend(q, k, v, is_causal=True)
        return self.self_attn.attend(q, *cache.append(k, v, start))  # decoding: the cache's keys/values

    def _cross_attention(self, x, memory, memory_mask, cache: LayerCache | None):
        if cache is not None:
            k, v = cache.cross_k, cache.cross_v
        else:
            k, v = self.encoder_attn.kv(memory)
        return self.encoder_attn.attend(self.encoder_attn.query(x), k, v, memory_mask)

    def forward(self, x, memory, memory_mask, cache: LayerCache | None = None, start: int = 0):
        x = sublayer(self, x, self.self_attn_layer_norm, lambda h: self._self_attention(h, cache, start))
        x = sublayer(self, x, self.encoder_attn_layer_norm,
                     lambda h: self._cross_attention(h, memory, memory_mask, cache))
        return sublayer(self, x, self.final_layer_norm, lambda h: feed_forward(self, h))


# --- encoder ----------------------------------------------------------------------------------

@dataclass
class EncoderOut:
    out: torch.Tensor  # (B, S, C)
    padding_mask: torch.Tensor | None  # (B, S) True at pads; None when the batch has none

    def attn_mask(self) -> torch.Tensor | None:
        """Keep-mask for scaled_dot_product_attention, (B, 1, 1, S)."""
        return None if self.padding_mask is None else ~self.padding_mask[:, None, None, :]


def build_embedding(vocab: int, dim: int, padding_idx: int) -> Embedding:
    emb = Embedding(vocab, dim, padding_idx=padding_idx)
    nn.init.normal_(emb.weight, mean=0.0, std=dim ** -0.5)  # fairseq Embedding()
    nn.init.constant_(emb.weight[padding_idx], 0.0)
    return emb


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig, embed_tokens: nn.Module):
        super().__init__()
        self.padding_idx = cfg.pad
        self.dropout = cfg.dropout
        self.embed_scale = math.sqrt(cfg.embed_dim) if cfg.scale_embedding else 1.0
        self.embed_tokens = embed_tokens
        self.embed_positions = SinusoidalPositions(cfg.embed_dim, cfg.pad, cfg.max_source_positions)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.encoder_layers))
        tie_layers(self.layers, layer_owners(cfg.encoder_layers, cfg.layer_sharing, cfg.layer_sharing_unique),
                   cfg.share_layer_norms)
        # post-LN has no final LayerNorm (fairseq: encoder_normalize_before=False -> layer_norm None)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim) if cfg.normalize_before else None

    def forward(self, src_tokens: torch.Tensor) -> EncoderOut:
        padding_mask = src_tokens.eq(self.padding_idx)  # (B, S)
        # training batches are padded anyway: no host sync (nor graph break under torch.compile) to
        # find out; decoding skips the mask when there are no pads (SDPA's fastest kernels need none)
        has_pads = self.training or bool(padding_mask.any())
        return self.encode(src_tokens, padding_mask if has_pads else None)

    def encode(self, src_tokens: torch.Tensor, padding_mask: torch.Tensor | None) -> EncoderOut:
        """The encoder once it is known whether the batch has pads (``padding_mask`` or None)."""
        x = self.embed_scale * self.embed_tokens(src_tokens) + self.embed_positions(src_tokens)
        x = dropout(x, self.dropout, self.training)
        if padding_mask is not None:
            x = x * (~padding_mask).unsqueeze(-1).type_as(x)  # fairseq zeroes padded positions
        enc = EncoderOut(x, padding_mask)
        mask = enc.attn_mask()
        for layer in self.layers:
            x = layer(x, mask)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        enc.out = x
        return enc


# --- decoder ----------------------------------------------------------------------------------

class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig, embed_tokens: nn.Module):
        super().__init__()
        d = cfg.embed_dim
        self.padding_idx = cfg.pad
        self.dropout = cfg.dropout
        self.num_heads = cfg.decoder_heads
        self.embed_scale = math.sqrt(d) if cfg.scale_embedding else 1.0
        self.embed_tokens = embed_tokens
        self.embed_positions = SinusoidalPositions(d, cfg.pad, cfg.max_target_positions)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        tie_layers(self.layers, layer_owners(cfg.decoder_layers, cfg.layer_sharing, cfg.layer_sharing_unique),
                   cfg.share_layer_norms)
        self.layer_norm = nn.LayerNorm(d) if cfg.normalize_before else None
        if cfg.share_decoder_input_output_embed:
            self.output_projection = None  # logits through embed_tokens.logits
        else:
            self.output_projection = nn.Linear(d, cfg.tgt_vocab, bias=False)
            nn.init.normal_(self.output_projection.weight, mean=0.0, std=d ** -0.5)

    def output_layer(self, x: torch.Tensor) -> torch.Tensor:
        if self.output_projection is None:
            return self.embed_tokens.logits(x)
        return self.output_projection(x)

    def forward(self, prev_output_tokens, encoder_out: EncoderOut | None, cache: DecoderCache | None = None,
                features_only: bool = False):
        """Logits (B, T, V), or with ``features_only`` the states the output layer reads (the fused
        loss applies it itself). With ``cache``, only the tokens of ``prev_output_tokens`` beyond
        ``cache.length`` are computed (O(1) new tokens per decoding step) and the cache advances."""
        if cache is None:
            tokens, start = prev_output_tokens, None
            memory, memory_mask = encoder_out.out, encoder_out.attn_mask()
        else:  # the cache says which tokens are new and where they start
            tokens, start = cache.new_tokens(prev_output_tokens)
            memory, memory_mask = None, cache.memory_mask
        x = self.embed_scale * self.embed_tokens(tokens) + self.embed_positions(tokens, start)
        x = dropout(x, self.dropout, self.training)
        for i, layer in enumerate(self.layers):
            x = layer(x, memory, memory_mask, None if cache is None else cache.layers[i],
                      0 if start is None else start)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        if cache is not None:
            cache.advance(tokens.size(1))
        return x if features_only else self.output_layer(x)


# --- model ------------------------------------------------------------------------------------

def set_dropout(model: nn.Module, dropout=None, attention_dropout=None, activation_dropout=None) -> None:
    """Change dropout rates of a built model (fine-tuning a checkpoint with another recipe)."""
    for m in model.modules():
        if isinstance(m, MultiheadAttention):
            if attention_dropout is not None:
                m.dropout = attention_dropout
        elif isinstance(m, (EncoderLayer, DecoderLayer, Encoder, Decoder)):
            if dropout is not None:
                m.dropout = dropout
            if activation_dropout is not None and hasattr(m, "activation_dropout"):
                m.activation_dropout = activation_dropout
    cfg = model.cfg
    for name, value in (("dropout", dropout), ("attention_dropout", attention_dropout),
                        ("activation_dropout", activation_dropout)):
        if value is not None:
            setattr(cfg, name, value)


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.compression = None  # the plan and transfer report once compressed (lightformer.compress)
        src_embed = build_embedding(cfg.src_vocab, cfg.embed_dim, cfg.pad)
        tgt_embed = src_embed if cfg.share_all_embeddings else build_embedding(cfg.tgt_vocab, cfg.embed_dim, cfg.pad)
        self.encoder = Encoder(cfg, src_embed)
        self.decoder = Decoder(cfg, tgt_embed)

    def forward(self, src_tokens: torch.Tensor, prev_output_tokens: torch.Tensor,
                features_only: bool = False) -> torch.Tensor:
        """Teacher-forced logits (B, T_tgt, V_tgt), or the final decoder states (B, T_tgt, d) with
        ``features_only``; tokens batch-first, pad = cfg.pad."""
        return self.decoder(prev_output_tokens, self.encoder(src_tokens), features_only=features_only)
