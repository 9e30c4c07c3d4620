"""The convergence claim, measured: how many updates (and training FLOPs) each model needs to reach
the baseline's final validation loss + a margin, from the runs' own curve.csv files.

Training FLOPs per target token come from the curve itself (``train_tflops / train_tokens_per_s``,
model FLOPs counted from the module shapes, docs/reference.md §8), so a model that reuses a shared
layer pays for every application. A model fine-tuned from SVD transfer also needed its trained
parent: ``parent_updates`` says how many updates that was, so the table never hides it.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

MARGIN = 0.1


def read_curve(path: Path) -> pd.DataFrame:
    """A run's curve.csv, the rows with a validation loss; a cut or foreign file is one line naming it."""
    from lightformer.errors import LightformerError

    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as e:  # missing, empty, or not a CSV (pandas' parser errors are ValueErrors)
        raise LightformerError(f"curve {path}: cannot be read ({type(e).__name__}: {str(e)[:100]})") from None
    if "valid_loss" not in df or "update" not in df:
        raise LightformerError(f"curve {path}: no update/valid_loss columns; not a `lightformer train` curve.csv")
    return df[df["valid_loss"].notna()].reset_index(drop=True)


def run_identity(path: Path) -> dict:
    """The (task, model, seed) a curve's rows carry (``lightformer train --record``): reports group
    curves by it, never by the directories they sit in."""
    from lightformer.errors import LightformerError

    read_curve(path)  # a cut or foreign file is refused as such first
    df = pd.read_csv(path, dtype=str, usecols=lambda c: c in ("task", "model", "seed"))
    if "model" not in df or not len(df) or pd.isna(df["model"].iloc[0]):
        raise LightformerError(f"curve {path}: its rows do not say which run they are (task, model); it was trained "
                               f"without `lightformer train --record` (rerun the workflow: the run resumes, done, and "
                               f"records them)")
    return {k: df[k].iloc[0] for k in df}


def flops_per_token(df: pd.DataFrame) -> float | None:
    """Training FLOPs per target token of a run (median over its windows), or None if not logged."""
    if not {"train_tflops", "train_tokens_per_s"} <= set(df.columns):
        return None
    ratio = (df["train_tflops"] * 1e12 / df["train_tokens_per_s"]).dropna()
    return float(ratio.median()) if len(ratio) else None


def first_reaching(df: pd.DataFrame, target: float) -> pd.Series | None:
    hit = df[df["valid_loss"] <= target]
    return hit.iloc[0] if len(hit) else None


def convergence_rows(curves: dict[str, list[Path]], records: dict[str, dict], margin: float = MARGIN) -> pd.DataFrame:
    """One row per model: final and best validation loss (mean over seeds) and the updates, target
    tokens and training FLOPs to reach the baseline's final validation loss + ``margin`` (every seed
    must reach it; the mean over seeds is given, else "not reached")."""
    runs = {m: [read_curve(Path(p)) for p in paths] for m, paths in curves.items()}
    base = [df["valid_loss"].iloc[-1] for df in runs.get("baseline", []) if len(df)]
    if not base:
        return pd.DataFrame()
    target = sum(base) / len(base) + margin
    parent = max(int(df["update"].iloc[-1]) for df in runs["baseline"] if len(df))
    rows = []
    for model, dfs in runs.items():
        dfs = [df for df in dfs if len(df)]
        if not dfs:
            continue
        rec = records.get(model, {})
        init = rec.get("init_label") or rec.get("record", {}).get("init_label") or ("dense" if model == "baseline" else "")
        hits = [first_reaching(df, target) for df in dfs]
        fpt = [flops_per_token(df) for df in dfs]
        reached = all(h is not None for h in hits)
        row = {"model": model, "init": init, "target_valid_loss": target,
               "final_valid_loss": sum(df["valid_loss"].iloc[-1] for df in dfs) / len(dfs),
               "best_valid_loss": sum(df["valid_loss"].min() for df in dfs) / len(dfs),
               "updates_run": int(max(df["update"].iloc[-1] for df in dfs)),
               "updates_to_target": sum(int(h["update"]) for h in hits) / len(hits) if reached else "not reached",
               "tokens_to_target": sum(int(h["tokens_seen"]) for h in hits) / len(hits) if reached else "",
               "parent_updates": parent if init.startswith("svd") or init in ("asvd",) else 0}
        if reached and all(f is not None for f in fpt):
            row["train_flops_to_target"] = sum(int(h["tokens_seen"]) * f for h, f in zip(hits, fpt)) / len(hits)
        rows.append(row)
    order = {"baseline": 0}
    return pd.DataFrame(rows).sort_values("model", key=lambda c: c.map(lambda m: (order.get(m, 1), m))).reset_index(
        drop=True)


def convergence_view(df: pd.DataFrame) -> pd.DataFrame:
    """The convergence table as a reader takes it (the CSV keeps tokens and every loss): updates
    after the parent's (SVD transfer starts from the trained baseline) and to the target loss."""
    target = df["target_valid_loss"].iloc[0]
    out = pd.DataFrame({"model": df["model"], "init": df["init"].replace("", "-")})
    out["best valid loss"] = df["best_valid_loss"]
    out["updates run"] = [f"{u:,}" + (f" after the parent's {p:,}" if p else "")
                          for u, p in zip(df["updates_run"], df["parent_updates"])]
    out[f"updates to valid loss {target:.2f}"] = df["updates_to_target"].map(
        lambda v: v if isinstance(v, str) else f"{v:,.0f}")
    if "train_flops_to_target" in df:
        out["training FLOPs to it"] = df["train_flops_to_target"].map(lambda v: "" if pd.isna(v) else f"{v:.2g}")
    return out


def convergence_figure(curves: dict[str, list[Path]], path: Path) -> None:
    """Validation loss against updates and against training FLOPs, one line per model (first seed)."""
    from lightformer.report.figures import pyplot, save_figure

    plt, _ = pyplot()
    fig, (by_update, by_flops) = plt.subplots(1, 2, figsize=(13, 4.5))
    read = {m: read_curve(Path(paths[0])) for m, paths in sorted(curves.items())}  # each file read once
    read = {m: df for m, df in read.items() if len(df)}
    colours = plt.get_cmap("tab20" if len(read) > 10 else "tab10")  # a grid with sweeps has ~20 lines
    for i, (model, df) in enumerate(read.items()):
        style = "-" if model == "baseline" else "--" if "scratch" in model or model.startswith(("dense_small", "share_")) else ":"
        kw = {"color": colours(i % colours.N), "label": model, "lw": 2 if model == "baseline" else 1.3}
        by_update.plot(df["update"], df["valid_loss"], style, **kw)
        fpt = flops_per_token(df)
        if fpt:
            by_flops.plot(df["tokens_seen"] * fpt, df["valid_loss"], style, **kw)
    by_update.set(xlabel="updates", ylabel="validation loss")
    by_flops.set(xlabel="training FLOPs (own run)", ylabel="validation loss", xscale="log")
    by_flops.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the plots, not over the lines
    fig.tight_layout()
    save_figure(fig, path)
