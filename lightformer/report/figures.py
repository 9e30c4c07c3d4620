"""The paper-style figures (PNG + PDF): metric vs parameters, learning curves SVD vs random
initialisation, and the sharing-level heat map. The speed figure lives in report/speed.py."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    return plt, sns


def _save(fig, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    fig.savefig(path.with_suffix(".pdf"))


def metric_vs_params(df: pd.DataFrame, path: Path) -> None:
    plt, sns = _plt()
    tasks = sorted(df["task"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        sub = df[df["task"] == task].copy()
        sub["init"] = sub.get("init", pd.Series(index=sub.index, dtype=object)).fillna("baseline")
        sns.scatterplot(data=sub, x="params_total", y="metric_mean", hue="init",
                        style=sub["share_layers"].fillna(0).astype(int).astype(str) if "share_layers" in sub else None,
                        s=80, ax=ax)
        ax.errorbar(sub["params_total"], sub["metric_mean"], yerr=sub["metric_sd"], fmt="none", ecolor="grey", lw=0.8)
        ax.set(xscale="log", title=task, xlabel="parameters", ylabel=sub["metric_label"].iloc[0])
        ax.legend(fontsize=7, title="init / share_layers", title_fontsize=7)
    _save(fig, path)
    plt.close(fig)


def learning_curves(curves: dict[str, pd.DataFrame], path: Path, metric: str = "valid_bleu") -> None:
    """One line per run (label -> curve.csv rows); the paper's claim is that SVD transfer
    converges faster than random initialisation of the same shapes."""
    plt, sns = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, df in sorted(curves.items()):
        if metric in df and df[metric].notna().any():
            style = "-" if "svd" in label else "--"
            ax.plot(df["update"], df[metric], style, marker="o", ms=3, label=label)
    ax.set(xlabel="fine-tuning updates", ylabel=metric.replace("_", " "), title="learning curves: SVD vs random init")
    ax.legend(fontsize=7)
    _save(fig, path)
    plt.close(fig)


def sharing_heatmap(df: pd.DataFrame, path: Path) -> None:
    plt, sns = _plt()
    sub = df[(df["model"] != "baseline") & (df.get("init") == "svd")]
    tasks = sorted(sub["task"].unique()) or ["(none)"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        t = sub[sub["task"] == task]
        if t.empty:
            continue
        grid = t.pivot_table(index="ratio_target", columns="share_layers", values="metric_mean", aggfunc="mean")
        sns.heatmap(grid, annot=True, fmt=".1f", cmap="viridis", ax=ax)
        ax.set(title=f"{task}: metric by ratio x sharing", xlabel="share_layers (k)", ylabel="target ratio")
    _save(fig, path)
    plt.close(fig)
