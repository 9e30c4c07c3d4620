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

BUDGETS = ("finetune", "full")
SHORTHANDS = {"random_full": ("random", "full")}  # config init -> (init, budget)
GRID_INITS = INITS + tuple(SHORTHANDS)  # what a config's init list may hold
GRID_AXES = ("ratio", "share_layers", "init", "rank_alloc", "budget")  # a product; share_qkv is one switch


@dataclasses.dataclass(frozen=True)
class Variant:
    ratio: float
    share_layers: int
    init: str
    rank_alloc: str = "uniform"
    budget: str = "finetune"
    share_qkv: bool = False

    @property
    def name(self) -> str:
        """``r{ratio}_k{k}_{init}[_full][_{rank_alloc}]``: the directory name of its outputs."""
        alloc = "" if self.rank_alloc == "uniform" else f"_{self.rank_alloc}"
        return f"r{self.ratio}_k{self.share_layers}_{self.label}{alloc}"

    @property
    def label(self) -> str:
        """The initialiser as a table shows it: ``random_full`` for random init on the full budget."""
        return self.init + ("_full" if self.budget == "full" else "")

    def record(self) -> dict:
        """The identity a variant's outputs carry, so reports group by fields, never by a path."""
        return dataclasses.asdict(self) | {"variant": self.name, "init_label": self.label}


def expand(block: dict) -> dict[str, Variant]:
    """Variant name -> Variant for every point of a grid block, in the config's order."""
    out = {}
    axes = (block["ratio"], block["share_layers"], block["init"], block.get("rank_alloc", ["uniform"]),
            block.get("budget", ["finetune"]))
    for ratio, k, init, alloc, budget in itertools.product(*axes):
        init, budget = SHORTHANDS.get(init, (init, budget))
        v = Variant(ratio, k, init, alloc, budget, bool(block.get("share_qkv", False)))
        out[v.name] = v
    return out


def task_variants(task: dict) -> dict[str, Variant]:
    """A task's main grid and its transfer ablation together (an ablation point may repeat a grid point)."""
    out = {}
    for block in ("grid", "ablation"):
        if task.get(block):
            out |= expand(task[block])
    return out


def ablation_names(task: dict) -> list[str]:
    return list(expand(task["ablation"])) if task.get("ablation") else []


def wildcard_pattern() -> str:
    """The regular expression a variant name matches (Snakemake's ``{variant}`` wildcard)."""
    labels = sorted({*INITS, *(i + "_full" for i in INITS)}, key=len, reverse=True)
    allocs = sorted((a for a in RANK_ALLOCS if a != "uniform"), key=len, reverse=True)
    return rf"r[0-9.]+_k[0-9]+_({'|'.join(labels)})(_({'|'.join(allocs)}))?"
