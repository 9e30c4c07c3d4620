"""SVD-based weight transfer: a trained dense Transformer -> its LightFormer, and the
random-initialised LightFormer of identical shape that the ablation compares against."""
from __future__ import annotations

import copy
import dataclasses
import heapq
import math

import torch
from tqdm.auto import tqdm

from lightformer.compress.calibrate import Calibration, group_statistics, output_errors
from lightformer.compress.swap import Factors, factor_counts, swap_in_factors
from lightformer.compress.plan import (
    Group,
    dense_total,
    make_plan,
    plan_to_json,
    planned_from,
    planned_total,
)
from lightformer.compress.spec import DATA_AWARE_INITS, RANDOM_INITS, CompressionSpec
from lightformer.compress.weighted import group_spectrum, weighted_group_svd
from lightformer.errors import LightformerError
from lightformer.models.lowrank import FactorizedEmbedding, LowRankLinear
from lightformer.models.transformer import Transformer


def group_svd(weights: list[torch.Tensor], side: str, rank: int, sigma_split: str):
    """Factors of a group by one plain truncated SVD in float64.

    'in': stack rows [W_1; ...; W_k] -> shared B, per-member blocks of A.
    'out': stack columns [W_1 ... W_k] -> shared A, per-member blocks of B.
    'both'/'none': SVD of the mean (the best single matrix for all members in Frobenius norm).
    Returns (As, Bs, singular values of the whole stacked matrix).
    """
    return weighted_group_svd(weights, side, rank, sigma_split)


def _member_weight(module) -> torch.Tensor:
    return module.weight  # (out, in) for Linear; (V, d) for Embedding, read as the output layer


STATISTICS = {"svd_whiten": "whiten", "asvd": "asvd", "svd_fisher": "fisher"}  # init -> calibrate kind


def svd_factors(model: Transformer, groups: list[Group], spec: CompressionSpec, cal: Calibration | None = None,
                heldout: Calibration | None = None):
    """Factors for every group (plain SVD, or weighted by calibration statistics for a data-aware
    ``spec.init``), plus a report row per matrix: rank, weight error, energy kept and, with
    ``heldout`` statistics, the error of the layer's output on held-out inputs."""
    factors: dict[str, Factors] = {}
    report = []
    kind = STATISTICS.get(spec.init)
    for g in tqdm(groups, desc=f"{spec.init} transfer", unit="group", disable=None):
        modules = [model.get_submodule(p) for p in g.members]
        weights = [_member_weight(m) for m in modules]
        grams, rows = group_statistics(g, cal, kind, spec.asvd_alpha) if kind else (None, None)
        As, Bs, S = weighted_group_svd(weights, g.side, g.rank, spec.sigma_split, grams, rows, spec.whiten_eps,
                                       where=f"group {g.name}")
        if g.kind == "embedding":  # the pad row is zero in E, so keep it exactly zero in A
            for A in As:
                A[modules[0].padding_idx] = 0.0
        report += _report_rows(g, weights, As, Bs, S, heldout)
        dtype = weights[0].dtype
        factors[g.name] = ([a.to(dtype) for a in As], [b.to(dtype) for b in Bs])
    return factors, report


def _report_rows(g: Group, weights, As, Bs, S, heldout: Calibration | None) -> list[dict]:
    """One row per matrix; ``S`` None (random init) leaves the SVD energy columns empty."""
    energy = S.square() if S is not None else None
    energy_kept = (float(energy[: g.rank].sum() / energy.sum()) if energy.sum() > 0 else 1.0) if S is not None else None
    out_err = output_errors(g, weights, As, Bs, heldout) if heldout is not None else [None] * len(weights)
    rows = []
    for i, (path, W) in enumerate(zip(g.members, weights)):
        A = As[i if len(As) > 1 else 0].to(torch.float64)
        B = Bs[i if len(Bs) > 1 else 0].to(torch.float64)
        W64 = W.detach().to(torch.float64)
        err = float(torch.linalg.norm(W64 - A @ B) / torch.linalg.norm(W64)) if W64.any() else 0.0
        rows.append({"group": g.name, "matrix": path, "roles": g.roles, "side": g.side,
                     "shape": [g.out_features, g.in_features], "rank": g.rank, "rel_error": err,
                     "output_rel_error": out_err[i], "group_energy_kept": energy_kept,
                     "group_rel_error": None if S is None else math.sqrt(max(0.0, 1.0 - energy_kept))})
    return rows


def allocate_ranks(model, groups: list[Group], spec: CompressionSpec, dense: int, cal: Calibration | None) -> None:
    """``rank_alloc`` energy | whitened_energy: spend the uniform solve's parameter budget greedily,
    one rank step at a time, on the group whose next singular value adds the most relative energy
    per parameter (plain SVD spectra, or those of the whitened matrices). The total stays within
    one rank step below the budget."""
    budget = planned_from(dense, groups)
    spectra = {}
    for g in groups:
        weights = [_member_weight(model.get_submodule(p)) for p in g.members]
        grams, rows = group_statistics(g, cal, "whiten") if spec.rank_alloc == "whitened_energy" else (None, None)
        s2 = group_spectrum(weights, g.side, grams, rows, spec.whiten_eps, f"group {g.name}").square()
        spectra[g.name] = s2 / s2.sum() if s2.sum() > 0 else s2
    for g in groups:
        g.rank = 1
    total = planned_from(dense, groups)

    def gain(g: Group) -> float:
        step = g.factor_params(g.rank + 1) - g.factor_params(g.rank)
        s2 = spectra[g.name]
        return float(s2[g.rank]) / step if g.rank < len(s2) else 0.0

    heap = [(-gain(g), i) for i, g in enumerate(groups) if g.rank < g.max_rank]
    heapq.heapify(heap)
    while heap:
        _, i = heapq.heappop(heap)
        g = groups[i]
        step = g.factor_params(g.rank + 1) - g.factor_params(g.rank)
        if total + step > budget:
            continue  # this group's next step no longer fits; smaller steps of others still may
        g.rank += 1
        total += step
        if g.rank < g.max_rank:
            heapq.heappush(heap, (-gain(g), i))


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


