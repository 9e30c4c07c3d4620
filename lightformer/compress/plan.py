"""From a spec and a model config to a plan: the sharing groups, each with its rank.

A *group* is a set of same-shaped matrices that are factorised together:

* side ``none`` — one matrix, its own A (out, r) and B (r, in);
* side ``in``   — members share B; SVD of the matrices stacked along rows (the unshared, output
  dimension), so B is the best common input basis in Frobenius norm (Eckart–Young on the stack);
* side ``out``  — members share A; stack along columns;
* side ``both`` — plain tying: one A and one B, from the SVD of the members' mean.

The plan is plain JSON, stored in checkpoints so a compressed model can be rebuilt exactly.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from lightformer.compress.spec import (
    EMBED_ROLES,
    LAYER_ROLES,
    QKV_BLOCKS,
    CompressionSpec,
    expand_rank_map,
)
from lightformer.config import ModelConfig
from lightformer.errors import LightformerError


@dataclass
class Group:
    name: str
    kind: str  # 'linear' or 'embedding'
    side: str  # 'none', 'in', 'out', 'both'
    roles: list[str]
    members: list[str]  # module paths, one per distinct matrix
    out_features: int
    in_features: int
    bias: bool
    rank: int = 0

    @property
    def max_rank(self) -> int:
        """Rank of the matrix the SVD sees: the stack for in/out sharing, a single one otherwise."""
        k = len(self.members)
        if self.side == "in":
            return min(k * self.out_features, self.in_features)
        if self.side == "out":
            return min(self.out_features, k * self.in_features)
        return min(self.out_features, self.in_features)

    def factor_params(self, r: int) -> int:
        k, m, n = len(self.members), self.out_features, self.in_features
        return {"none": r * (m + n), "both": r * (m + n), "in": r * n + k * m * r, "out": r * m + k * n * r}[self.side]

    def dense_params(self) -> int:
        return len(self.members) * self.out_features * self.in_features


def _layer_shapes(cfg: ModelConfig) -> dict[str, tuple[int, int]]:
    d = cfg.embed_dim
    shapes = {}
    for role, (stack, path) in LAYER_ROLES.items():
        ffn = cfg.encoder_ffn_dim if stack == "encoder" else cfg.decoder_ffn_dim
        shapes[role] = (ffn, d) if path == "fc1" else (d, ffn) if path == "fc2" else (d, d)  # (out, in)
    return shapes


def _embedding_groups(cfg: ModelConfig, roles: set[str]) -> list[Group]:
    """One group per distinct matrix; tied embeddings are one matrix with several roles."""
    d = cfg.embed_dim
    if cfg.share_all_embeddings:
        matrices = [["src_embed", "tgt_embed", "out_proj"]]
    elif cfg.share_decoder_input_output_embed:
        matrices = [["src_embed"], ["tgt_embed", "out_proj"]]
    else:
        matrices = [["src_embed"], ["tgt_embed"], ["out_proj"]]
    groups = []
    for mroles in matrices:
        if not roles.intersection(mroles):
            continue  # a tied matrix is factorised when any of its roles is asked for
        vocab = cfg.src_vocab if mroles[0] == "src_embed" else cfg.tgt_vocab
        kind = "linear" if mroles == ["out_proj"] else "embedding"
        groups.append(Group(name="+".join(mroles), kind=kind, side="none", roles=mroles,
                            members=[EMBED_ROLES[mroles[0]]], out_features=vocab, in_features=d, bias=False))
    return groups


def _transformer_path(stack: str, layer: int, role: str) -> str:
    return f"{stack}.layers.{layer}.{LAYER_ROLES[role][1]}"


def layer_groups(spec: CompressionSpec, n_layers: dict[str, int], shapes: dict[str, tuple[int, int]],
                 path=_transformer_path) -> list[Group]:
    """Groups of the per-layer matrices the spec names, for any model laid out as stacks of
    layers: ``n_layers`` per stack, ``shapes`` (out, in) per role, ``path(stack, layer, role)``."""
    chosen = [r for r in spec.roles if r in LAYER_ROLES and n_layers.get(LAYER_ROLES[r][0], 0)]
    # families: roles factorised together within one layer
    families: list[list[str]] = []
    seen = set()
    for role in chosen:
        if role in seen:
            continue
        family = [role]
        if spec.share_qkv:
            block = next((b for b in QKV_BLOCKS.values() if role in b), None)
            if block:
                family = [r for r in block if r in chosen]
        seen.update(family)
        families.append(family)

    groups = []
    for family in families:
        stack = LAYER_ROLES[family[0]][0]
        n = n_layers[stack]
        cross = spec.share_layers > 1 and all(r in spec.share_roles for r in family)
        k = spec.share_layers if cross else 1
        if n % k:
            divisors = [str(i) for i in range(1, n + 1) if n % i == 0]
            raise LightformerError(
                f"share_layers={k} does not divide the {n} {stack} layers; allowed: {', '.join(divisors)}")
        if len(family) > 1:  # within-layer q/k/v sharing is an input basis
            side = "in"
            if cross and spec.share_side != "in":
                raise LightformerError(
                    f"share_qkv shares the input basis, so cross-layer sharing of {', '.join(family)} "
                    f"needs share_side='in', got {spec.share_side!r}")
        else:
            side = spec.share_side if cross else "none"
        out_f, in_f = shapes[family[0]]
        for start in range(0, n, k):
            layers = range(start, start + k)
            members = [path(stack, i, r) for i in layers for r in family]
            tag = "+".join(family) if len(family) > 1 else family[0]
            name = f"{tag}@{start}" if k == 1 else f"{tag}@{start}-{start + k - 1}"
            groups.append(Group(name=name, kind="linear", side=side if len(members) > 1 else "none",
                                roles=family, members=members, out_features=out_f, in_features=in_f, bias=True))
    return groups


def dense_total(cfg: ModelConfig) -> int:
    """Parameters of the dense model, from the config alone (matches count_parameters)."""
    d, L_e, L_d = cfg.embed_dim, cfg.encoder_layers, cfg.decoder_layers
    attn = 4 * (d * d + d)
    enc = L_e * (attn + 2 * d * cfg.encoder_ffn_dim + cfg.encoder_ffn_dim + d + 2 * 2 * d)
    dec = L_d * (2 * attn + 2 * d * cfg.decoder_ffn_dim + cfg.decoder_ffn_dim + d + 3 * 2 * d)
    final_ln = 2 * (2 * d) if cfg.normalize_before else 0
    emb = cfg.src_vocab * d + (0 if cfg.share_all_embeddings else cfg.tgt_vocab * d)
    out = 0 if cfg.share_decoder_input_output_embed else cfg.tgt_vocab * d
    return enc + dec + final_ln + emb + out


def planned_from(dense: int, groups: list[Group]) -> int:
    """Parameters after factorising ``groups`` of a model with ``dense`` parameters."""
    return dense - sum(g.dense_params() for g in groups) + sum(g.factor_params(g.rank) for g in groups)


def planned_total(cfg: ModelConfig, groups: list[Group]) -> int:
    return planned_from(dense_total(cfg), groups)


def _check_rank(group: Group, r: int) -> None:
    if not 1 <= r <= group.max_rank:
        shape = f"{group.out_features}x{group.in_features}"
        what = (f"a {shape} matrix" if group.side in ("none", "both")
                else f"the SVD of {len(group.members)} stacked {shape} matrices")
        raise LightformerError(f"rank {r} for {group.name} is out of range: allowed 1..{group.max_rank} ({what})")


def make_plan(cfg: ModelConfig, spec: CompressionSpec) -> list[Group]:
    """Groups with ranks; ``spec.ratio`` is solved to the largest uniform rank that reaches it."""
    n_layers = {"encoder": cfg.encoder_layers, "decoder": cfg.decoder_layers}
    groups = layer_groups(spec, n_layers, _layer_shapes(cfg)) + _embedding_groups(cfg, set(spec.roles))
    return assign_ranks(groups, spec, dense_total(cfg))


def assign_ranks(groups: list[Group], spec: CompressionSpec, dense: int) -> list[Group]:
    """Each group's rank from the spec: fixed, uniform, or solved for ``spec.ratio`` against the
    model's ``dense`` parameter count."""
    if not groups:
        raise LightformerError(f"roles {spec.roles} select no matrix of this model")
    fixed = expand_rank_map(spec.rank) if isinstance(spec.rank, dict) else {}
    free = []
    for g in groups:
        ranks = {fixed[r] for r in g.roles if r in fixed}
        if len(ranks) > 1:
            raise LightformerError(f"roles {', '.join(g.roles)} share one factor, so they need one rank; got {sorted(ranks)}")
        if ranks:
            g.rank = ranks.pop()
        elif isinstance(spec.rank, int):
            g.rank = spec.rank
        elif spec.ratio is not None:
            free.append(g)
            continue
        else:
            raise LightformerError(f"no rank given for {', '.join(g.roles)}; add it to the rank dict or drop it from roles")
        _check_rank(g, g.rank)
    if free:
        _solve_ratio(dense, groups, free, spec.ratio)
    return groups


def _solve_ratio(dense: int, groups: list[Group], free: list[Group], target: float) -> None:
    """Largest uniform r (capped per group at its max rank) with dense/compressed >= target.

    Total parameters grow monotonically with r, so bisection finds it; the result lies within
    one rank step of the target: ratio(r) >= target > ratio(r + 1).
    """
    r_max = max(g.max_rank for g in free)

    def ratio_at(r: int) -> float:
        for g in free:
            g.rank = min(r, g.max_rank)
        return dense / planned_from(dense, groups)

    best = ratio_at(1)
    if best < target:
        raise LightformerError(
            f"ratio {target:g} cannot be reached by factorising {', '.join(sorted({r for g in free for r in g.roles}))}: "
            f"rank 1 everywhere gives {best:.3f}x; allowed 1 < ratio <= {best:.3f} (or factorise more roles)")
    lo, hi = 1, r_max  # invariant: ratio_at(lo) >= target
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ratio_at(mid) >= target:
            lo = mid
        else:
            hi = mid - 1
    ratio_at(lo)


def plan_to_json(groups: list[Group]) -> list[dict]:
    return [asdict(g) for g in groups]


def plan_from_json(rows: list[dict]) -> list[Group]:
    return [Group(**row) for row in rows]
