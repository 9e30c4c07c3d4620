"""Encoder-only speed of GLUE classifiers (docs/reference.md §6 conventions, without decoding):
``latency`` is one sequence of ``seq_len`` tokens (batch 1), ``throughput`` batches of ``batch``
sequences, in sentences/s. Models run interleaved after a warm-up; each model's speedup over the
first is taken run by run and summarised as translation speed is (``speedup_stats``)."""
from __future__ import annotations

import datetime as _dt

import torch
from tqdm.auto import tqdm

from lightformer.errors import LightformerError
from lightformer.gpu import pick_device
from lightformer.hardware import device_name
from lightformer.io import command_line
from lightformer.speed.bench import (
    DTYPES,
    Timer,
    speedup_stats,
    trimmed_mean,
)


def encoder_speed(models: dict[str, torch.nn.Module], protocol: str = "latency", device: str = "cpu",
                  dtype: str = "fp32", threads: int | None = None, batch: int = 32, seq_len: int = 128,
                  runs: int = 100, warmup: int = 5, seed: int = 1, progress: bool = True) -> list[dict]:
    if protocol not in ("latency", "throughput"):
        raise LightformerError(f"protocol={protocol!r} is invalid; allowed: latency, throughput")
    if dtype not in DTYPES:
        raise LightformerError(f"dtype={dtype!r} is invalid; allowed: {', '.join(DTYPES)}")
    if runs < 1 or warmup < 0 or seq_len < 2 or batch < 1:
        raise LightformerError("runs >= 1, warmup >= 0, seq_len >= 2 and batch >= 1 are required")
    dev = pick_device(device)
    if threads:
        torch.set_num_threads(threads)
    n = 1 if protocol == "latency" else batch
    vocab = min(m.config.vocab_size for m in models.values())
    ids = torch.randint(5, vocab, (n, seq_len), generator=torch.Generator().manual_seed(seed)).to(dev)
    mask = torch.ones_like(ids)
    prepared = {name: m.to(dev, DTYPES[dtype]).eval() for name, m in models.items()}
    timer = Timer(dev)
    times = {name: [] for name in prepared}
    with torch.inference_mode():
        for i in tqdm(range(warmup + runs), desc=f"speed {protocol}", disable=not progress or None):
            for name, m in prepared.items():
                _, t = timer(lambda: m(input_ids=ids, attention_mask=mask).logits)
                if i >= warmup:
                    times[name].append(t)
    base = next(iter(times))
    rows = []
    for name, ts in times.items():
        ms = trimmed_mean(ts) * 1e3
        rows.append({"model": name, "protocol": protocol, "device": dev.type, "device_name": device_name(dev),
                     "dtype": dtype, "threads": torch.get_num_threads() if dev.type == "cpu" else None,
                     "batch": n, "seq_len": seq_len, "params": sum(p.numel() for p in prepared[name].parameters()),
                     "ms": ms, "sentences_per_s": n / (ms / 1e3), "runs": runs,
                     "torch": torch.__version__, "measured": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                     "command": command_line()} | speedup_stats(times[base], ts))
    return rows
