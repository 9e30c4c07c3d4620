"""LightFormer on a Hugging Face BERT (GLUE): the same spec, plan, SVD transfer and sharing as
for the translation Transformer, with the encoder roles mapped onto BERT's modules.

Roles: ``enc_self_{q,k,v,o}`` = ``attention.self.{query,key,value}`` / ``attention.output.dense``,
``enc_ffn_in/out`` = ``intermediate.dense`` / ``output.dense``, ``src_embed`` = the word embeddings
(decoder and output roles select nothing here). The pooler and classifier stay dense.
"""
from __future__ import annotations

import torch

from lightformer.compress.plan import (
    Group,
    assign_ranks,
    layer_groups,
    plan_to_json,
    planned_from,
)
from lightformer.compress.spec import CompressionSpec
from lightformer.compress.transfer import is_compressed, transfer
from lightformer.errors import LightformerError

BERT_PATHS = {"enc_self_q": "attention.self.query", "enc_self_k": "attention.self.key",
              "enc_self_v": "attention.self.value", "enc_self_o": "attention.output.dense",
              "enc_ffn_in": "intermediate.dense", "enc_ffn_out": "output.dense"}
WORD_EMBEDDINGS = "bert.embeddings.word_embeddings"


def _path(stack: str, layer: int, role: str) -> str:
    return f"bert.encoder.layer.{layer}.{BERT_PATHS[role]}"


def dense_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def bert_plan(model, spec: CompressionSpec) -> list[Group]:
    c = model.config
    d, ffn = c.hidden_size, c.intermediate_size
    shapes = {r: (d, d) for r in ("enc_self_q", "enc_self_k", "enc_self_v", "enc_self_o")}
    shapes |= {"enc_ffn_in": (ffn, d), "enc_ffn_out": (d, ffn)}
    groups = layer_groups(spec, {"encoder": c.num_hidden_layers}, shapes, path=_path)
    if "src_embed" in spec.roles:
        groups.append(Group(name="src_embed", kind="embedding", side="none", roles=["src_embed"],
                            members=[WORD_EMBEDDINGS], out_features=c.vocab_size, in_features=d, bias=False))
    if not groups:
        raise LightformerError(f"roles {spec.roles} select no matrix of a BERT encoder; use body, attention, ffn, "
                               f"enc_* roles or src_embed")
    return assign_ranks(groups, spec, dense_params(model))


def compress_bert(model, spec: CompressionSpec | dict | None = None, **options):
    """A new compressed BERT from ``model`` (left untouched); SVD transfer or the random-init
    model of the same shapes (a freshly initialised BERT, seeded by ``spec.seed``)."""
    from transformers import AutoModelForSequenceClassification

    spec = CompressionSpec.from_any(spec, **options)
    if is_compressed(model):
        raise LightformerError("this model is already compressed; compress its dense parent instead")
    if spec.init not in ("svd", "random") or spec.rank_alloc != "uniform":
        raise LightformerError(f"init={spec.init!r}, rank_alloc={spec.rank_alloc!r}: data-aware transfer and rank "
                               f"allocation are implemented for the translation Transformer; BERT takes svd or random "
                               f"with uniform ranks")
    groups = bert_plan(model, spec)
    new, report = transfer(model, groups, spec, fresh=lambda: AutoModelForSequenceClassification.from_config(model.config))
    dense = dense_params(model)
    new.compression = {"spec": spec.to_dict(), "groups": plan_to_json(groups), "dense_params": dense,
                       "params": planned_from(dense, groups), "report": report}
    return new
