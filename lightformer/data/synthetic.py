"""A built-in synthetic translation task (copy or reverse over a small vocabulary) for tests and
demos: a 2-layer model learns `copy` to > 90 BLEU on CPU in under a minute."""
from __future__ import annotations

import random
from pathlib import Path

from lightformer.data.dictionary import Dictionary
from lightformer.data.indexed import write_parallel
from lightformer.errors import LightformerError

TASKS = ("copy", "reverse")


def make_pairs(task: str, n: int, vocab: int, min_len: int, max_len: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab)]
    src, tgt = [], []
    for _ in range(n):
        s = [rng.choice(words) for _ in range(rng.randint(min_len, max_len))]
        src.append(" ".join(s))
        tgt.append(" ".join(s if task == "copy" else s[::-1]))
    return src, tgt


def write_synthetic(root: str | Path, task: str = "copy", train: int = 4000, valid: int = 200, test: int = 200,
                    vocab: int = 24, min_len: int = 3, max_len: int = 12, seed: int = 1) -> Path:
    if task not in TASKS:
        raise LightformerError(f"synthetic task {task!r} is unknown; allowed: {', '.join(TASKS)}")
    if not 1 <= min_len <= max_len:
        raise LightformerError(f"sentence lengths {min_len}..{max_len}: need 1 <= min_len <= max_len")
    splits = {name: make_pairs(task, n, vocab, min_len, max_len, seed + k)
              for k, (name, n) in enumerate((("train", train), ("valid", valid), ("test", test)))}
    src_dict = Dictionary.build(splits["train"][0])
    tgt_dict = Dictionary.build(splits["train"][1])
    return write_parallel(root, "src", "tgt", src_dict, tgt_dict, splits,
                          meta={"task": f"synthetic-{task}", "seed": seed})
