"""Tables and figures from measurements."""
from __future__ import annotations

from pathlib import Path

from lightformer.errors import LightformerError
from lightformer.validate import arg


def cmd_report_speed(args) -> None:
    from lightformer.report.speed_table import load_speed, speed_figure, write_speed_table

    df = load_speed(args.csvs)
    write_speed_table(df, args.table, args.markdown)
    if args.figure:
        speed_figure(df, args.figure)
    print(f"{args.table}: {len(df)} rows from {len(args.csvs)} file(s)")


def cmd_report_tables(args) -> None:
    """A task's table, or with --summary the ablations, paper comparison and figures (lightformer.report)."""
    if args.summary:
        from lightformer.report.summary import write_summary

        write_summary(args.tasks, args.tables, args.curves, args.paper_size_speed or [], args.out, args.figures)
        print(f"{args.out}: ablations and paper comparison for {', '.join(args.tasks)}; {args.figures}: figures")
        return
    from lightformer.report.tables import paper_view, task_rows, write_table

    if len(args.tasks) != 1:
        raise LightformerError("a task table is built for one task at a time (--tasks NAME)")
    task, out = args.tasks[0], Path(args.out)
    df = task_rows(task, args.evals, args.params, args.reports, args.speed, args.config_sha256, args.manifest,
                   args.prepared_meta, args.curves or ())
    write_table(df, out / f"{task}.csv", out / f"{task}.md", view=paper_view, page=True)
    print(f"{out}: table for {task} from {len(args.evals)} evaluations")


def cmd_report_ablation_transfer(args) -> None:
    from lightformer.report.figures import ablation_transfer_figure
    from lightformer.report.tables import ablation_transfer_rows, write_table

    df = ablation_transfer_rows(args.transfer, args.finetuned, args.reports, args.baselines, args.config_sha256)
    write_table(df, args.table, args.markdown)
    if args.figure:
        ablation_transfer_figure(df, args.figure)
    print(f"{args.table}: {len(df)} transfer variants")


def cmd_report_glue(args) -> None:
    from lightformer.report.tables import glue_rows, write_table

    df = glue_rows(args.metrics, args.speed, args.config_sha256)
    write_table(df, args.table, args.markdown)
    print(f"{args.table}: {len(df)} models")


def cmd_report_lightweight(args) -> None:
    """Ours beside published light-weight Transformers of the benchmark (lightformer.report.published)."""
    import pandas as pd

    from lightformer.report.published import lightweight_figure, lightweight_table, lightweight_view
    from lightformer.report.tables import write_table
    from lightformer.validate import distinct_outputs

    distinct_outputs([args.table], [args.out, args.markdown, args.figure])
    table = lightweight_table(pd.read_csv(args.table), args.task, args.dataset)
    write_table(table, Path(args.out), Path(args.markdown) if args.markdown else None, view=lightweight_view)
    if args.figure:
        lightweight_figure(table, Path(args.figure))
    print(f"{args.out}: {int((table['kind'] != 'published').sum())} of ours, {int((table['kind'] == 'published').sum())} "
          f"published")


def cmd_report_convergence(args) -> None:
    """Updates and training FLOPs to the baseline's final validation loss + margin (lightformer.report.convergence)."""
    from lightformer.report.convergence import convergence_figure, convergence_rows, convergence_view, run_identity
    from lightformer.report.tables import read_records, write_table
    from lightformer.validate import distinct_outputs

    distinct_outputs([*args.curves, *args.records], [args.out, args.markdown, args.figure])
    curves: dict[str, list[Path]] = {}
    for p in map(Path, args.curves):
        curves.setdefault(run_identity(p)["model"], []).append(p)
    df = convergence_rows(curves, read_records(args.records), args.margin)
    if df.empty:
        raise LightformerError("no baseline curve with validation losses among --curves")
    write_table(df, Path(args.out), Path(args.markdown) if args.markdown else None, view=convergence_view)
    if args.figure:
        convergence_figure(curves, Path(args.figure))
    print(f"{args.out}: {len(df)} models against validation loss {df['target_valid_loss'].iloc[0]:.3f}")


