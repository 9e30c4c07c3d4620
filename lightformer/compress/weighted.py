"""Data-aware truncated SVD of a factor group: the factors that minimise the error of what the
layer *outputs* on calibration inputs, not ‖W − AB‖_F (sources in docs/method.md, "Data-aware
transfer").

For a linear use y = W x with input Gram G = Σ x xᵀ = S Sᵀ (S lower-triangular, Cholesky),
‖(W − AB) X‖_F = ‖(W − AB) S‖_F, so the best rank-r AB is the truncated SVD of W S mapped back:
A = U √Σ, B = √Σ Vᵀ S⁻¹ (SVD-LLM). ASVD is the same with a diagonal S = diag(mean|x|^α).
Row weights d (FWSVD's Fisher information per output row; token frequencies for an embedding
lookup, whose input is a one-hot) minimise ‖D (W − AB)‖_F: the same problem on Wᵀ.

Sharing sides, with member inputs S_i:
* 'in' (one B for all): SVD of [W_1; …; W_k] S with S Sᵀ = Σ G_i (the stack of the inputs);
* 'out' (one A for all): SVD of [W_1 S_1 … W_k S_k]; exact, each B_i = √Σ V_iᵀ S_i⁻¹;
* 'both'/'none' (one matrix for all): W* = (Σ W_i G_i)(Σ G_i)⁻¹, then SVD of W* S; exact.
With every S_i = I these are the plain stacked / mean SVDs of transfer.group_svd. The rank-r
products found this way are then re-factored by a plain SVD of the same layout, so Σ is split as
``sigma_split`` says and no factor carries S⁻¹'s large entries into float32.
"""
from __future__ import annotations

import torch

from lightformer.errors import LightformerError

EPS_TRIES = 6  # the ridge grows x10 per failed Cholesky, this many times


def ridge(G: torch.Tensor, eps: float) -> float:
    """λ = eps · the mean diagonal (eps alone for an all-zero G). A 1-D G is a diagonal Gram."""
    diag = G if G.dim() == 1 else G.diagonal()
    scale = float(diag.mean()) if diag.numel() else 0.0
    return eps * (scale if scale > 0 else 1.0)


def cholesky(G: torch.Tensor, eps: float, where: str) -> torch.Tensor:
    """S with S Sᵀ = G: lower-triangular, or for a diagonal Gram (1-D) the vector √G, so the
    V×V matrix of a vocabulary-sized weighting is never formed. Grams arrive with their ridge
    already added (see ``_matrix``); one still not positive definite gets a growing ridge,
    λ = eps · mean diagonal x10 per try, before it is refused."""
    lam = 0.0
    for _ in range(EPS_TRIES + 1):
        if G.dim() == 1:
            if bool((G + lam > 0).all()):
                return (G + lam).sqrt()
        else:
            S, info = torch.linalg.cholesky_ex(G + lam * torch.eye(G.shape[0], dtype=G.dtype))
            if int(info) == 0:
                return S
        lam = ridge(G, eps) if lam == 0.0 else lam * 10
    raise LightformerError(f"{where}: the calibration Gram matrix stays singular after regularisation up to "
                           f"λ={lam:.3g}; raise whiten_eps or use more calib_batches")


