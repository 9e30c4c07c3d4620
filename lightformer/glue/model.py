"""Classifier checkpoints: a directory with the weights (safetensors; shared factors once), the
Hugging Face config, the compression plan if any, and the tokenizer files, so a compressed BERT
is rebuilt exactly without the Hub."""
from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import torch

from lightformer.errors import LightformerError

META = "lightformer.json"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_vocab(texts, out: Path, max_size: int = 30_000) -> Path:
    """A WordPiece vocabulary of whole lower-cased words (BERT's basic tokenisation) for a tiny
    BERT trained from scratch: no download, every training word one token."""
    counts = Counter(w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower()))
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][: max_size - len(SPECIALS)]
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.txt").write_text("\n".join(SPECIALS + words) + "\n")
    return out / "vocab.txt"


def tiny_bert(vocab_dir: Path, num_labels: int, hidden: int = 64, layers: int = 2, heads: int = 2,
              ffn: int = 128, max_len: int = 128, seed: int = 1):
    from transformers import BertConfig, BertForSequenceClassification

    vocab = (Path(vocab_dir) / "vocab.txt").read_text().splitlines()
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=ffn, max_position_embeddings=max_len, num_labels=num_labels)
    torch.manual_seed(seed)
    return BertForSequenceClassification(cfg)


def pretrained_bert(path: Path, num_labels: int):
    """A fetched BERT (`lightformer data fetch bert_base_uncased`) with a new classification head."""
    from transformers import AutoModelForSequenceClassification

    if not (Path(path) / "config.json").is_file():
        raise LightformerError(f"{path} holds no BERT (config.json missing); fetch it with `lightformer data fetch "
                               f"bert_base_uncased` (offline: --mirror DIR)")
    return AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=num_labels)


def load_tokenizer(path: Path):
    from transformers import BertTokenizerFast

    if not (Path(path) / "vocab.txt").is_file():
        raise LightformerError(f"{path}: no vocab.txt (not a classifier checkpoint or BERT directory)")
    return BertTokenizerFast.from_pretrained(str(path))  # vocab.txt (+ tokenizer config when fetched)


KIND = "GLUE classifier"


def save_classifier(model, out: Path, tokenizer_dir: Path, meta: dict, force: bool = False) -> Path:
    """Write a checkpoint directory atomically (a crash leaves the old one or none); an existing
    one is replaced only with ``force`` and only if it is a classifier this project wrote."""
    from safetensors.torch import save_model

    from lightformer.io import atomic_dir

    out = Path(out)
    with atomic_dir(out, KIND, force=force) as tmp:
        save_model(model, str(tmp / "model.safetensors"))  # shared factors stored once
        shutil.copyfile(Path(tokenizer_dir) / "vocab.txt", tmp / "vocab.txt")
        record = {"kind": "bert-classifier", "hf_config": model.config.to_dict(),
                  "compression": getattr(model, "compression", None)} | meta
        (tmp / META).write_text(json.dumps(record, indent=2) + "\n")
    return out


def load_classifier(path: Path):
    """(model, metadata) from a checkpoint directory written by save_classifier."""
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from lightformer.compress.swap import swap_in_factors
    from lightformer.compress.plan import plan_from_json

    path = Path(path)
    if not (path / META).is_file():
        raise LightformerError(f"{path} is not a classifier checkpoint (no {META}); create one with `lightformer glue init`")
    meta = json.loads((path / META).read_text())
    cfg = meta["hf_config"]
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    model = AutoModelForSequenceClassification.from_config(config)
    if meta.get("compression"):
        swap_in_factors(model, plan_from_json(meta["compression"]["groups"]))
        model.compression = meta["compression"]
    load_model(model, str(path / "model.safetensors"))
    return model, meta
