"""Progress for long loops wherever the output goes: tqdm's bar on a terminal, and in a log file
(Snakemake, SLURM), where tqdm shows nothing, one plain line every ``LIGHTFORMER_PROGRESS_S``
seconds (default 30) with the count, the rate and the time left."""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator

from tqdm.auto import tqdm

INTERVAL_ENV = "LIGHTFORMER_PROGRESS_S"


def _interval() -> float:
    try:
        return float(os.environ.get(INTERVAL_ENV, 30))
    except ValueError:
        return 30.0


def clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def plain_lines(items: Iterable, desc: str, total: int | None, unit: str, interval: float) -> Iterator:
    """Yield ``items``, printing ``desc: n/total unit, rate/s, ETA`` to stderr every ``interval`` s."""
    t0 = last = time.monotonic()
    for n, item in enumerate(items, 1):
        yield item
        now = time.monotonic()
        if now - last >= interval:
            last, rate = now, n / (now - t0)
            left = f", ETA {clock((total - n) / rate)}" if total else ""
            print(f"{desc}: {n:,}{f'/{total:,}' if total else ''} {unit}s, {rate:,.0f} {unit}/s{left}",
                  file=sys.stderr, flush=True)


def track(items: Iterable, desc: str, total: int | None = None, unit: str = "it", enabled: bool = True) -> Iterable:
    """``items`` with a progress bar (terminal) or plain progress lines (anything else)."""
    if not enabled:
        return items
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    if sys.stderr.isatty():
        return tqdm(items, desc=desc, total=total, unit=unit)
    return plain_lines(items, desc, total, unit, _interval())
