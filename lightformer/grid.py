"""The experiment grid: which compressed variants a task trains, what each is called, and the
wildcard that matches the names. The one home for these facts: the workflow (common.smk), its
parse-time checks, plan-cost and the reports all read them here (docs/where-to-change.md).

A grid block of the config (``tasks.<t>.grid`` or ``.ablation``) is a product of axes; each point
is a :class:`Variant`. The initialisers and rank allocations are the compression library's own
lists; ``budget`` says which recipe trains the variant after compression: the fine-tuning recipe
(``finetune``) or the baseline's own recipe and update budget (``full``: random init trained as
long as the model it is compared with). ``random_full`` in an ``init`` list is shorthand for init
``random`` with budget ``full``.
"""
from __future__ import annotations

import dataclasses
import itertools

from lightformer.compress.spec import INITS, RANK_ALLOCS
from lightformer.errors import LightformerError

BUDGETS = ("finetune", "full")
SHORTHANDS = {"random_full": ("random", "full")}  # config init -> (init, budget)
GRID_INITS = INITS + tuple(SHORTHANDS)  # what a config's init list may hold
GRID_AXES = ("ratio", "share_layers", "init", "rank_alloc", "budget", "lr_scale")  # a product; share_qkv one switch


def _lr_suffix(scale: float) -> str:
    """``_lr0.5`` for a learning rate scaled from the recipe's; nothing at the recipe's own."""
    return "" if scale == 1 else f"_lr{scale:g}"


@dataclasses.dataclass(frozen=True)
class Variant:
    ratio: float
    share_layers: int
    init: str
    rank_alloc: str = "uniform"
    budget: str = "finetune"
    share_qkv: bool = False
    lr_scale: float = 1.0  # times the recipe's learning rate (a sweep tunes the controls like the treatment)

    @property
    def name(self) -> str:
        """``r{ratio}_k{k}_{init}[_full][_{rank_alloc}][_lr{scale}]``: the directory name of its outputs."""
        return self.family + _lr_suffix(self.lr_scale)

    @property
    def family(self) -> str:
        """The name without the learning-rate suffix: the points of one sweep share it."""
        alloc = "" if self.rank_alloc == "uniform" else f"_{self.rank_alloc}"
        return f"r{self.ratio}_k{self.share_layers}_{self.label}{alloc}"

    @property
    def label(self) -> str:
        """The initialiser as a table shows it: ``random_full`` for random init on the full budget."""
        return self.init + ("_full" if self.budget == "full" else "")

    def record(self) -> dict:
        """The identity a variant's outputs carry, so reports group by fields, never by a path."""
        return dataclasses.asdict(self) | {"variant": self.name, "family": self.family, "init_label": self.label}


def expand(block: dict) -> dict[str, Variant]:
    """Variant name -> Variant for every point of a grid block, in the config's order."""
    out = {}
    axes = (block["ratio"], block["share_layers"], block["init"], block.get("rank_alloc", ["uniform"]),
            block.get("budget", ["finetune"]), block.get("lr_scale", [1.0]))
    for ratio, k, init, alloc, budget, lr_scale in itertools.product(*axes):
        init, budget = SHORTHANDS.get(init, (init, budget))
        v = Variant(ratio, k, init, alloc, budget, bool(block.get("share_qkv", False)), float(lr_scale))
        out[v.name] = v
    return out


BLOCKS = ("grid", "ablation", "sweep")  # the config blocks that are grids of variants


def task_variants(task: dict) -> dict[str, Variant]:
    """A task's main grid, its transfer ablation and its tuned random controls (``sweep``) together
    (a point of one block may repeat another's)."""
    out = {}
    for block in BLOCKS:
        if task.get(block):
            out |= expand(task[block])
    return out


def ablation_names(task: dict) -> list[str]:
    return list(expand(task["ablation"])) if task.get("ablation") else []


LR = r"(_lr[0-9.e+-]+)?"


def wildcard_pattern() -> str:
    """The regular expression a variant name matches (Snakemake's ``{variant}`` wildcard)."""
    labels = sorted({*INITS, *(i + "_full" for i in INITS)}, key=len, reverse=True)
    allocs = sorted((a for a in RANK_ALLOCS if a != "uniform"), key=len, reverse=True)
    return rf"r[0-9.]+_k[0-9]+_({'|'.join(labels)})(_({'|'.join(allocs)}))?{LR}"


# --- light-weight controls (lightformer/controls.py): trained from scratch like the baseline -------

@dataclasses.dataclass(frozen=True)
class Control:
    control: str  # dense_small | share_all | share_sandwich | share_cycle_rev
    ratio: float | None = None  # dense_small: the LightFormer size it matches
    lr_scale: float = 1.0

    @property
    def family(self) -> str:
        return self.control + (f"_r{self.ratio}" if self.ratio is not None else "")

    @property
    def name(self) -> str:
        return self.family + _lr_suffix(self.lr_scale)

    def record(self) -> dict:
        """What the control's outputs carry (the measured ``ratio`` is the control's own record's)."""
        return {"control": self.control, "ratio_target": self.ratio, "lr_scale": self.lr_scale, "variant": self.name,
                "family": self.family, "init_label": "scratch", "budget": "full"}


def expand_controls(block: dict | None, ratios: list[float]) -> dict[str, Control]:
    """Control name -> Control: each model of ``block['models']``, dense_small once per ratio (the
    block's own, else the grid's), each at every ``lr_scale``: one list for all models, or a list per
    model (a sweep where it matters, e.g. dense_small, without paying it for every sharing pattern)."""
    out = {}
    if not block:
        return out
    scales = block.get("lr_scale", [1.0])
    if isinstance(scales, dict) and set(scales) - set(block["models"]):
        raise LightformerError(f"controls.lr_scale names {', '.join(sorted(set(scales) - set(block['models'])))}, "
                               f"which controls.models does not train; models: {', '.join(block['models'])}")
    for model in block["models"]:
        for lr_scale in scales.get(model, [1.0]) if isinstance(scales, dict) else scales:
            for ratio in (block.get("ratio") or ratios) if model == "dense_small" else [None]:
                c = Control(model, ratio, float(lr_scale))
                out[c.name] = c
    return out


def task_controls(task: dict) -> dict[str, Control]:
    return expand_controls(task.get("controls"), task.get("grid", {}).get("ratio", []))


def control_pattern() -> str:
    from lightformer.controls import CONTROLS

    return rf"({'|'.join(c for c in CONTROLS if c != 'dense_small')}|dense_small_r[0-9.]+){LR}"
