"""What to compress and how: the roles a spec may name, and the validated ``CompressionSpec``.

Only the LightFormer abstract is public, so everything here beyond "low-rank factors
initialised by SVD of a trained model, plus parameter sharing" is our reconstruction, chosen
by configuration. Defaults: every matrix factorised (the 3.8x IWSLT claim is out of reach
without the embeddings, docs/reference.md §1), balanced √Σ split, no sharing unless asked.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from lightformer.errors import LightformerError
from lightformer.options import check_fields, check_known, option

# role -> (stack, module path inside a layer); fairseq module names
LAYER_ROLES: dict[str, tuple[str, str]] = {
    "enc_self_q": ("encoder", "self_attn.q_proj"),
    "enc_self_k": ("encoder", "self_attn.k_proj"),
    "enc_self_v": ("encoder", "self_attn.v_proj"),
    "enc_self_o": ("encoder", "self_attn.out_proj"),
    "enc_ffn_in": ("encoder", "fc1"),
    "enc_ffn_out": ("encoder", "fc2"),
    "dec_self_q": ("decoder", "self_attn.q_proj"),
    "dec_self_k": ("decoder", "self_attn.k_proj"),
    "dec_self_v": ("decoder", "self_attn.v_proj"),
    "dec_self_o": ("decoder", "self_attn.out_proj"),
    "dec_cross_q": ("decoder", "encoder_attn.q_proj"),
    "dec_cross_k": ("decoder", "encoder_attn.k_proj"),
    "dec_cross_v": ("decoder", "encoder_attn.v_proj"),
    "dec_cross_o": ("decoder", "encoder_attn.out_proj"),
    "dec_ffn_in": ("decoder", "fc1"),
    "dec_ffn_out": ("decoder", "fc2"),
}
# role -> module path; tied matrices (share_*_embed) are one matrix with several roles
EMBED_ROLES: dict[str, str] = {
    "src_embed": "encoder.embed_tokens",
    "tgt_embed": "decoder.embed_tokens",
    "out_proj": "decoder.output_projection",
}
ROLES = list(LAYER_ROLES) + list(EMBED_ROLES)

# attention blocks whose q/k/v may share one input basis (share_qkv)
QKV_BLOCKS = {
    "enc_self_qkv": ["enc_self_q", "enc_self_k", "enc_self_v"],
    "dec_self_qkv": ["dec_self_q", "dec_self_k", "dec_self_v"],
    "dec_cross_qkv": ["dec_cross_q", "dec_cross_k", "dec_cross_v"],
}


def _with(prefix: str, names) -> list[str]:
    return [r for r in LAYER_ROLES if r.startswith(prefix) and r.rsplit("_", 1)[1] in names]


ALIASES: dict[str, list[str]] = {
    "all": ROLES,
    "body": list(LAYER_ROLES),
    "embeddings": list(EMBED_ROLES),
    "encoder": [r for r in LAYER_ROLES if r.startswith("enc_")],
    "decoder": [r for r in LAYER_ROLES if r.startswith("dec_")],
    "attention": [r for r in LAYER_ROLES if "_ffn_" not in r],
    "ffn": [r for r in LAYER_ROLES if "_ffn_" in r],
    "qkv": [r for r in LAYER_ROLES if r[-2:] in ("_q", "_k", "_v")],
    "enc_self": _with("enc_self", "qkvo"),
    "dec_self": _with("dec_self", "qkvo"),
    "dec_cross": _with("dec_cross", "qkvo"),
    "enc_ffn": ["enc_ffn_in", "enc_ffn_out"],
    "dec_ffn": ["dec_ffn_in", "dec_ffn_out"],
}

SHARE_SIDES = ("in", "out", "both")
SIGMA_SPLITS = ("balanced", "left", "right")
# random_svd: the truncated SVD of a freshly initialised dense model (SVD transfer's factor balance, none
# of the trained weights): the control that separates "SVD-shaped factors" from "trained knowledge"
INITS = ("svd", "random", "random_svd", "svd_whiten", "svd_fisher", "asvd")
RANDOM_INITS = ("random", "random_svd")  # nothing taken from the trained weights
DATA_AWARE_INITS = ("svd_whiten", "svd_fisher", "asvd")  # need calibration batches (compress/calibrate.py)
RANK_ALLOCS = ("uniform", "energy", "whitened_energy")


def expand_roles(names, what: str = "role") -> list[str]:
    """Role names and aliases -> roles, in canonical order."""
    if isinstance(names, str):
        names = [names]
    names = [n for item in names for n in str(item).replace(",", " ").split()]  # "a,b" and ["a", "b"] alike
    chosen = set()
    for n in names:
        if n in ALIASES:
            chosen.update(ALIASES[n])
        elif n in LAYER_ROLES or n in EMBED_ROLES:
            chosen.add(n)
        else:
            raise LightformerError(
                f"unknown {what} {n!r}; allowed: {', '.join(ROLES)} or aliases {', '.join(ALIASES)}")
    return [r for r in ROLES if r in chosen]


def expand_rank_map(rank: dict) -> dict[str, int]:
    """{'all': 64, 'embeddings': 128} -> per-role ranks; a narrower key overrides a wider one."""
    keyed = []
    for key, value in rank.items():
        roles = expand_roles([key], what="role in rank")
        keyed.append((len(roles), key, roles, _positive_int(value, f"rank[{key}]")))
    out: dict[str, int] = {}
    for _, _, roles, value in sorted(keyed, key=lambda t: -t[0]):
        out.update({r: value for r in roles})
    return out


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LightformerError(f"{name}={value!r} is invalid: expected an integer >= 1")
    return value


@dataclass
class CompressionSpec:
    """What ``compress`` does; each field but ``rank`` is also an option of ``lightformer compress``."""
    rank: int | dict | None = None  # one rank, or per role/alias; with ``ratio``, a dict fixes some roles
    ratio: float | None = option(None, check="positive", help="target dense/compressed parameter ratio (> 1), "
                                                              "solved to one uniform rank, e.g. 3.8")
    roles: list[str] | None = option(None, help="roles to factorise (default: all, or the rank's keys)")
    share_layers: int = option(1, check="at_least_1", help="cross-layer group size k over consecutive layers "
                                                           "(1 = no sharing)")
    share_side: str = option("in", choices=SHARE_SIDES, help="the factor a group shares: in = B (input basis), "
                                                             "out = A, both = plain tying")
    share_roles: list[str] = option(default_factory=lambda: ["body"], help="roles that share across layers")
    share_qkv: bool = option(False, help="q/k/v of each attention block share one input basis B")
    sigma_split: str = option("balanced", choices=SIGMA_SPLITS, help="where the singular values go: sqrt to both "
                                                                     "factors, left (A = U S) or right (B = S V^T)")
    init: str = option("svd", choices=INITS, help="svd (weight transfer), random, random_svd (SVD of a fresh dense "
                                                  "model), or data-aware: svd_whiten (SVD-LLM), svd_fisher (FWSVD), "
                                                  "asvd (ASVD); those need --calib-data")
    seed: int = option(0, check="nonnegative", help="for the random inits")
    rank_alloc: str = option("uniform", choices=RANK_ALLOCS, help="with ratio: one rank for all, or greedy by "
                                                                  "singular-value energy per parameter")
    calib_batches: int = option(8, check="at_least_1", help="calibration batches of the training data (data-aware "
                                                            "inits, whitened_energy)")
    calib_max_tokens: int = option(4096, check="at_least_1", help="tokens per calibration batch")
    whiten_eps: float = option(1e-6, check="positive", help="ridge added to a Gram matrix, relative to its mean "
                                                            "diagonal")
    asvd_alpha: float = option(0.5, check="positive", help="ASVD: input channels scaled by mean|x| ** alpha")

    def __post_init__(self):
        if self.rank is None and self.ratio is None:
            raise LightformerError("give a rank (int or per-role dict) or a target ratio")
        if isinstance(self.rank, int) and self.ratio is not None:
            raise LightformerError("give either rank or ratio, not both (a per-role rank dict may fix some roles)")
        if isinstance(self.rank, dict):
            self.rank = dict(self.rank)
            expand_rank_map(self.rank)  # validate now
        elif self.rank is not None:
            _positive_int(self.rank, "rank")
        if self.ratio is not None:
            if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)) or not self.ratio > 1:
                raise LightformerError(f"ratio={self.ratio!r} is out of range: allowed ratio > 1")
            self.ratio = float(self.ratio)
        _positive_int(self.share_layers, "share_layers")
        check_fields(self)  # every option's range rule (seed, calibration sizes, whitening)
        for name, allowed in (("share_side", SHARE_SIDES), ("sigma_split", SIGMA_SPLITS), ("init", INITS),
                              ("rank_alloc", RANK_ALLOCS)):
            if getattr(self, name) not in allowed:
                raise LightformerError(f"{name}={getattr(self, name)!r} is invalid; allowed: {', '.join(allowed)}")
        _positive_int(self.calib_batches, "calib_batches")
        _positive_int(self.calib_max_tokens, "calib_max_tokens")
        if self.rank_alloc != "uniform" and (self.ratio is None or self.rank is not None):
            raise LightformerError(f"rank_alloc={self.rank_alloc!r} spends a ratio's budget: give ratio, without rank")
        if self.roles is None:
            self.roles = list(self.rank) if isinstance(self.rank, dict) and self.ratio is None else ["all"]
        self.roles = expand_roles(self.roles)
        self.share_roles = expand_roles(self.share_roles, what="role in share_roles")
        self.share_qkv = bool(self.share_qkv)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_any(cls, spec=None, **overrides) -> "CompressionSpec":
        """Accept a CompressionSpec, a dict, or keyword arguments; unknown keys are an error."""
        if isinstance(spec, CompressionSpec):
            spec = spec.to_dict()
        d = dict(spec or {}) | overrides
        check_known(cls, d, "compression option")
        return cls(**d)


def load_spec(path: str | None, overrides: dict) -> dict:
    """A spec file's options (YAML mapping), then the options given beside it (None = not given)."""
    from lightformer.validate import load_yaml

    spec = {}
    if path:
        spec = load_yaml(path, "spec file") or {}
        if not isinstance(spec, dict):
            raise LightformerError(f"spec file {path!r} must hold a mapping of compression options")
    return spec | {k: v for k, v in overrides.items() if v is not None}
