"""Published results of light-weight Transformers, as facts with their sources (docs/reference.md §9).

Each row keeps the paper's own parameter convention (with or without the embedding tables) and
BLEU flavour; a table shows them beside ours, never averaged with ours. Only numbers read in a
primary source (the paper or its authors' repository) are here.
"""
from __future__ import annotations

IWSLT = "IWSLT'14 De-En"
WMT = "WMT'14 En-De"
DATASET_BENCHMARK = {"iwslt14": IWSLT, "wmt14": WMT, "wmt14_hub": WMT}

HAT = "Wang et al., HAT, ACL 2020, Table 2 (github.com/mit-han-lab/hardware-aware-transformers)"
HAT_README = "HAT repository README, IWSLT'14 GPU models (github.com/mit-han-lab/hardware-aware-transformers)"
LITE = "Wu et al., Lite Transformer, ICLR 2020, repository figure figures/et.png (github.com/mit-han-lab/lite-transformer)"
DELIGHT = "Mehta et al., DeLighT, ICLR 2021, readme_files/nmt/wmt14_en2de.md (github.com/sacmehta/delight)"
TAKASE = "Takase & Kiyono, Lessons on Parameter Sharing across Layers in Transformers, 2021, result_table.png " \
         "(github.com/takase/share_layer_params)"

TOK_LOWER = "tokenized BLEU, lowercased (fairseq IWSLT recipe)"
TOK_SPLIT = "tokenized BLEU, case-sensitive, compound split"


def _rows(benchmark, model, params, convention, bleus, flavour, source, note=""):
    return [{"benchmark": benchmark, "model": m, "params_m": p, "params_convention": convention, "bleu": b,
             "bleu_flavour": flavour, "source": source, "note": note} for m, p, b in zip(model, params, bleus)]


PUBLISHED = [
    *_rows(IWSLT, ["Transformer (transformer_iwslt_de_en)", "HAT SubTransformer"], [32.0, 23.0],
           "without embeddings", [34.5, 34.5], TOK_LOWER, HAT, "HAT: SacreBLEU 33.6 for its SubTransformer"),
    *_rows(IWSLT, [f"HAT (GPU, {p}M)" for p in ("16.8", "20.0", "23.1", "27.3", "31.5")],
           [16.8, 20.0, 23.1, 27.3, 31.5], "without embeddings", [33.4, 34.2, 34.5, 34.7, 34.8], TOK_LOWER,
           HAT_README),
    *_rows(WMT, ["Transformer big", "HAT (44M)", "HAT (48M)", "Evolved Transformer"], [176.0, 44.0, 48.0, 47.0],
           "without embeddings", [28.4, 28.2, 28.4, 28.2], TOK_SPLIT, HAT, "HAT: SacreBLEU 27.6 / 27.8"),
    *_rows(WMT, ["Transformer (mobile)", "Evolved Transformer (mobile)", "Lite Transformer (mobile)"],
           [2.8, 3.0, 2.9], "without embeddings", [21.3, 22.0, 22.5], TOK_SPLIT, LITE),
    *_rows(WMT, [f"DeLighT d={d}" for d in (128, 256, 384, 512, 640)], [8.1, 13.8, 23.3, 36.8, 54.0],
           "with embeddings", [22.7, 25.5, 26.7, 27.6, 28.0], "compound split BLEU", DELIGHT,
           "its own WMT'14 preprocessing, 40K BPE"),
    *_rows(WMT, ["Takase & Kiyono: vanilla (18 layers)", "Takase & Kiyono: Universal", "Takase & Kiyono: Cycle",
                 "Takase & Kiyono: Cycle (rev)"], [61.0, 63.0, 61.0, 61.0], "with embeddings",
           [27.13, 27.65, 27.91, 28.09], "tokenized BLEU (flavour not stated)", TAKASE, "newstest2014"),
]


def published_for(dataset: str) -> list[dict]:
    """The published rows of the benchmark a dataset is (none for DDTP, own corpora or CNN/DM)."""
    bench = DATASET_BENCHMARK.get(dataset)
    return [r for r in PUBLISHED if r["benchmark"] == bench]


