"""What the paper (Lv et al., Findings of ACL 2023) and its settings fix, in one place: the
abstract's claims, the two translation settings at their published sizes, and the tasks' sentence
lengths (docs/reference.md §1, §3, §6). Everything else about the method is a configuration
choice of ours."""
from __future__ import annotations

# the abstract's claims: (task, x fewer parameters, speedup) at BLEU similar to the baseline
CLAIMS = [("iwslt14", 3.8, 2.3), ("wmt14", 1.8, 1.5)]

# the two translation settings at their published sizes: fairseq's architecture and vocabularies,
# and the compression the abstract reports for each
SIZES = {
    "iwslt14": dict(arch="transformer_iwslt_de_en", src_vocab=8848, tgt_vocab=6632, ratio=3.8,
                    overrides=dict(share_decoder_input_output_embed=True)),
    "wmt14": dict(arch="transformer_wmt_en_de", src_vocab=32768, tgt_vocab=32768, ratio=1.8,
                  overrides=dict(share_all_embeddings=True)),
}

# BPE'd sentence lengths (tokens incl. </s>): mean, sd and cap of fairseq's prepared train sets
LENGTHS = {"iwslt14": (27.0, 16.0, 175), "wmt14": (31.0, 18.0, 250)}
