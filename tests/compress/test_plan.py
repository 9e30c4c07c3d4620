"""Spec validation, rank resolution and the ratio solver."""
import pytest

import lightformer as lf
from lightformer.compress.plan import dense_total, make_plan, planned_total
from lightformer.compress.spec import CompressionSpec, expand_rank_map, expand_roles
from lightformer.config import model_config

IWSLT = model_config("transformer_iwslt_de_en", 8848, 6632, share_decoder_input_output_embed=True)
WMT = model_config("transformer_wmt_en_de", 32768, 32768, share_all_embeddings=True)


def test_dense_total_matches_fairseq_counts():
    assert dense_total(IWSLT) == 39_469_056
    assert dense_total(WMT) == 60_915_712


@pytest.mark.parametrize("cfg,target,opts", [
    (IWSLT, 3.8, {}),
    (IWSLT, 3.8, dict(share_layers=2, share_qkv=True)),
    (IWSLT, 2.0, dict(share_layers=3, share_side="out")),
    (WMT, 1.8, {}),
    (WMT, 1.8, dict(share_layers=2)),
    (WMT, 1.5, dict(rank={"embeddings": 256})),
])
def test_ratio_solver_lands_within_one_rank_step(cfg, target, opts):
    spec = CompressionSpec(ratio=target, **opts)
    groups = make_plan(cfg, spec)
    solved = [g for g in groups if not (isinstance(spec.rank, dict) and set(g.roles) & set(expand_rank_map(spec.rank)))]
    r = max(g.rank for g in solved)
    assert dense_total(cfg) / planned_total(cfg, groups) >= target
    for g in solved:  # one step up overshoots
        g.rank = min(r + 1, g.max_rank)
    assert dense_total(cfg) / planned_total(cfg, groups) < target


def test_fixed_ranks_in_a_dict_survive_the_solver():
    groups = make_plan(WMT, CompressionSpec(ratio=1.5, rank={"embeddings": 256}))
    emb = [g for g in groups if g.kind == "embedding"]
    assert len(emb) == 1 and emb[0].rank == 256 and emb[0].roles == ["src_embed", "tgt_embed", "out_proj"]


def test_unreachable_ratio_names_the_reachable_range():
    with pytest.raises(lf.LightformerError, match=r"ratio 5 cannot be reached .* allowed 1 < ratio <= 1\.\d+"):
        make_plan(IWSLT, CompressionSpec(ratio=5, roles="ffn"))


def test_rank_beyond_matrix_is_refused_with_range():
    with pytest.raises(lf.LightformerError, match=r"rank 513 for enc_self_q@0 is out of range: allowed 1..512"):
        make_plan(IWSLT, CompressionSpec(rank=513))


def test_stacked_group_allows_rank_up_to_the_stack():
    groups = make_plan(IWSLT, CompressionSpec(rank={"all": 64, "enc_ffn_out": 1024}, share_layers=2))
    assert next(g for g in groups if g.name == "enc_ffn_out@0-1").rank == 1024


@pytest.mark.parametrize("kw,msg", [
    (dict(rank=8, roles="enc_self_x"), "unknown role 'enc_self_x'"),
    (dict(rank={"bogus": 3}), "unknown role in rank 'bogus'"),
    (dict(rank=8, share_roles="nope"), "unknown role in share_roles 'nope'"),
    (dict(), "give a rank"),
    (dict(rank=8, ratio=2.0), "either rank or ratio"),
    (dict(ratio=0.5), r"ratio=0.5 is out of range: allowed ratio > 1"),
    (dict(rank=0), "rank=0 is invalid"),
    (dict(rank=8, share_layers=0), "share_layers=0"),
    (dict(rank=8, share_side="left"), "share_side='left' is invalid; allowed: in, out, both"),
    (dict(rank=8, sigma_split="half"), "sigma_split"),
    (dict(rank=8, init="zeros"), "init='zeros'"),
    (dict(rank=8, colour="red"), "unknown compression option"),
])
def test_bad_specs_are_one_line_errors(kw, msg):
    with pytest.raises(lf.LightformerError, match=msg):
        CompressionSpec.from_any(kw)


def test_rank_dict_narrower_key_wins_and_defines_roles():
    ranks = expand_rank_map({"all": 64, "embeddings": 128, "src_embed": 32})
    assert ranks["enc_self_q"] == 64 and ranks["out_proj"] == 128 and ranks["src_embed"] == 32
    assert CompressionSpec(rank={"ffn": 16}).roles == expand_roles("ffn")


def test_missing_rank_for_a_role_is_reported():
    with pytest.raises(lf.LightformerError, match="no rank given for"):
        make_plan(IWSLT, CompressionSpec(rank={"ffn": 16}, roles="all"))


def test_qkv_group_needs_one_rank():
    with pytest.raises(lf.LightformerError, match="need one rank"):
        make_plan(IWSLT, CompressionSpec(rank={"all": 16, "enc_self_q": 8}, share_qkv=True))


def test_tied_embedding_is_one_group_with_all_its_roles():
    groups = make_plan(IWSLT, CompressionSpec(rank=64, roles="tgt_embed"))
    assert [(g.name, g.members) for g in groups] == [("tgt_embed+out_proj", ["decoder.embed_tokens"])]
