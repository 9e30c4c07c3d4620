"""fairseq's Dictionary: special symbols first, then by frequency, padded to a multiple of 8
(docs/reference.md §3), saved as ``word count`` lines, so vocabulary sizes compare with fairseq's."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

from lightformer.config import BOS, EOS, PAD, UNK
from lightformer.errors import LightformerError

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
assert [SPECIALS.index(s) for s in SPECIALS] == [BOS, PAD, EOS, UNK]


class Dictionary:
    def __init__(self):
        self.symbols = list(SPECIALS)
        self.counts = [1] * len(SPECIALS)
        self.index = {s: i for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    def add(self, word: str, n: int = 1) -> int:
        if word in self.index:
            i = self.index[word]
            self.counts[i] += n
            return i
        self.index[word] = len(self.symbols)
        self.symbols.append(word)
        self.counts.append(n)
        return self.index[word]

    @classmethod
    def build(cls, lines, threshold: int = 0, padding_factor: int = 8) -> "Dictionary":
        """From whitespace-tokenised lines: frequency order, ties alphabetical (fairseq finalize)."""
        counter = Counter(w for line in lines for w in line.split())
        d = cls()
        for word, n in sorted(sorted(counter.items()), key=lambda kv: -kv[1]):
            if n >= threshold:
                d.add(word, n)
        i = 0
        while len(d) % padding_factor:
            d.add(f"madeupword{i:04d}", 0)
            i += 1
        return d

    def save(self, path: str | Path) -> None:
        Path(path).write_text("".join(f"{s} {c}\n" for s, c in zip(self.symbols[4:], self.counts[4:])))

    @classmethod
    def load(cls, path: str | Path) -> "Dictionary":
        d = cls()
        for n, line in enumerate(Path(path).read_text().splitlines(), 1):
            word, _, count = line.rpartition(" ")
            if not word or not count.isdigit():
                raise LightformerError(f"{path}:{n}: expected 'word count', got {line!r}")
            d.add(word, int(count))
        return d

    def encode(self, line: str, append_eos: bool = True) -> torch.Tensor:
        ids = [self.index.get(w, UNK) for w in line.split()]
        return torch.tensor(ids + ([EOS] if append_eos else []), dtype=torch.int32)

    def decode(self, ids, bpe_symbol: str | None = None) -> str:
        """Tokens to text, dropping </s>, <pad> and <s>; with ``bpe_symbol`` ('@@ '), undo BPE."""
        text = " ".join(self.symbols[i] for i in ids if i not in (EOS, PAD, BOS))
        if bpe_symbol:
            text = (text + " ").replace(bpe_symbol, "").rstrip()
        return text
