"""Training throughput: tokens/s, model FLOPs per token, MFU against the device's peak, and peak
memory, for our training step and for Hugging Face's Marian model of the same configuration on
the same batches, in one process (docs/reference.md §8).

Both sides run the same step: teacher-forced forward (bf16 autocast on GPU), fairseq's
label-smoothed loss, backward, AdamW. Batches are synthetic with the real shapes: the paper
vocabularies and sentence lengths drawn like the task's BPE'd text, bucketed by ``max_tokens`` as
training buckets them. Each engine runs the same batches after the same warm-up, one engine on
the device at a time (so peak memory is its own).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np
import torch

from lightformer.config import PAD
from lightformer.data.batching import collate, length_buckets
from lightformer.errors import LightformerError
from lightformer.hardware import peak_flops
from lightformer.options import check_fields, option
from lightformer.paper import LENGTHS
from lightformer.models.losses import label_smoothed_nll_loss, seq2seq_loss
from lightformer.train.cost import arch_of
from lightformer.train.flops import step_macs

@dataclass
class TrainBenchConfig:
    """One training benchmark; each field is also an option of ``lightformer bench train``."""
    device: str = option("auto", help="auto (cuda when available), cpu, cuda or cuda:N")
    dtype: str = option("bf16", choices=("bf16", "fp32"), help="bf16 autocast (GPU) or fp32")
    max_tokens: int = option(4096, check="at_least_1", help="tokens per batch (padded), as training's max_tokens")
    steps: int = option(20, check="at_least_1", help="timed steps per engine")
    warmup: int = option(3, check="nonnegative", help="untimed steps first (allocator, kernels, compile)")
    lengths: str = option("iwslt14", choices=tuple(LENGTHS), help="sentence-length distribution (with --paper-size: "
                                                                  "that task's)")
    seed: int = option(1, check="nonnegative", help="the synthetic batches")
    compile: bool = option(False, help="torch.compile both engines' models")
    peak_tflops: float | None = option(None, check="positive", help="the device's peak for MFU (CPUs and unlisted "
                                                                    "GPUs have none in PEAK_FLOPS)")
    hf: bool = option(True, flag="--no-hf", help="time our models only (not Hugging Face's Marian)")
    loss: str = option("auto", choices=("auto", "fused", "dense"), help="our loss: fused with the output layer and "
                                                                        "chunked, or over dense logits (auto: fused "
                                                                        "on GPU, as training)")

    def __post_init__(self):
        check_fields(self)


def synthetic_batches(src_vocab: int, tgt_vocab: int, cfg: TrainBenchConfig, n: int, pad_to: int = 1) -> list[dict]:
    """``n`` batches as training builds them: lengths drawn like the task's text, bucketed by
    max_tokens, tokens uniform over the vocabulary (speed does not depend on which tokens)."""
    mean, sd, cap = LENGTHS[cfg.lengths]
    rng = np.random.default_rng(cfg.seed)
    count = max(64, n * cfg.max_tokens // int(mean))
    src = np.clip(rng.normal(mean, sd, count), 2, min(cap, cfg.max_tokens)).astype(np.int64)
    tgt = np.clip(src + rng.normal(0, sd / 4, count), 2, min(cap, cfg.max_tokens)).astype(np.int64)
    buckets = length_buckets(src, tgt, cfg.max_tokens)
    order = rng.permutation(len(buckets))[:n]
    if len(order) < n:
        raise LightformerError(f"only {len(order)} batches of max_tokens={cfg.max_tokens} could be drawn")
    g = torch.Generator().manual_seed(cfg.seed)

    def sentence(length, vocab):
        t = torch.randint(4, vocab, (int(length),), generator=g)
        t[-1] = 2  # </s>
        return t

    out = []
    for b in order:
        idx = buckets[b]
        batch = collate([sentence(src[i], src_vocab) for i in idx], [sentence(tgt[i], tgt_vocab) for i in idx], pad_to)
        batch["src_lens"], batch["tgt_lens"] = src[idx].tolist(), tgt[idx].tolist()
        out.append(batch)
    return out


def marian_like(model) -> torch.nn.Module:
    """Hugging Face's MarianMT with our model's configuration (post-LN, sinusoidal positions,
    ReLU, scaled embeddings, tied output), SDPA attention: the peer a user would train instead."""
    from transformers import MarianConfig, MarianMTModel

    c = model.cfg
    if c.normalize_before:
        raise LightformerError("the Hugging Face peer (Marian) is post-LN; this model is pre-LN")
    hc = MarianConfig(
        vocab_size=c.src_vocab, decoder_vocab_size=c.tgt_vocab, share_encoder_decoder_embeddings=c.share_all_embeddings,
        d_model=c.embed_dim, encoder_layers=c.encoder_layers, decoder_layers=c.decoder_layers,
        encoder_ffn_dim=c.encoder_ffn_dim, decoder_ffn_dim=c.decoder_ffn_dim, encoder_attention_heads=c.encoder_heads,
        decoder_attention_heads=c.decoder_heads, activation_function="relu", dropout=c.dropout,
        attention_dropout=c.attention_dropout, activation_dropout=c.activation_dropout, max_position_embeddings=1024,
        scale_embedding=c.scale_embedding, pad_token_id=PAD, eos_token_id=2, decoder_start_token_id=2,
        tie_word_embeddings=c.share_decoder_input_output_embed or c.share_all_embeddings)
    return MarianMTModel._from_config(hc, attn_implementation="sdpa")


def _check_dtype(device: torch.device, dtype: str) -> None:
    if dtype not in ("bf16", "fp32"):
        raise LightformerError(f"dtype {dtype!r}; allowed: bf16, fp32")
    if dtype == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise LightformerError(f"{torch.cuda.get_device_name(device)} cannot run bf16; use --dtype fp32")
    if dtype == "bf16" and device.type == "cpu":
        raise LightformerError("bf16 training is timed on GPU only (the CPU trains in fp32, as lightformer train "
                               "does); use --dtype fp32")


class Step:
    """One training step of an engine on a device: forward, label-smoothed loss, backward, AdamW."""

    def __init__(self, model, engine: str, device, dtype: str, compile_model: bool, fused_loss: bool = False):
        self.model = model.to(device).train()
        self.engine, self.device, self.dtype, self.fused_loss = engine, device, dtype, fused_loss
        params = [p for p in self.model.parameters() if p.requires_grad]
        fused = device.type == "cuda"
        self.optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.98), fused=fused)
        self.forward = torch.compile(self.model) if compile_model else self.model

    def __call__(self, b: dict) -> torch.Tensor:
        dev = self.device
        src, prev = b["src_tokens"].to(dev, non_blocking=True), b["prev_output_tokens"].to(dev, non_blocking=True)
        cast = torch.autocast("cuda", dtype=torch.bfloat16) if self.dtype == "bf16" else contextlib.nullcontext()
        target = b["target"].to(dev, non_blocking=True)
        with cast:
            if self.engine == "transformers":
                logits = self.forward(input_ids=src, attention_mask=src.ne(PAD), decoder_input_ids=prev,
                                      decoder_attention_mask=prev.ne(PAD)).logits
                loss, _ = label_smoothed_nll_loss(logits, target, 0.1)
            else:
                loss, _ = seq2seq_loss(self.forward, self.model, src, prev, target, 0.1, self.fused_loss)
        (loss / b["ntokens"]).backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_mb(device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2 ** 20


def attention_kernels(step: Step, batch: dict) -> str:
    """Which SDPA kernels the step's attention can run on: on GPU, one step restricted to the
    fused kernels (flash, memory-efficient, cuDNN) either runs or says the math fallback is needed."""
    if step.device.type != "cuda":
        return "cpu"
    from torch.nn.attention import SDPBackend, sdpa_kernel

    try:
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]):
            step(batch)
        return "fused (flash/efficient/cudnn)"
    except RuntimeError as e:
        return f"math fallback ({str(e).splitlines()[0][:80]})"


def time_steps(step: Step, batches: list[dict], warmup: int) -> dict:
    """Seconds and target tokens of ``batches`` after ``warmup`` untimed steps, one host sync at the end."""
    for b in batches[:warmup]:
        step(b)
    _sync(step.device)
    if step.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(step.device)
    t0 = time.perf_counter()
    last = None
    for b in batches[warmup:]:
        last = step(b)
    if last is not None and not torch.isfinite(last).item():
        raise LightformerError(f"{step.engine}: non-finite loss while timing")
    _sync(step.device)
    return {"seconds": time.perf_counter() - t0, "tokens": sum(b["ntokens"] for b in batches[warmup:]),
            "peak_mem_mb": _peak_memory_mb(step.device)}


def bench_train(models: dict, cfg: TrainBenchConfig, device: torch.device) -> list[dict]:
    """One row per (model, engine): tokens/s, model FLOPs per target token, achieved TFLOP/s, MFU,
    peak memory. ``models``: name -> our model; the Hugging Face peer is built for dense models."""
    _check_dtype(device, cfg.dtype)
    if cfg.loss not in ("auto", "fused", "dense"):
        raise LightformerError(f"loss {cfg.loss!r}; allowed: auto, fused, dense")
    fused = cfg.loss == "fused" or (cfg.loss == "auto" and device.type == "cuda")
    peak, device_name = peak_flops(device, cfg.dtype, cfg.peak_tflops)
    rows = []
    for name, model in models.items():
        batches = synthetic_batches(model.cfg.src_vocab, model.cfg.tgt_vocab, cfg, cfg.warmup + cfg.steps,
                                    pad_to=8 if device.type == "cuda" else 1)  # as lightformer train pads
        macs = step_macs(model)
        flops = sum(macs.train_flops(b["src_lens"], b["tgt_lens"]) for b in batches[cfg.warmup:])
        tokens = sum(b["ntokens"] for b in batches[cfg.warmup:])
        engines = {"lightformer": model}
        if cfg.hf and model.compression is None:
            engines["transformers"] = marian_like(model)
        for engine, m in engines.items():
            try:
                step = Step(m, engine, device, cfg.dtype, cfg.compile, fused and engine == "lightformer")
                kernels = attention_kernels(step, batches[0])
                t = time_steps(step, batches, cfg.warmup)
            except torch.OutOfMemoryError:
                raise LightformerError(
                    f"{name} ({engine}) does not fit max_tokens={cfg.max_tokens} on {device_name}: it needed more "
                    f"than {torch.cuda.get_device_properties(device).total_memory / 2**30:.0f} GiB; lower max_tokens "
                    f"and raise update_freq to keep the effective batch") from None
            achieved = flops / t["seconds"]
            trainable = sum(p.numel() for p in m.parameters() if p.requires_grad)  # Marian's positions are fixed
            rows.append({"model": name, "engine": engine, "arch": arch_of(model.cfg),
                         "kind": "dense" if model.compression is None else "lightformer",
                         "lengths": cfg.lengths, "params": trainable,
                         "device": device.type, "device_name": device_name, "dtype": cfg.dtype,
                         "max_tokens": cfg.max_tokens, "steps": cfg.steps, "batches_sentences": sum(
                             b["src_tokens"].size(0) for b in batches[cfg.warmup:]),
                         "target_tokens": tokens, "padding_share": 1 - tokens / sum(
                             b["target"].numel() for b in batches[cfg.warmup:]),
                         "tokens_per_s": t["tokens"] / t["seconds"], "model_flops_per_token": flops / tokens,
                         "tflops": achieved / 1e12, "mfu": achieved / peak if peak else None,
                         "peak_flops": peak, "peak_mem_mb": t["peak_mem_mb"], "compile": cfg.compile,
                         "loss": "fused" if step.fused_loss else "dense", "attention_kernels": kernels})
            m.to("cpu")  # the next engine's peak memory is its own
            del step
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows
