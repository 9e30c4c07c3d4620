"""The paper-style figures (PNG + PDF): metric vs parameters, learning curves SVD vs random
initialisation, and the sharing-level heat map. The speed figure lives in report/speed_table.py."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def pyplot():
    """matplotlib (headless) and seaborn, imported when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    return plt, sns


def save_figure(fig, path: Path) -> None:
    """PNG at 150 dpi and a PDF beside it, the folder made if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    fig.savefig(path.with_suffix(".pdf"))


def metric_vs_params(df: pd.DataFrame, path: Path) -> None:
    plt, sns = pyplot()
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
    save_figure(fig, path)
    plt.close(fig)


def learning_curves(curves: dict[str, pd.DataFrame], path: Path, metric: str = "valid_bleu") -> None:
    """One line per run (label -> curve.csv rows); the paper's claim is that SVD transfer
    converges faster than random initialisation of the same shapes."""
    plt, sns = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, df in sorted(curves.items()):
        if metric in df and df[metric].notna().any():
            style = "-" if "svd" in label else "--"
            ax.plot(df["update"], df[metric], style, marker="o", ms=3, label=label)
    ax.set(xlabel="fine-tuning updates", ylabel=metric.replace("_", " "), title="learning curves: SVD vs random init")
    ax.legend(fontsize=7)
    save_figure(fig, path)
    plt.close(fig)


def sharing_heatmap(df: pd.DataFrame, path: Path) -> None:
    plt, sns = pyplot()
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
    save_figure(fig, path)
    plt.close(fig)


def ablation_transfer_figure(df: pd.DataFrame, path: Path) -> None:
    """Quality right after transfer and after fine-tuning, per initialiser (bars: rank allocation),
    one row of panels per task and ratio; error bars: sd over seeds."""
    plt, sns = pyplot()
    cases = df[["task", "ratio_target", "share_layers"]].drop_duplicates().values.tolist()
    fig, axes = plt.subplots(len(cases), 2, figsize=(11, 3.6 * len(cases)), squeeze=False)
    for (task, ratio, k), row_axes in zip(cases, axes):
        sub = df[(df["task"] == task) & (df["ratio_target"] == ratio) & (df["share_layers"] == k)]
        inits, allocs = list(dict.fromkeys(sub["init"])), list(dict.fromkeys(sub["rank_alloc"]))
        sd = {(i, a): v for i, a, v in zip(sub["init"], sub["rank_alloc"], sub.index)}
        for ax, stage in zip(row_axes, ("transfer", "finetuned")):
            sns.barplot(data=sub, x="init", y=f"{stage}_mean", hue="rank_alloc", order=inits, hue_order=allocs,
                        ax=ax, errorbar=None)
            for container, alloc in zip(ax.containers, allocs):  # one container per rank allocation
                for bar, init in zip(container, inits):
                    if (init, alloc) in sd:
                        ax.errorbar(bar.get_x() + bar.get_width() / 2, bar.get_height(), fmt="none", ecolor="k",
                                    lw=0.8, yerr=sub.loc[sd[(init, alloc)], f"{stage}_sd"])
            if "baseline_mean" in sub and sub["baseline_mean"].notna().any():
                ax.axhline(sub["baseline_mean"].iloc[0], color="grey", ls="--", lw=1, label="baseline")
            ax.set(title=f"{task}, ratio {ratio:g}, k {k}: {'after transfer' if stage == 'transfer' else 'after fine-tuning'}",
                   xlabel="initialiser", ylabel=sub["metric_label"].iloc[0] if len(sub) else "")
            ax.legend(fontsize=7, title="rank allocation", title_fontsize=7)
    save_figure(fig, path)
    plt.close(fig)
