"""Fine-tune a classifier on one GLUE task and score its dev split(s): the usual BERT recipe
(max length 128, AdamW lr 2e-5 with weight decay 0.01 off biases and LayerNorms, batch 32,
3 epochs, linear warmup over the first 10% then linear decay), all configurable; regression for
STS-B. Batches are padded to their longest example; bf16 autocast on GPU."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lightformer.datasets.glue import DEV_SPLITS, check_task
from lightformer.datasets.glue_tasks import TASKS, dev_split_name
from lightformer.errors import LightformerError
from lightformer.glue.metrics import glue_metrics
from lightformer.gpu import pick_device
from lightformer.validate import checks


@dataclass
class GlueConfig:
    max_len: int = 128
    lr: float = 2e-5
    batch_size: int = 32
    epochs: int = 3
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 1
    device: str = "auto"
    bf16: bool = True
    threads: int = 0

    def __post_init__(self):
        checks(self, {"max_len": "at_least_1", "batch_size": "at_least_1", "epochs": "at_least_1", "lr": "positive",
                      "warmup_ratio": "fraction", "weight_decay": "nonnegative", "seed": "nonnegative",
                      "threads": "nonnegative"})


def read_rows(data: Path, task: str, split: str) -> list[dict]:
    path = Path(data) / task / f"{split}.jsonl"
    if not path.is_file():
        raise LightformerError(f"{path} is missing; run `lightformer data prepare glue`")
    with open(path) as f:
        return [json.loads(line) for line in f]


def encode(tokenizer, task: str, rows: list[dict], max_len: int) -> dict:
    cols = list(TASKS[task].columns)
    texts = [[r[c] for r in rows] for c in cols]
    enc = tokenizer(*texts, truncation=True, max_length=max_len)
    labels = [r["label"] for r in rows]
    return {"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"], "labels": labels}


def collate(enc: dict, idx, regression: bool, device) -> dict:
    n = max(len(enc["input_ids"][i]) for i in idx)
    ids = torch.zeros(len(idx), n, dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for row, i in enumerate(idx):
        seq = enc["input_ids"][i]
        ids[row, : len(seq)] = torch.tensor(seq)
        types[row, : len(seq)] = torch.tensor(enc["token_type_ids"][i])
        mask[row, : len(seq)] = 1
    labels = torch.tensor([enc["labels"][i] for i in idx], dtype=torch.float if regression else torch.long)
    return {k: v.to(device, non_blocking=True) for k, v in
            {"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "labels": labels}.items()}


@torch.no_grad()
def predict(model, enc: dict, regression: bool, device, batch_size: int = 128, autocast=None) -> np.ndarray:
    model.eval()
    out = []
    for start in range(0, len(enc["labels"]), batch_size):
        batch = collate(enc, range(start, min(start + batch_size, len(enc["labels"]))), regression, device)
        batch.pop("labels")
        with autocast():
            logits = model(**batch).logits.float()
        out.append(logits[:, 0] if regression else logits.argmax(-1))
    return torch.cat(out).cpu().numpy()


def evaluate(model, tokenizer, task: str, data: Path, cfg: GlueConfig, device, autocast) -> dict:
    """Dev metrics per dev split (MNLI: matched and mismatched)."""
    regression = TASKS[task].num_labels == 1
    out = {}
    for split in DEV_SPLITS[task]:
        rows = read_rows(data, task, split)
        enc = encode(tokenizer, task, rows, cfg.max_len)
        pred = predict(model, enc, regression, device, autocast=autocast)
        name = dev_split_name(task, split)
        out[name] = glue_metrics(name, pred, np.asarray(enc["labels"]))
    return out


def fine_tune(model, tokenizer, task: str, data: Path, cfg: GlueConfig, progress: bool = True) -> dict:
    """Fine-tune ``model`` in place; returns the dev metrics after each epoch and the final ones."""
    from transformers import get_linear_schedule_with_warmup

    check_task(task)
    if model.config.num_labels != TASKS[task].num_labels:
        raise LightformerError(f"the model has {model.config.num_labels} outputs but {task} needs {TASKS[task].num_labels}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    use_bf16 = cfg.bf16 and device.type == "cuda"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16) if device.type == "cuda" \
            else torch.autocast("cpu", enabled=False)

    regression = TASKS[task].num_labels == 1
    enc = encode(tokenizer, task, read_rows(data, task, "train"), cfg.max_len)
    n = len(enc["labels"])
    model.to(device)
    decay = [p for name, p in model.named_parameters() if not (name.endswith("bias") or "LayerNorm" in name)]
    no_decay = [p for name, p in model.named_parameters() if name.endswith("bias") or "LayerNorm" in name]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    steps = cfg.epochs * ((n + cfg.batch_size - 1) // cfg.batch_size)
    schedule = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * steps), steps)
    generator = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    history = []
    start = time.perf_counter()
    bar = tqdm(total=steps, desc=f"glue {task}", unit="step", disable=not progress or None)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator).tolist()
        total = torch.zeros((), device=device)  # summed on device: one host sync per epoch
        for b in range(0, n, cfg.batch_size):
            batch = collate(enc, order[b: b + cfg.batch_size], regression, device)
            with autocast():
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            total += loss.detach() * len(batch["labels"])
            bar.update(1)
        dev = evaluate(model, tokenizer, task, data, cfg, device, autocast)
        total = float(total)
        if not np.isfinite(total):
            raise LightformerError(f"non-finite loss in epoch {epoch}; lower lr={cfg.lr}; nothing was saved")
        history.append({"epoch": epoch, "train_loss": total / n, "wall_s": time.perf_counter() - start,
                        "dev": {k: v["scores"] for k, v in dev.items()}})
        bar.set_postfix(loss=f"{total / n:.3f}")
    bar.close()
    return {"task": task, "dev": dev, "history": history, "config": asdict(cfg), "train_examples": n,
            "device": str(device), "seconds": time.perf_counter() - start}
