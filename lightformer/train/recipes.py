"""Training recipes: one dataclass, named presets as plain functions, YAML files and
``key=value`` overrides (an unknown key or a wrong type is an error, nanoGPT-style)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from lightformer.config import ModelConfig
from lightformer.errors import LightformerError
from lightformer.options import build
from lightformer.validate import check, checks


@dataclass
class TrainConfig:
    data: str = ""  # prepared directory (meta.json, dict.*.txt, {split}.{lang}.bin/idx)
    save_dir: str = ""  # run directory: checkpoints/, curve.csv, config.json
    arch: str = "transformer_tiny"
    model: dict = field(default_factory=dict)  # ModelConfig overrides (dropout, sharing, ...)
    init_from: str | None = None  # fine-tune: start from this model checkpoint (dense or LightFormer)
    # optimisation (fairseq: Adam (0.9, 0.98), decoupled weight decay, inverse_sqrt)
    lr: float = 5e-4
    warmup_updates: int = 4000
    warmup_init_lr: float = 1e-7
    betas: tuple = (0.9, 0.98)
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    label_smoothing: float = 0.1
    clip_norm: float = 0.0  # 0 = no clipping
    max_tokens: int = 4096
    update_freq: int = 1
    update_tokens: int = 0  # >0: update_freq = ceil(update_tokens / (max_tokens x ranks)), so a larger max_tokens
    #                         keeps the recipe's tokens per update (e.g. max_tokens=16384 update_tokens=32768)
    max_updates: int = 0  # 0 = no limit
    max_epochs: int = 0  # 0 = no limit
    seed: int = 1
    # validation, checkpoints, curves
    validate_interval_updates: int = 0  # 0 = at each epoch end only
    save_interval_updates: int = 0  # 0 = at each epoch end only
    keep_last: int = 5  # update checkpoints to keep (the newest K), besides last and best
    best_metric: str = "bleu"  # 'bleu' (higher is better) or 'loss'
    eval_bleu: bool = True
    eval_beam: int = 1
    eval_max_sentences: int = 500
    eval_remove_bpe: str | None = "@@ "
    # hardware
    device: str = "auto"  # auto = cuda when available
    bf16: bool = True  # autocast on GPU; CPU always trains in fp32
    compile: bool = False
    fused_loss: str = "auto"  # on: the loss is fused with the output layer and chunked, so the (N, V) logits are
    #                           never held; off: dense logits; auto = on for GPU (docs/reference.md §8)
    pad_to_multiple: int = 0  # batch widths rounded up to this; 0 = 8 on GPU (tensor cores), 1 on CPU
    threads: int = 0  # CPU threads, 0 = torch default
    log_interval_s: float = 60.0  # without a terminal (Snakemake, SLURM logs): a plain progress line this often

    def __post_init__(self):
        self.betas = tuple(self.betas)
        checks(self, {"max_tokens": "at_least_1", "update_freq": "at_least_1", "eval_beam": "at_least_1",
                      "eval_max_sentences": "at_least_1", "lr": "positive", "warmup_init_lr": "nonnegative",
                      "adam_eps": "positive", "weight_decay": "nonnegative", "label_smoothing": "probability",
                      "clip_norm": "nonnegative", "warmup_updates": "nonnegative", "max_updates": "nonnegative",
                      "max_epochs": "nonnegative", "seed": "nonnegative", "keep_last": "nonnegative",
                      "validate_interval_updates": "nonnegative", "save_interval_updates": "nonnegative",
                      "threads": "nonnegative", "log_interval_s": "positive",
                      "pad_to_multiple": "nonnegative", "update_tokens": "nonnegative"})
        if len(self.betas) != 2:
            raise LightformerError(f"betas={list(self.betas)} is invalid: expected two numbers")
        for i, b in enumerate(self.betas):
            check(f"betas[{i}]", b, "fraction")
        if self.fused_loss not in ("auto", "on", "off"):
            raise LightformerError(f"fused_loss={self.fused_loss!r} is invalid; allowed: auto, on, off")
        if self.best_metric not in ("bleu", "loss"):
            raise LightformerError(f"best_metric={self.best_metric!r} is invalid; allowed: bleu, loss")
        if self.best_metric == "bleu" and not self.eval_bleu:
            self.best_metric = "loss"

    def effective_update_freq(self, ranks: int = 1) -> int:
        """Batches per rank per update: update_freq, or as many as update_tokens needs."""
        if self.update_tokens:
            return -(-self.update_tokens // (self.max_tokens * ranks))
        return self.update_freq

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


# --- recipes (docs/reference.md §4) ----------------------------------------------------------------

def iwslt_de_en() -> dict:
    """fairseq examples/translation, transformer_iwslt_de_en."""
    return dict(arch="transformer_iwslt_de_en", model={"dropout": 0.3, "share_decoder_input_output_embed": True},
                lr=5e-4, warmup_updates=4000, weight_decay=1e-4, label_smoothing=0.1, max_tokens=4096,
                max_updates=50_000, eval_beam=5)


def wmt_en_de_base() -> dict:
    """Transformer base on WMT'14 En-De; lr 7e-4 with a large effective batch (update_freq)."""
    return dict(arch="transformer_wmt_en_de", model={"dropout": 0.1, "share_all_embeddings": True},
                lr=7e-4, warmup_updates=4000, label_smoothing=0.1, max_tokens=4096, update_freq=8,
                max_updates=100_000, eval_beam=4,
                save_interval_updates=1000)  # ours, not fairseq's: a killed job loses at most ~1000 updates


def cnndm_base() -> dict:
    """Transformer base on CNN/DailyMail from scratch (our reconstruction: the abstract gives no
    recipe): shared embeddings, the WMT base optimiser settings, loss as the selection metric."""
    return dict(arch="transformer_wmt_en_de", model={"dropout": 0.1, "attention_dropout": 0.1,
                                                     "share_all_embeddings": True},
                lr=7e-4, warmup_updates=4000, label_smoothing=0.1, max_tokens=4096, update_freq=8, clip_norm=0.1,
                max_updates=50_000, eval_bleu=False, best_metric="loss", save_interval_updates=1000)


def finetune() -> dict:
    """After SVD transfer (our reconstruction): a short warmup to a smaller peak lr, fewer updates."""
    return dict(lr=2e-4, warmup_updates=500, max_updates=10_000, label_smoothing=0.1)


def synthetic() -> dict:
    """The built-in copy task on transformer_tiny: > 90 BLEU on CPU in under a minute."""
    return dict(arch="transformer_tiny", model={"dropout": 0.0}, lr=3e-3, warmup_updates=100,
                label_smoothing=0.1, max_tokens=1024, max_updates=600, validate_interval_updates=200,
                save_interval_updates=200, eval_remove_bpe=None, eval_max_sentences=200)


RECIPES = {"iwslt_de_en": iwslt_de_en, "wmt_en_de_base": wmt_en_de_base, "cnndm_base": cnndm_base, "finetune": finetune,
           "synthetic": synthetic}


def load_train_config(recipe: str | None = None, config_file: str | None = None,
                      overrides: list[str] = ()) -> TrainConfig:
    """recipe preset, then the YAML file, then key=value overrides (later wins; ``model.KEY=V``
    sets one model option), through the one config loader (lightformer.options)."""
    if recipe and recipe not in RECIPES:
        raise LightformerError(f"unknown recipe {recipe!r}; allowed: {', '.join(RECIPES)}")
    return build(TrainConfig, RECIPES[recipe]() if recipe else {}, config_file, overrides, what="config key",
                 nested={"model": ModelConfig})