def transfer(model: torch.nn.Module, groups: list[Group], spec: CompressionSpec, fresh,
             cal: Calibration | None = None, heldout: Calibration | None = None):
    """(compressed copy of ``model``, per-matrix report or None) for a plan: SVD transfer from the
    trained weights (weighted by ``cal`` for a data-aware init), or the same shapes on ``fresh()``
    (a new model, seeded by ``spec.seed``)."""
    report = None
    if spec.init not in RANDOM_INITS:
        new = copy.deepcopy(model)
        factors, report = svd_factors(model, groups, spec, cal, heldout)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            new = fresh()
        new = new.to(next(model.parameters()).device)
        if spec.init == "random_svd":  # SVD transfer from the fresh model: its factor balance, no training
            factors, _ = svd_factors(new, groups, dataclasses.replace(spec, init="svd"))
        else:
            factors = random_factors(new, groups, torch.Generator().manual_seed(spec.seed))
        if heldout is not None:  # the same held-out output error, for the ablation table
            report = []
            for g in groups:
                weights = [_member_weight(model.get_submodule(p)) for p in g.members]
                As, Bs = factors[g.name]
                report += _report_rows(g, weights, As, Bs, None, heldout)
    swap_in_factors(new, groups, factors)
    return new, report


def compress(model: Transformer, spec: CompressionSpec | dict | None = None, calib=None, **options) -> Transformer:
    """A new LightFormer from ``model`` (left untouched).

    ``init='svd'`` transfers the trained weights: factors from truncated SVDs, every other
    parameter (biases, LayerNorms, matrices not factorised) copied; ``svd_whiten``, ``svd_fisher``
    and ``asvd`` weight those SVDs by statistics of ``calib`` (a prepared directory or
    ParallelData: its train split calibrates, its valid split measures the held-out output
    error in the report). ``init='random'`` builds the same shapes from a fresh initialisation
    (seeded by ``spec.seed``). The result carries its plan and per-matrix report in
    ``.compression`` for the checkpoint.
    """
    spec = CompressionSpec.from_any(spec, **options)
    if is_compressed(model):
        raise LightformerError("this model is already compressed; compress its dense parent instead")
    needs_data = spec.init in DATA_AWARE_INITS or spec.rank_alloc == "whitened_energy"
    if needs_data and calib is None:
        raise LightformerError(f"init={spec.init!r} / rank_alloc={spec.rank_alloc!r} need calibration data: pass "
                               f"--calib-data DIR (a prepared directory; its train split is used)")
    groups = make_plan(model.cfg, spec)
    cal = heldout = None
    if calib is not None:
        cal, heldout = calibration(model, groups, spec, calib)
    if spec.rank_alloc != "uniform":
        allocate_ranks(model, groups, spec, dense_total(model.cfg), cal)
    new, report = transfer(model, groups, spec, fresh=lambda: Transformer(model.cfg), cal=cal, heldout=heldout)
    new.compression = {
        "spec": spec.to_dict(),
        "groups": plan_to_json(groups),
        "dense_params": dense_total(model.cfg),
        "params": planned_total(model.cfg, groups),
        "report": report,
    }
    return new


def calibration(model: Transformer, groups: list[Group], spec: CompressionSpec, calib):
    """(statistics of the train split's calibration batches, of held-out valid batches)."""
    from lightformer.compress.calibrate import calibrate, calibration_batches
    from lightformer.data.indexed import ParallelData

    data = calib if isinstance(calib, ParallelData) else ParallelData(calib)
    if (len(data.src_dict), len(data.tgt_dict)) != (model.cfg.src_vocab, model.cfg.tgt_vocab):
        raise LightformerError(f"calibration data {data.root} has dictionaries of {len(data.src_dict)}/"
                               f"{len(data.tgt_dict)} words, the model {model.cfg.src_vocab}/{model.cfg.tgt_vocab}")
    members = sorted({m for g in groups for m in g.members})
    train = calibration_batches(data, "train", spec.calib_batches, spec.calib_max_tokens, spec.seed)
    valid = calibration_batches(data, "valid", spec.calib_batches, spec.calib_max_tokens, spec.seed)
    cal = calibrate(model, train, members, fisher=spec.init == "svd_fisher")
    return cal, calibrate(model, valid, members)


def transfer_report(dense: Transformer, model: Transformer, source: dict, calib: str | None = None) -> dict:
    """What a compression did, for report.json: the source, the resolved spec, parameter counts
    before and after, the sharing groups, per-matrix transfer errors, and with calibration data the
    mean held-out (valid split) output error over matrices."""
    from lightformer.compress.count import count_parameters

    before, after = count_parameters(dense), count_parameters(model)
    report = {"source": source, "spec": model.compression["spec"],
              "params": {"dense": before, "compressed": after, "ratio": before["total"] / after["total"]},
              "groups": model.compression["groups"], "matrices": model.compression["report"]}
    if calib:
        errors = [r["output_rel_error"] for r in report["matrices"] or [] if r.get("output_rel_error") is not None]
        report["calibration"] = {"data": str(calib),
                                 "output_rel_error_mean": sum(errors) / len(errors) if errors else None}
    return report
