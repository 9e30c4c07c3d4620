"""SVD-based weight transfer: a trained dense Transformer -> its LightFormer, and the
random-initialised LightFormer of identical shape that the ablation compares against."""
from __future__ import annotations

import copy
import math

import torch
from tqdm.auto import tqdm

from lightformer.compress.factorize import Factors, factor_counts, factorize
from lightformer.compress.plan import Group, dense_total, make_plan, plan_to_json, planned_total
from lightformer.compress.spec import CompressionSpec
from lightformer.errors import LightformerError
from lightformer.models.lowrank import FactorizedEmbedding, LowRankLinear
from lightformer.models.transformer import Transformer


def split_sigma(U, S, Vh, how: str):
    """W ≈ U diag(S) Vh -> (A, B) with A @ B equal for every split; only the scale moves."""
    if how == "balanced":  # √Σ to both (SVD-LLM, ASVD; REFERENCE.md §2)
        root = S.sqrt()
        return U * root, root[:, None] * Vh
    if how == "left":
        return U * S, Vh
    if how == "right":
        return U, S[:, None] * Vh
    raise LightformerError(f"sigma_split={how!r} is invalid; allowed: balanced, left, right")


def group_svd(weights: list[torch.Tensor], side: str, rank: int, sigma_split: str):
    """Factors of a group by one truncated SVD in float64.

    'in': stack rows [W_1; ...; W_k] -> shared B, per-member blocks of A.
    'out': stack columns [W_1 ... W_k] -> shared A, per-member blocks of B.
    'both'/'none': SVD of the mean (the best single matrix for all members in Frobenius norm).
    Returns (As, Bs, singular values of the whole stacked matrix).
    """
    W = [w.detach().to(torch.float64) for w in weights]
    if side == "in":
        M = torch.cat(W, dim=0)
    elif side == "out":
        M = torch.cat(W, dim=1)
    else:
        M = torch.stack(W).mean(0)
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    A, B = split_sigma(U[:, :rank], S[:rank], Vh[:rank], sigma_split)
    out_f, in_f = W[0].shape
    if side == "in":
        return list(A.split(out_f, dim=0)), [B], S
    if side == "out":
        return [A], list(B.split(in_f, dim=1)), S
    return [A], [B], S


def _member_weight(module) -> torch.Tensor:
    return module.weight  # (out, in) for Linear; (V, d) for Embedding, read as the output layer


def svd_factors(model: Transformer, groups: list[Group], sigma_split: str):
    """Factors for every group, plus a report row per matrix (rank, error, energy kept)."""
    factors: dict[str, Factors] = {}
    report = []
    for g in tqdm(groups, desc="SVD transfer", unit="group", disable=None):
        modules = [model.get_submodule(p) for p in g.members]
        weights = [_member_weight(m) for m in modules]
        As, Bs, S = group_svd(weights, g.side, g.rank, sigma_split)
        if g.kind == "embedding":  # the pad row is zero in E, so keep it exactly zero in A
            for A in As:
                A[modules[0].padding_idx] = 0.0
        energy = S.square()
        energy_kept = float(energy[: g.rank].sum() / energy.sum()) if energy.sum() > 0 else 1.0
        for i, (path, W) in enumerate(zip(g.members, weights)):
            A = As[i if len(As) > 1 else 0]
            B = Bs[i if len(Bs) > 1 else 0]
            W64 = W.detach().to(torch.float64)
            err = float(torch.linalg.norm(W64 - A @ B) / torch.linalg.norm(W64)) if W64.any() else 0.0
            report.append({"group": g.name, "matrix": path, "roles": g.roles, "side": g.side,
                           "shape": [g.out_features, g.in_features], "rank": g.rank,
                           "rel_error": err, "group_energy_kept": energy_kept,
                           "group_rel_error": math.sqrt(max(0.0, 1.0 - energy_kept))})
        dtype = weights[0].dtype
        factors[g.name] = ([a.to(dtype) for a in As], [b.to(dtype) for b in Bs])
    return factors, report


def random_factors(model: Transformer, groups: list[Group], generator: torch.Generator) -> dict[str, Factors]:
    """Gaussian factors whose product has the dense init's variance: A ~ N(0, 1/r) and
    B ~ N(0, σ²) give Var[(AB)_ij] = σ²; σ² is xavier's 2/(in+out), or 1/d for embeddings."""
    factors = {}
    for g in groups:
        like = model.get_submodule(g.members[0]).weight
        var = 1.0 / g.in_features if g.kind == "embedding" else 2.0 / (g.in_features + g.out_features)
        n_a, n_b = factor_counts(g)
        As = [torch.randn(g.out_features, g.rank, generator=generator) / math.sqrt(g.rank) for _ in range(n_a)]
        Bs = [torch.randn(g.rank, g.in_features, generator=generator) * math.sqrt(var) for _ in range(n_b)]
        if g.kind == "embedding":
            for A in As:
                A[model.get_submodule(g.members[0]).padding_idx] = 0.0
        factors[g.name] = ([a.to(like) for a in As], [b.to(like) for b in Bs])
    return factors


def is_compressed(model: torch.nn.Module) -> bool:
    return any(isinstance(m, (LowRankLinear, FactorizedEmbedding)) for m in model.modules())


def transfer(model: torch.nn.Module, groups: list[Group], spec: CompressionSpec, fresh):
    """(compressed copy of ``model``, per-matrix report or None) for a plan: SVD transfer from the
    trained weights, or the same shapes on ``fresh()`` (a new model, seeded by ``spec.seed``)."""
    report = None
    if spec.init == "svd":
        new = copy.deepcopy(model)
        factors, report = svd_factors(model, groups, spec.sigma_split)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            new = fresh()
        new = new.to(next(model.parameters()).device)
        factors = random_factors(new, groups, torch.Generator().manual_seed(spec.seed))
    factorize(new, groups, factors)
    return new, report


def compress(model: Transformer, spec: CompressionSpec | dict | None = None, **options) -> Transformer:
    """A new LightFormer from ``model`` (left untouched).

    ``init='svd'`` transfers the trained weights: factors from truncated SVDs, every other
    parameter (biases, LayerNorms, matrices not factorised) copied. ``init='random'`` builds the
    same shapes from a fresh initialisation (seeded by ``spec.seed``). The result carries its
    plan and per-matrix report in ``.compression`` for the checkpoint.
    """
    spec = CompressionSpec.from_any(spec, **options)
    if is_compressed(model):
        raise LightformerError("this model is already compressed; compress its dense parent instead")
    groups = make_plan(model.cfg, spec)
    new, report = transfer(model, groups, spec, fresh=lambda: Transformer(model.cfg))
    new.compression = {
        "spec": spec.to_dict(),
        "groups": plan_to_json(groups),
        "dense_params": dense_total(model.cfg),
        "params": planned_total(model.cfg, groups),
        "report": report,
    }
    return new