def ours(df, task: str) -> list[dict]:
    """Our rows of a task table for the comparison: the baseline, SVD-transferred LightFormers and
    the controls at their selected learning rates, each with both parameter counts."""
    import pandas as pd

    keep = df[(df["model"] == "baseline") | df.get("init", pd.Series("", index=df.index)).astype(str).str.startswith(
        ("svd", "asvd", "scratch"))]
    if "lr_selected" in keep:
        keep = keep[keep["lr_selected"].astype(str) != "False"]
    rows = []
    for _, r in keep.iterrows():
        total, body = float(r["params_total"]), float(r["params_body"])
        kind = "dense baseline" if r["model"] == "baseline" else "control" if str(r.get("init")) == "scratch" \
            else "LightFormer"
        rows.append({"benchmark": task, "model": r["model"], "kind": kind, "params_m": total / 1e6,
                     "params_convention": "with embeddings", "params_without_embeddings_m": body / 1e6,
                     "params_with_embeddings_m": total / 1e6, "bleu": r["metric_mean"],
                     "bleu_sd": r.get("metric_sd", 0.0), "seeds": r.get("seeds"), "bleu_flavour": r["metric_label"],
                     "source": "ours (this run)", "note": ""})
    return rows


def lightweight_table(df, task: str, dataset: str):
    """Ours beside the published light-weight Transformers of the same benchmark; ``source`` says
    which is which, and each row keeps its own parameter convention and BLEU flavour."""
    import pandas as pd

    published = [r | {"kind": "published", "bleu_sd": None, "seeds": None,
                      "params_without_embeddings_m": r["params_m"] if r["params_convention"] == "without embeddings"
                      else None,
                      "params_with_embeddings_m": r["params_m"] if r["params_convention"] == "with embeddings" else None}
                 for r in published_for(dataset)]
    return pd.DataFrame(ours(df, task) + published)


def lightweight_view(table):
    """The comparison as a paper prints it; each row keeps its own parameter convention, BLEU
    flavour and source (the CSV has both counts where we know them)."""
    import pandas as pd

    def bleu(b, s, n):
        return f"{b:.2f} ± {s:.2f}" if pd.notna(n) and n > 1 and pd.notna(s) else f"{b:.2f}"

    return pd.DataFrame({"model": table["model"], "kind": table["kind"],
                         "params (M)": table["params_m"].map(lambda m: f"{m:.2f}"),
                         "counted": table["params_convention"],
                         "BLEU": [bleu(b, s, n) for b, s, n in zip(table["bleu"], table["bleu_sd"], table["seeds"])],
                         "BLEU flavour": table["bleu_flavour"], "source": table["source"]})


def lightweight_figure(table, path) -> None:
    """BLEU against parameters without embeddings (the published convention where both exist): ours
    filled with their Pareto front, published hollow, never joined with ours."""
    from lightformer.report.figures import pyplot, save_figure

    plt, _ = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    mine = table[table["kind"] != "published"].sort_values("params_without_embeddings_m")
    for kind, marker in (("dense baseline", "s"), ("LightFormer", "o"), ("control", "^")):
        part = mine[mine["kind"] == kind]
        ax.scatter(part["params_without_embeddings_m"], part["bleu"], marker=marker, label=f"ours: {kind}")
    front, best = [], float("-inf")
    for _, r in mine.iterrows():
        if r["bleu"] > best:
            front.append(r)
            best = r["bleu"]
    if front:
        ax.plot([r["params_without_embeddings_m"] for r in front], [r["bleu"] for r in front], "k-", lw=0.8,
                label="ours: Pareto front")
    pub = table[(table["kind"] == "published") & table["params_without_embeddings_m"].notna()]
    if len(pub):
        ax.scatter(pub["params_without_embeddings_m"], pub["bleu"], facecolors="none", edgecolors="grey",
                   label="published (own data and BLEU flavour)")
    ax.set(xlabel="parameters without embeddings (M)", ylabel="BLEU")
    ax.legend(fontsize=7)
    save_figure(fig, path)
