"""The speed table and the speedup-vs-compression figure, from `lightformer speed` CSVs."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from lightformer.errors import LightformerError
from lightformer.paper import CLAIMS


COLUMNS = ["task", "model", "engine", "compute_type", "device", "device_name", "protocol", "dtype", "threads", "batch", "beam",
           "cuda_graph", "whole_step", "fused_lowrank", "int8", "params", "compression", "speedup", "speedup_p10", "speedup_p90",
           "engine_reference", "speedup_same_engine", "encoder_ms",
           "decoder_ms", "total_ms", "sentences_per_s", "tokens_per_s", "macs_per_tgt_token", "launches_per_step", "launches_unit", "tokens_per_run", "runs", "torch",
           "measured", "checkpoint", "command"]


def load_speed(paths: list[str | Path]) -> pd.DataFrame:
    frames = []
    for p in paths:
        if not Path(p).is_file():
            raise LightformerError(f"speed CSV {str(p)!r} does not exist")
        df = pd.read_csv(p)
        if "speedup" not in df.columns:
            raise LightformerError(f"{str(p)!r} is not a `lightformer speed` CSV (no 'speedup' column)")
        if "task" not in df.columns or df["task"].isna().any():
            raise LightformerError(f"{str(p)!r}: rows without a task (time them with `lightformer speed --task TASK`)")
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    if "engine" not in df.columns:  # CSVs from before CTranslate2 rows existed
        df["engine"] = "lightformer"
    df["engine"] = df["engine"].fillna("lightformer")
    if "whole_step" not in df.columns:  # CSVs from before the whole step could run on the device
        df["whole_step"] = False
    return df[[c for c in COLUMNS if c in df.columns]]


def write_speed_table(df: pd.DataFrame, csv_path: str | Path, markdown_path: str | Path | None = None) -> None:
    Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(csv_path, index=False)
    if markdown_path:
        cols = ["task", "model", "engine", "device_name", "protocol", "dtype", "threads", "batch", "beam", "cuda_graph",
                "whole_step", "fused_lowrank", "params", "compression", "launches_per_step", "speedup", "speedup_p10", "speedup_p90",
                "speedup_same_engine", "total_ms", "tokens_per_s"]
        show = df[[c for c in cols if c in df.columns]].copy()
        show["speedup"] = [f"{s:.2f} ({a:.2f}–{b:.2f})" for s, a, b in
                           zip(show.pop("speedup"), show.pop("speedup_p10"), show.pop("speedup_p90"))]
        if "compute_type" in df.columns:  # CTranslate2 rows: int8_float32 etc. say more than the run's dtype
            show["dtype"] = df["compute_type"].fillna(df["dtype"])
        show["compression"] = show["compression"].map(lambda x: "" if pd.isna(x) else f"{x:.2f}x")
        show["params"] = show["params"].map(lambda x: "" if pd.isna(x) else f"{int(x):,}")
        show["total_ms"] = show["total_ms"].map(lambda x: f"{x:.1f}")
        if "speedup_same_engine" in show.columns:  # against the first model under the row's own engine
            show["speedup_same_engine"] = show["speedup_same_engine"].map(lambda x: "" if pd.isna(x) else f"{x:.2f}")
        if "tokens_per_s" in show.columns:
            show["tokens_per_s"] = show["tokens_per_s"].map(lambda x: f"{x:,.0f}")
        for c in ("fused_lowrank", "launches_per_step"):
            if c in show.columns:
                show[c] = show[c].map(lambda x: "" if pd.isna(x) else str(int(x)) if isinstance(x, float) else str(x))
        show["threads"] = show["threads"].map(lambda t: "" if pd.isna(t) else str(int(t)))
        Path(markdown_path).write_text(markdown_table(show))


def _markdown_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")  # sacreBLEU signatures contain '|'


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-style Markdown table (pandas' to_markdown needs tabulate)."""
    head = "| " + " | ".join(map(_markdown_cell, df.columns)) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join("| " + " | ".join(_markdown_cell(v) for v in row) + " |\n" for row in df.itertuples(index=False))


def speed_figure(df: pd.DataFrame, png_path: str | Path) -> None:
    """Speedup vs parameter reduction from ``load_speed``'s table, one panel per protocol, colour =
    engine/device/dtype/graph; the abstract's two claims marked for reference. Writes PNG and PDF."""
    from lightformer.report.figures import pyplot, save_figure

    plt, sns = pyplot()

    df = df.copy()
    df["setting"] = (df["engine"].map(lambda e: {"ctranslate2": "ct2 ", "lightformer-compiled": "compiled "}.get(e, ""))
                     + df["device"].astype(str) + " " + df.get("compute_type", df["dtype"]).fillna(df["dtype"]).astype(str)
                     + df["cuda_graph"].map(lambda g: " graph" if str(g) == "True" else "")
                     + df["whole_step"].map(lambda w: " whole-step" if str(w) == "True" else "")
                     + df["threads"].map(lambda t: f" {int(t)}thr" if pd.notna(t) and str(t) != "" else ""))
    protocols = sorted(df["protocol"].unique())
    fig, axes = plt.subplots(1, len(protocols), figsize=(5.5 * len(protocols), 4.2), squeeze=False)
    for ax, protocol in zip(axes[0], protocols):
        sub = df[df["protocol"] == protocol]
        sns.scatterplot(data=sub, x="compression", y="speedup", hue="setting", style="task", s=70, ax=ax)
        for task, x, y in CLAIMS:
            ax.scatter([x], [y], marker="*", s=220, color="black", zorder=5)
            ax.annotate(f"paper {task}", (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set(title=f"{protocol}", xlabel="parameter reduction (x fewer)", ylabel="speedup vs baseline (x)")
        ax.legend(fontsize=7)
    save_figure(fig, png_path)
    plt.close(fig)
