"""The cross-task summary: ablation tables, the comparison with the paper's claims, and the
figures, from the task tables, the fine-tuning curves and the paper-size speed rows named."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from lightformer.errors import LightformerError
from lightformer.report.convergence import run_identity
from lightformer.report.figures import learning_curves, metric_vs_params, sharing_heatmap
from lightformer.report.tables import ablations, claims_view, paper_comparison, write_table


def curve_label(path: str | Path) -> str:
    """'<model> seed<n>', from the identity the curve's rows carry."""
    who = run_identity(Path(path))
    return f"{who['model']} seed{who.get('seed', '?')}"


def write_summary(tasks: list[str], tables: list[str], curves: list[str], paper_size_speed: list[str],
                  out: str | Path, figures: str | Path) -> None:
    if len(tables) != len(tasks):
        raise LightformerError("--summary needs one --tables CSV per task, in --tasks order")
    out, figures = Path(out), Path(figures)
    by_task = {t: pd.read_csv(p) for t, p in zip(tasks, tables)}
    everything = pd.concat(by_task.values(), ignore_index=True)
    for name, df in ablations(everything).items():
        write_table(df, out / f"ablation_{name}.csv", out / f"ablation_{name}.md", page=True)
    speed = {}
    for path in paper_size_speed:
        df = pd.read_csv(path)
        speed[str(df["task"].iloc[0])] = df
    write_table(paper_comparison(by_task, speed), out / "paper_comparison.csv", out / "paper_comparison.md",
                view=claims_view, page=True)
    metric_vs_params(everything, figures / "metric_vs_params.png")
    sharing_heatmap(everything, figures / "sharing_heatmap.png")
    learning_curves({curve_label(p): pd.read_csv(p) for p in curves}, figures / "learning_curves.png")
