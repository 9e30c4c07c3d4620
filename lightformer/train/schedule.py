"""fairseq's inverse_sqrt: linear warmup from warmup_init_lr to lr, then lr·sqrt(warmup/update)."""
from __future__ import annotations

import math


def inverse_sqrt_lr(update: int, lr: float, warmup_updates: int, warmup_init_lr: float = 1e-7) -> float:
    """Learning rate for the given update number (1-based, as fairseq steps before each update)."""
    if warmup_updates > 0 and update < warmup_updates:
        return warmup_init_lr + update * (lr - warmup_init_lr) / warmup_updates
    return lr * math.sqrt(max(warmup_updates, 1) / max(update, 1))