def register(sub) -> None:
    s = sub.add_parser("report", help="tables and figures from measurements")
    rep = s.add_subparsers(dest="what", required=True)
    r = rep.add_parser("speed", help="concatenate speed CSVs into one table (+ Markdown, + figure)")
    r.add_argument("csvs", nargs="+")
    r.add_argument("--table", required=True, help="output CSV")
    r.add_argument("--markdown", help="output Markdown table")
    r.add_argument("--figure", help="output PNG (a PDF is written beside it)")
    r.set_defaults(func=cmd_report_speed)
    r = rep.add_parser("tables", help="a task table, or (--summary) ablations, paper comparison and figures, "
                                      "from the files named (never a glob of results/)")
    r.add_argument("--tasks", nargs="+", required=True)
    r.add_argument("--evals", nargs="*", default=[], help="task table: generate --record JSONs (hyps.txt.json)")
    r.add_argument("--params", nargs="*", default=[], help="task table: params --json --record counts")
    r.add_argument("--reports", nargs="*", default=[],
                   help="task table: records of what each model is (compress report.json, control.json)")
    r.add_argument("--speed", nargs="*", default=[], help="task table: speed CSVs of the task")
    r.add_argument("--tables", nargs="*", default=[], help="--summary: the task tables, one per task")
    r.add_argument("--curves", nargs="*", default=[], help="curve.csv files of train --record runs: a task table's "
                   "best validation losses and sweep choice; --summary: the learning curves")
    r.add_argument("--paper-size-speed", nargs="*", default=[],
                   help="--summary: speed CSVs of `lightformer speed --paper-size TASK` (a speed row per task)")
    r.add_argument("--config-sha256", help="hash of the resolved workflow config, recorded in each row")
    r.add_argument("--manifest", help="the task's raw-data manifest.json; its sha256 is recorded in each row")
    r.add_argument("--prepared-meta", help="the task's prepared meta.json: split sizes and drift in each row")
    r.add_argument("--out", default="results/tables")
    r.add_argument("--figures", default="results/figures")
    r.add_argument("--summary", action="store_true",
                   help="instead of the task tables: ablations, paper comparison and figures")
    r.set_defaults(func=cmd_report_tables)
    r = rep.add_parser("ablation-transfer", help="initialisers x rank allocation: quality after transfer and after "
                                                 "fine-tuning, held-out output error, gaps to the baseline")
    r.add_argument("--transfer", nargs="+", required=True, help="generate JSONs of compressed, not fine-tuned models")
    r.add_argument("--finetuned", nargs="+", required=True, help="generate JSONs of the fine-tuned models")
    r.add_argument("--reports", nargs="+", required=True, help="compress report.json files")
    r.add_argument("--baselines", nargs="*", default=[], help="generate JSONs of the baselines")
    r.add_argument("--table", required=True)
    r.add_argument("--markdown")
    r.add_argument("--figure", help="PNG (a PDF is written beside it)")
    r.add_argument("--config-sha256", help="hash of the resolved workflow config, recorded in each row")
    r.set_defaults(func=cmd_report_ablation_transfer)
    r = rep.add_parser("lightweight", help="a task table beside published light-weight Transformers (with sources)")
    r.add_argument("--table", required=True, help="the task table CSV")
    r.add_argument("--task", required=True)
    r.add_argument("--dataset", required=True, help="which benchmark's published rows: iwslt14, wmt14, ...")
    r.add_argument("--out", required=True, help="output CSV")
    r.add_argument("--markdown")
    r.add_argument("--figure", help="PNG (a PDF is written beside it)")
    r.set_defaults(func=cmd_report_lightweight)
    r = rep.add_parser("convergence", help="updates and training FLOPs to the baseline's final validation loss")
    r.add_argument("--curves", nargs="+", required=True, help="curve.csv files of `lightformer train --record` runs")
    r.add_argument("--records", nargs="*", default=[], help="compress reports and control records (init labels)")
    r.add_argument("--margin", type=arg("nonnegative"), default=0.1, help="above the baseline's final validation loss")
    r.add_argument("--out", required=True, help="output CSV")
    r.add_argument("--markdown")
    r.add_argument("--figure", help="PNG (a PDF is written beside it)")
    r.set_defaults(func=cmd_report_convergence)
    r = rep.add_parser("glue", help="the GLUE table from glue train --record metrics.json files")
    r.add_argument("--metrics", nargs="+", required=True)
    r.add_argument("--speed", nargs="*", default=[], help="encoder speed CSVs (glue speed)")
    r.add_argument("--table", required=True, help="output CSV")
    r.add_argument("--markdown", required=True, help="output Markdown")
    r.add_argument("--config-sha256", help="hash of the resolved workflow config, recorded in each row")
    r.set_defaults(func=cmd_report_glue)