def _times(M: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    """M S, for a triangular or a diagonal (1-D) S."""
    return M * S if S.dim() == 1 else M @ S


def _right_solve(X: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    """X S⁻¹, for a lower-triangular or a diagonal (1-D) S."""
    return X / S if S.dim() == 1 else torch.linalg.solve_triangular(S, X, upper=False, left=False)


def split_sigma(U, S, Vh, how: str):
    """W ≈ U diag(S) Vh -> (A, B) with A @ B equal for every split; only the scale moves."""
    if how == "balanced":  # √Σ to both (SVD-LLM, ASVD)
        root = S.sqrt()
        return U * root, root[:, None] * Vh
    if how == "left":
        return U * S, Vh
    if how == "right":
        return U, S[:, None] * Vh
    raise LightformerError(f"sigma_split={how!r} is invalid; allowed: balanced, left, right")


def _matrix(W: list[torch.Tensor], side: str, grams: list[torch.Tensor] | None, eps: float, where: str):
    """(the matrix the SVD sees, how to map its right factor back to B's). A Gram is n×n, or a
    vector for a diagonal one."""
    n = W[0].shape[1]
    if grams is not None:  # one ridge for the group, added to every member's Gram, so full rank stays exact
        grams = [G.to(torch.float64) for G in grams]
        lam = ridge(sum(grams) / len(grams), eps)
        grams = [G + lam if G.dim() == 1 else G + lam * torch.eye(n, dtype=torch.float64) for G in grams]
    if side == "in":
        M = torch.cat(W, dim=0)
        if grams is None:
            return M, lambda V: [V]
        S = cholesky(sum(grams), eps, where)
        return _times(M, S), lambda V: [_right_solve(V, S)]
    if side == "out":
        if grams is None:
            return torch.cat(W, dim=1), lambda V: list(V.split(n, dim=1))
        Ss = [cholesky(G, eps, f"{where} (member {i})") for i, G in enumerate(grams)]
        M = torch.cat([_times(w, S) for w, S in zip(W, Ss)], dim=1)
        return M, lambda V: [_right_solve(v, S) for v, S in zip(V.split(n, dim=1), Ss)]
    if grams is None:
        return torch.stack(W).mean(0), lambda V: [V]
    G = sum(grams)
    S = cholesky(G, eps, where)
    target = sum(_times(w, g) for w, g in zip(W, grams))  # W* = (Σ W_i G_i) G⁻¹, G = S Sᵀ
    W_star = target / G if G.dim() == 1 else torch.cholesky_solve(target.T, S).T
    return _times(W_star, S), lambda V: [_right_solve(V, S)]


def _transposed(W: list[torch.Tensor], side: str, rows: list[torch.Tensor]):
    """‖D(W − AB)‖ = ‖(Wᵀ − BᵀAᵀ) D‖: output-row weights of W are diagonal input Grams of Wᵀ,
    whose stacking side is the other one."""
    return [w.T for w in W], {"in": "out", "out": "in"}.get(side, side), [r.to(torch.float64) for r in rows]


def group_spectrum(weights, side: str, grams=None, rows=None, eps: float = 1e-6, where: str = "") -> torch.Tensor:
    """Singular values of the matrix the group's SVD sees (plain, or weighted as in
    ``weighted_group_svd``)."""
    W = [w.detach().to(torch.float64) for w in weights]
    if rows is not None:
        W, side, grams = _transposed(W, side, rows)
    M, _ = _matrix(W, side, grams, eps, where)
    return torch.linalg.svdvals(M)


def weighted_group_svd(weights, side: str, rank: int, sigma_split: str, grams=None, rows=None,
                       eps: float = 1e-6, where: str = ""):
    """(As, Bs, singular values) of a group. ``grams``: per-member input Grams (n×n); ``rows``:
    per-member output-row weights w (m,), the loss being Σ_j w_j ‖row j's error‖², solved as the
    transposed problem. At most one of them; neither is the plain SVD."""
    W = [w.detach().to(torch.float64) for w in weights]
    if rows is not None:  # solve for Wᵀ, then transpose the factors back
        Wt, swap, grams = _transposed(W, side, rows)
        flip = {"left": "right", "right": "left"}.get(sigma_split, sigma_split)
        At, Bt, S = weighted_group_svd(Wt, swap, rank, flip, grams=grams, eps=eps, where=where)
        return [b.T for b in Bt], [a.T for a in At], S
    M, back = _matrix(W, side, grams, eps, where)
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    A, V = split_sigma(U[:, :rank], S[:rank], Vh[:rank], sigma_split)
    out_f = W[0].shape[0]
    Bs = back(V)
    As = list(A.split(out_f, dim=0)) if side == "in" else [A]
    if grams is not None:  # B = √Σ Vᵀ S⁻¹ can be badly scaled where the inputs are nearly flat:
        products = [As[i if len(As) > 1 else 0] @ Bs[i if len(Bs) > 1 else 0] for i in range(len(W))]
        As, Bs, _ = weighted_group_svd(products, side, rank, sigma_split)  # same products, Σ split as asked
    return As, Bs, S
