"""Put a plan into a model: swap each group's matrices for low-rank modules that hold the
group's shared factors as *one* Parameter object each (saved, counted, updated once)."""
from __future__ import annotations

import torch
import torch.nn as nn

from lightformer.compress.plan import Group
from lightformer.models.lowrank import FactorizedEmbedding, LowRankLinear

# factors of one group: (list of A, list of B); a shared side has a single entry
Factors = tuple[list[torch.Tensor], list[torch.Tensor]]


def factor_counts(group: Group) -> tuple[int, int]:
    """How many distinct A and B tensors the group holds."""
    k = len(group.members)
    return {"none": (1, 1), "both": (1, 1), "in": (k, 1), "out": (1, k)}[group.side]


def empty_factors(group: Group, like: torch.Tensor) -> Factors:
    """Uninitialised factors of the right shapes, to be filled from a checkpoint."""
    n_a, n_b = factor_counts(group)
    r = group.rank
    return ([like.new_empty(group.out_features, r) for _ in range(n_a)],
            [like.new_empty(r, group.in_features) for _ in range(n_b)])


def replace_module(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Replace ``old`` under every name it has (tied embeddings live under several)."""
    paths = [name for name, m in model.named_modules(remove_duplicate=False) if m is old]
    for path in paths:
        parent, _, attr = path.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, new)


def swap_in_factors(model: nn.Module, groups: list[Group], factors: dict[str, Factors] | None = None) -> nn.Module:
    """Swap the planned matrices for low-rank modules, in place. Biases are kept as they are;
    without ``factors`` the factors are left uninitialised (for loading a checkpoint)."""
    for g in groups:
        olds = [model.get_submodule(path) for path in g.members]
        As, Bs = factors[g.name] if factors is not None else empty_factors(g, olds[0].weight)
        A_params = [nn.Parameter(a.detach().clone(memory_format=torch.contiguous_format)) for a in As]
        B_params = [nn.Parameter(b.detach().clone(memory_format=torch.contiguous_format)) for b in Bs]
        for i, old in enumerate(olds):
            A = A_params[i if len(A_params) > 1 else 0]
            B = B_params[i if len(B_params) > 1 else 0]
            if g.kind == "embedding":
                new = FactorizedEmbedding(A, B, old.padding_idx)
            else:
                new = LowRankLinear(A, B, old.bias)
            replace_module(model, old, new)
    return model
