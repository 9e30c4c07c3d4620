"""Task tables, ablations and the paper comparison, from exactly the files the workflow declares
and passes (never a glob of ``results/``, so nothing left over from an earlier grid leaks in):

* ``hyps.txt.json`` (lightformer generate --record),
* parameter counts (lightformer params --json --record),
* speed CSVs (lightformer speed --task),
* compress reports (lightformer compress --record) and control records (control init --identity),
* ``curve.csv`` (lightformer train --record).

Each file says which run it is (task, model, seed); the reports group by that, never by where
the file lies (:func:`record_of`, ``report.convergence.run_identity``).
"""
from __future__ import annotations

import html

from pathlib import Path

import pandas as pd

from lightformer.errors import LightformerError
from lightformer.io import file_sha256, read_json
from lightformer.report.convergence import read_curve, run_identity
from lightformer.paper import CLAIMS
from lightformer.report.speed_table import markdown_table


def _read_json(path: Path) -> dict:
    return read_json(path, "result file")


def record_of(path: Path, content: dict) -> dict:
    """The identity a result file carries (written with ``--record``: task, model or variant, seed):
    reports group by it and never read a directory name. A file without one is refused."""
    record = content.get("record") if isinstance(content.get("record"), dict) else content
    if not (record.get("model") or record.get("variant")) or "task" not in record:
        raise LightformerError(f"{path}: does not say which run it is (task, model, seed); it was written without "
                               f"--record (rerun the workflow: the command that wrote it records them)")
    return {"model": record.get("model") or record["variant"], "task": record["task"], "seed": record.get("seed")}


def provenance_columns(runs: list[dict], seeds: list[str], config_sha256: str | None = None,
                       manifest_sha256: str | None = None) -> dict:
    """A row's provenance: the seeds, the code commit(s) and environment recorded by the runs that
    produced it, the resolved config's hash and the data manifest's sha256."""
    from lightformer.provenance import commit_label

    provs = [r.get("provenance") or {} for r in runs]

    def joined(values) -> str:
        return ";".join(sorted({str(v) for v in values if v not in (None, "")}))

    return {"seeds_used": ",".join(sorted(seeds, key=lambda s: int(s) if s.isdigit() else s)),
            "commit": joined(commit_label(p) for p in provs), "torch": joined(p.get("torch") for p in provs),
            "cuda": joined(p.get("cuda") for p in provs), "device": joined(r.get("device") for r in runs),
            "config_sha256": config_sha256 or "", "data_manifest_sha256": manifest_sha256 or ""}


def solved_ranks(report: dict) -> str:
    """The ranks the plan used: one number when uniform, else 'role=rank' per role (a ratio is
    solved to ranks, so the spec alone leaves the column empty)."""
    by_role: dict[str, set[int]] = {}
    for g in report.get("groups") or []:
        for role in g["roles"]:
            by_role.setdefault(role, set()).add(g["rank"])
    if not by_role:
        rank = report["spec"].get("rank")
        return "" if rank is None else str(rank)
    ranks = {r for rs in by_role.values() for r in rs}
    if len(ranks) == 1:
        return str(ranks.pop())
    return " ".join(f"{role}={'/'.join(map(str, sorted(rs)))}" for role, rs in sorted(by_role.items()))


def init_label(report: dict) -> str:
    """The initialiser a row shows: the grid's label recorded by the workflow (``random_full`` for
    random factors trained on the baseline's budget, lightformer/grid.py), else the compress spec's."""
    return report.get("record", {}).get("init_label") or report["spec"]["init"]



def data_columns(prepared_meta: Path | None) -> dict:
    """The data a row was measured on: split sizes, and their drift from the published sizes (or
    why none was checked: the embedded fixtures and custom corpora have no published sizes)."""
    if not prepared_meta or not Path(prepared_meta).is_file():
        return {}
    meta = _read_json(prepared_meta)
    sizes = ", ".join(f"{k} {v:,}" for k, v in (meta.get("sentences") or {}).items())
    if meta.get("custom_corpus"):
        drift = f"custom corpus {meta['custom_corpus'].get('name', meta.get('dataset'))} (no published sizes)"
    elif "expected" not in meta:
        drift = "not checked (no published sizes: embedded or custom data)"
    else:
        off = {k: v for k, v in (meta.get("drift") or {}).items() if v}
        drift = "none" if not off else ", ".join(f"{k} {v:+,}" for k, v in off.items())
    return {"data_splits": sizes, "split_drift": drift}


def task_rows(task: str, evals: list[Path], params: list[Path], reports: list[Path] = (),
              speed_csvs: list[Path] = (), config_sha256: str | None = None,
              manifest: Path | None = None, prepared_meta: Path | None = None,
              curves: list[Path] = ()) -> pd.DataFrame:
    """One row per model of the task: parameters, compression, metric mean ± sd over seeds,
    speedups per measured setting, and the compression settings or the control it is. Models are
    named by the records the files carry (generate, params and train ``--record``, compress
    reports, control records), never by where the files are. With
    ``curves``, each row has its best validation loss, and the points of a learning-rate sweep
    mark the one a researcher would pick: the lowest validation loss (never the test score)."""
    if not evals:
        raise LightformerError(f"no evaluations given for {task}")
    per_model: dict[str, list[dict]] = {}
    seeds: dict[str, list[str]] = {}
    for path in map(Path, evals):
        run = _read_json(path)
        who = record_of(path, run)
        per_model.setdefault(who["model"], []).append(run)
        seeds.setdefault(who["model"], []).append(str(who["seed"]))
    counts = {}
    for path in map(Path, params):
        content = _read_json(path)
        counts[record_of(path, content)["model"]] = content
    records = read_records(reports)
    valid = _best_valid_losses(curves)
    missing = sorted(set(per_model) - set(counts)) + ([] if "baseline" in counts else ["baseline"])
    if missing:
        raise LightformerError(f"{task}: no parameter counts given for {sorted(set(missing))}")
    base_params = counts["baseline"]
    speed = pd.concat([pd.read_csv(p) for p in speed_csvs], ignore_index=True) if speed_csvs else None
    manifest_sha256 = file_sha256(manifest)[:16] if manifest and Path(manifest).is_file() else None
    data = data_columns(prepared_meta)
    rows = []
    for model, runs in sorted(per_model.items(), key=lambda kv: (kv[0] != "baseline", kv[0])):
        metrics = [r.get("bleu") or r["rouge"] for r in runs]  # BLEU (translation) or ROUGE (summaries)
        scores = pd.Series([m["score"] for m in metrics])
        params = counts[model]
        row = {"task": task, "model": model, "params_total": params["total"],
               "params_embedding": params["embedding"], "params_output_projection": params.get("output_projection", 0),
               "params_body": params["body"],
               "compression": base_params["total"] / params["total"],
               "metric": metrics[0]["metric"], "metric_label": metrics[0]["label"],
               "metric_mean": scores.mean(), "metric_sd": scores.std(ddof=1) if len(scores) > 1 else 0.0,
               "seeds": len(runs), "beam": runs[0]["search"]["beam"], "lenpen": runs[0]["search"]["lenpen"],
               "signature": metrics[0]["signature"]}
        for name in metrics[0].get("scores", {}):  # every ROUGE type, mean over seeds
            row[f"{name}_mean"] = pd.Series([m["scores"][name] for m in metrics]).mean()
        report = records.get(model, {})
        if "control" in report:
            row |= {"init": "scratch", "control": report["control"], "ratio_target": report.get("ratio_target"),
                    "layer_sharing": report.get("layer_sharing"), "width": report.get("embed_dim")}
        if "spec" in report:
            spec = report["spec"]
            row |= {"init": init_label(report), "ratio_target": spec["ratio"], "rank": solved_ranks(report),
                    "rank_alloc": spec.get("rank_alloc", "uniform"), "share_layers": spec["share_layers"],
                    "share_side": spec["share_side"], "share_qkv": spec["share_qkv"]}
        if speed is not None:
            for _, s in speed[speed["model"] == model].iterrows():
                key = f"speedup_{s['device']}_{s['protocol']}"
                row[key] = s["speedup"]
                row[f"{key}_conditions"] = (f"{s['device_name']}, {s['dtype']}, threads {s['threads']}, "
                                            f"batch {s['batch']}, beam {s['beam']}")
        row["family"] = report.get("family") or report.get("record", {}).get("family") or model
        row["lr_scale"] = report.get("lr_scale") or report.get("record", {}).get("lr_scale") or 1.0
        if model in valid:
            row["valid_loss_best"] = valid[model]
        row |= data | provenance_columns(runs, seeds[model], config_sha256, manifest_sha256)
        rows.append(row)
    return _mark_sweep_choice(pd.DataFrame(rows))


def read_records(paths) -> dict[str, dict]:
    """Model -> what it is, from compress reports and control records, keyed by the variant they
    name (compress --record, control init --identity)."""
    return {record_of(p, rec)["model"]: rec for p, rec in ((Path(p), _read_json(Path(p))) for p in paths)}


def _best_valid_losses(curves) -> dict[str, float]:
    """Model -> its lowest validation loss over the run, mean over seeds."""
    per_model: dict[str, list[float]] = {}
    for p in map(Path, curves):
        losses = read_curve(p)["valid_loss"]
        if len(losses):
            per_model.setdefault(run_identity(p)["model"], []).append(float(losses.min()))
    return {m: sum(v) / len(v) for m, v in per_model.items()}


def _mark_sweep_choice(df: pd.DataFrame) -> pd.DataFrame:
    """``lr_selected``: within each family swept over learning rates, the point with the lowest
    validation loss; empty where a model was trained at one learning rate only."""
    df["lr_selected"] = pd.Series([""] * len(df), index=df.index, dtype=object)  # True / False / "" (no sweep)
    if "valid_loss_best" not in df:
        return df
    for _, group in df.groupby("family"):
        if len(group) > 1 and group["valid_loss_best"].notna().any():
            best = group["valid_loss_best"].idxmin()
            for i in group.index:
                df.at[i, "lr_selected"] = bool(i == best)
    return df


def _count(n) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"


def paper_view(df: pd.DataFrame) -> pd.DataFrame:
    """A task table as a paper prints it: model, what it is, parameters with and without embeddings,
    the compression, the metric as mean ± sd over seeds, and one speedup; every other column
    (provenance, signatures, split sizes, ranks) stays in the CSV."""
    label = str(df["metric_label"].iloc[0]).split(",")[0] if "metric_label" in df and len(df) else "metric"
    out = pd.DataFrame({"model": df["model"]})
    out["init"] = df["init"].fillna("dense").replace("", "dense") if "init" in df else "dense"
    out["params"] = df["params_total"].map(_count)
    out["w/o embeddings"] = df["params_body"].map(_count)
    out["x fewer"] = df["compression"].map(lambda x: f"{x:.2f}")
    out[label] = [f"{m:.2f} ± {s:.2f}" if n > 1 else f"{m:.2f}"
                  for m, s, n in zip(df["metric_mean"], df["metric_sd"].fillna(0), df["seeds"])]
    speed = [c for c in df.columns if c.startswith("speedup_") and not c.endswith("_conditions")]
    if speed:
        out[f"speedup ({speed[0][8:].replace('_', ' ')})"] = df[speed[0]].map(lambda x: "" if pd.isna(x) else f"{x:.2f}")
    if "lr_selected" in df and (df["lr_selected"].astype(str) != "").any():
        out["lr (chosen)"] = [f"x{s:g}" + (" *" if str(c) == "True" else "") if str(c) != "" else ""
                              for s, c in zip(df.get("lr_scale", 1.0), df["lr_selected"])]
    return out


def verdict(claim: str, paper, ours) -> str:
    """One word on a claim: reproduced, or by how much it falls short (our reading, stated plainly)."""
    if ours is None or (isinstance(ours, float) and pd.isna(ours)) or ours == "":
        return "not measured"
    if isinstance(paper, str) or isinstance(ours, str):
        return "reproduced" if str(ours) == str(paper) else "not reproduced"
    if claim.startswith("metric vs baseline"):
        return "similar" if abs(float(ours)) <= 1.0 else f"{'higher' if ours > 0 else 'lower'} by {abs(float(ours)):.2f}"
    return "reproduced" if float(ours) >= 0.95 * float(paper) else f"{float(ours) / float(paper):.0%} of the claim"


def claims_view(df: pd.DataFrame) -> pd.DataFrame:
    """paper_comparison as a reader takes it: one sentence per claim, the paper's figure, ours, a verdict."""
    def fmt(x):
        return f"{x:.2f}" if isinstance(x, float) else str(x)

    return pd.DataFrame({"task": df["task"], "claim": df["claim"], "paper": df["paper"].map(fmt),
                         "ours": df["ours"].map(fmt), "verdict": [verdict(c, p, o) for c, p, o in
                                                                  zip(df["claim"], df["paper"], df["ours"])],
                         "model": df["ours_model"].fillna(""), "conditions": df["note"].fillna("")})


def html_page(show: pd.DataFrame, title: str, csv_name: str) -> str:
    """The readable table as a page of its own (Snakemake's report embeds it); the CSV with every
    column sits under the report's Provenance."""
    table = show.to_html(index=False, escape=True, border=0, na_rep="")
    return (f"<!doctype html>\n<meta charset='utf-8'><title>{html.escape(title)}</title>\n"
            "<style>table{border-collapse:collapse;font:14px sans-serif}th,td{padding:3px 10px;"
            "border-bottom:1px solid #ddd;text-align:left}</style>\n"
            f"<h3>{html.escape(title)}</h3>\n{table}\n<p>Every column, provenance included: "
            f"<code>{html.escape(csv_name)}</code> (under Provenance in the workflow report).</p>\n")


def write_table(df: pd.DataFrame, csv_path: Path, md_path: Path | None = None, view=None, page: bool = False) -> None:
    """The CSV with every column; the Markdown (and with ``page`` an HTML page beside it, for the
    workflow report) as ``view`` shows it (a paper's columns), else as is."""
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(csv_path, index=False)
    if md_path:
        show = view(df) if view else df.copy()
        for c in show.columns:
            if show[c].dtype.kind == "f":
                show[c] = show[c].map(lambda x: "" if pd.isna(x) else f"{x:.2f}")
            elif show[c].dtype.kind == "O":  # numbers among words (a claim's "yes" beside ratios)
                show[c] = show[c].map(lambda x: f"{x:.2f}" if isinstance(x, float) and not pd.isna(x) else x)
        Path(md_path).write_text(markdown_table(show))
        if page:
            Path(md_path).with_suffix(".html").write_text(html_page(show, Path(md_path).stem, csv_path.name))


def chosen(df: pd.DataFrame) -> pd.DataFrame:
    """The rows a comparison uses: a swept model at its selected learning rate (by validation loss)."""
    if "lr_selected" not in df:
        return df
    return df[df["lr_selected"].astype(str) != "False"]


def ablations(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """SVD transfer vs random init (same shapes), sharing levels at equal budget, rank sweep."""
    lf = chosen(df[df["model"] != "baseline"]).copy()
    if lf.empty or "init" not in lf:
        return {}
    keys = ["task", "ratio_target", "share_layers", "share_side", "share_qkv"]
    pivot = lf.pivot_table(index=keys, columns="init", values="metric_mean", aggfunc="first").reset_index()
    for other in ("random", "random_full", "random_svd", "random_svd_full", "scratch"):
        if {"svd", other} <= set(pivot.columns):
            pivot[f"svd_minus_{other}"] = pivot["svd"] - pivot[other]
    svd = lf[lf["init"] == "svd"]
    sharing = svd.sort_values(["ratio_target", "share_layers"])[
        ["task", "model", "ratio_target", "share_layers", "share_qkv", "params_total", "metric_mean", "metric_sd"]]
    ranks = svd.sort_values("compression")[["task", "model", "compression", "params_total", "metric_mean"] +
                                           [c for c in svd.columns if c.startswith("speedup_") and
                                            not c.endswith("_conditions")]]
    return {"init": pivot, "sharing": sharing, "rank": ranks}


def paper_size_speed_row(task: str, speedup: float, df: pd.DataFrame, source: str) -> dict:
    """The speed claim set against the paper-size architecture with random weights (``lightformer
    speed --paper-size``): the trained models of a smoke run are too small to time honestly."""
    lf = df[df["model"].str.endswith("_lf")].iloc[0]
    threads = f", {int(lf['threads'])} thread(s)" if pd.notna(lf.get("threads")) and str(lf.get("threads")) else ""
    note = (f"paper-size architecture, random weights, fixed-length decoding ({lf['compression']:.2f}x fewer); "
            f"{lf['device_name']}, {lf['dtype']}{threads}, batch {lf['batch']}, beam {lf['beam']}, {lf['runs']} runs")
    return {"task": task, "claim": f"speedup ({lf['device']}_{lf['protocol']}, paper size)", "paper": speedup,
            "ours": lf["speedup"], "ours_model": lf["model"], "source": source, "note": note}


def paper_comparison(tables: dict[str, pd.DataFrame], paper_speed: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Each claim of the abstract beside our closest measurement; ``paper_speed`` (task -> speed
    rows of the paper-size models) adds a speed row that is not overhead-bound."""
    paper_speed = paper_speed or {}
    rows = []
    source = "Lv et al., Findings of ACL 2023, abstract"
    for task, fewer, speedup in CLAIMS:
        df = tables.get(task)
        if df is None:
            rows.append({"task": task, "claim": "parameters", "paper": fewer, "ours": None, "source": source,
                         "ours_model": "", "note": "task not run"})
            continue
        base = df[df["model"] == "baseline"].iloc[0]
        cand = chosen(df[df["model"] != "baseline"])
        if "init" in cand:  # the claims are about SVD transfer, not the random-init ablation
            cand = cand[cand["init"] == "svd"]
        if cand.empty:
            continue
        best = cand.iloc[(cand["compression"] - fewer).abs().argmin()]
        data = f"data: {best['split_drift']}" if pd.notna(best.get("split_drift")) and best.get("split_drift") else ""
        rows.append({"task": task, "claim": "x fewer parameters", "paper": fewer, "ours": best["compression"],
                     "ours_model": best["model"], "source": source, "note": data})
        speed_cols = [c for c in df.columns if c.startswith("speedup_") and not c.endswith("_conditions")]
        for c in speed_cols:
            rows.append({"task": task, "claim": f"speedup ({c[8:]})", "paper": speedup, "ours": best[c],
                         "ours_model": best["model"], "source": source, "note": best.get(f"{c}_conditions", "")})
        if task in paper_speed:
            rows.append(paper_size_speed_row(task, speedup, paper_speed[task], source))
        rows.append({"task": task, "claim": "metric vs baseline (paper: similar)", "paper": 0.0,
                     "ours": best["metric_mean"] - base["metric_mean"], "ours_model": best["model"],
                     "source": source, "note": "; ".join(x for x in (best["metric_label"], data) if x)})
    for task, df in tables.items():
        rows += lightweight_claims(task, df, source)
    return pd.DataFrame(rows)


def lightweight_claims(task: str, df: pd.DataFrame, source: str) -> list[dict]:
    """The abstract's third claim, per control trained here: does the SVD-transferred LightFormer of
    the closest parameter count reach a higher metric (mean ± sd over seeds)?"""
    if "init" not in df:
        return []
    df = chosen(df)
    light = df[df["init"].astype(str).str.startswith("svd")]
    rows = []
    for _, c in df[df["init"].astype(str) == "scratch"].iterrows():
        if light.empty:
            break
        lf = light.iloc[(light["compression"] - c["compression"]).abs().argmin()]
        better = lf["metric_mean"] > c["metric_mean"]
        rows.append({"task": task, "claim": f"out-performs a light-weight model ({c['control']})",
                     "paper": "yes", "ours": "yes" if better else "no", "ours_model": lf["model"], "source": source,
                     "note": (f"{lf['model']} {lf['metric_mean']:.2f} ± {lf['metric_sd']:.2f} at "
                              f"{lf['compression']:.2f}x vs {c['model']} {c['metric_mean']:.2f} ± {c['metric_sd']:.2f} "
                              f"at {c['compression']:.2f}x; {c['metric_label']}, {int(c['seeds'])} seed(s)")})
    return rows


def glue_rows(runs: list[Path], speed_csvs: list[Path] = (), config_sha256: str | None = None) -> pd.DataFrame:
    """One row per model (baseline first, then the variants): parameters and compression (mean
    over tasks; the heads differ), each task's dev metrics as mean ± sd over seeds, the task
    score (mean of its metrics) and the GLUE average with and without WNLI. ``runs`` are
    ``glue train --record`` metrics.json files."""
    from lightformer.glue.metrics import glue_average

    runs = [Path(p) for p in runs]
    if not runs:
        raise LightformerError("no GLUE results given")
    by_model: dict[str, dict[str, list[dict]]] = {}
    seeds: dict[str, set[str]] = {}
    for path in runs:
        run = _read_json(path)
        who = record_of(path, run)
        by_model.setdefault(who["model"], {}).setdefault(who["task"], []).append(run)
        seeds.setdefault(who["model"], set()).add(str(who["seed"]))
    base = by_model.get("baseline", {})
    rows = []
    for model, tasks in sorted(by_model.items(), key=lambda kv: (kv[0] != "baseline", kv[0])):
        row = {"model": model, "params": float(pd.Series([r["params"] for rs in tasks.values() for r in rs]).mean())}
        ratios = [base[t][0]["params"] / rs[0]["params"] for t, rs in tasks.items() if t in base]
        row["compression"] = float(pd.Series(ratios).mean()) if ratios else float("nan")
        seeds_avg = {}
        for task, rs in sorted(tasks.items()):
            for name in rs[0]["dev"]:  # mnli: matched and mismatched
                for metric in rs[0]["dev"][name]["scores"]:
                    values = pd.Series([r["dev"][name]["scores"][metric] for r in rs])
                    row[f"{name}_{metric}"] = values.mean()
                    row[f"{name}_{metric}_sd"] = values.std(ddof=1) if len(values) > 1 else 0.0
                seeds_avg[name] = {m: row[f"{name}_{m}"] for m in rs[0]["dev"][name]["scores"]}
            row["seeds"] = len(rs)
        row["glue_avg"] = glue_average(seeds_avg)
        row["glue_avg_no_wnli"] = glue_average(seeds_avg, exclude=("wnli",)) if set(seeds_avg) - {"wnli"} else None
        first = next(iter(tasks.values()))[0]
        row["recipe"] = ", ".join(f"{k} {first['config'][k]}" for k in ("lr", "epochs", "batch_size", "max_len"))
        row["device"] = first["device"]
        prov = provenance_columns([r for rs in tasks.values() for r in rs], sorted(seeds[model]), config_sha256)
        row |= {k: v for k, v in prov.items() if k not in ("device", "data_manifest_sha256")}
        rows.append(row)
    df = pd.DataFrame(rows)
    for path in speed_csvs:  # encoder-only timing of the first task's models
        sp = pd.read_csv(path)
        for _, s in sp.iterrows():
            key = f"speedup_{s['device']}_{s['protocol']}"
            df.loc[df["model"] == s["model"], key] = s["speedup"]
            df.loc[df["model"] == s["model"], f"{key}_conditions"] = (
                f"{s['device_name']}, {s['dtype']}, batch {s['batch']}, seq {s['seq_len']}, {s['runs']} runs")
    first = ["model", "params", "compression", "glue_avg", "glue_avg_no_wnli"]
    last = ["seeds", "recipe", "device", "seeds_used", "commit", "torch", "cuda", "config_sha256"]
    speed = [c for c in df.columns if c.startswith("speedup_")]
    return df[first + [c for c in df.columns if c not in first + last + speed] + speed + last]


def ablation_transfer_rows(transfer: list[Path], finetuned: list[Path], reports: list[Path],
                           baselines: list[Path] = (), config_sha256: str | None = None) -> pd.DataFrame:
    """One row per (task, variant): the transfer initialiser and rank allocation at a ratio and
    sharing level; quality right after transfer and after fine-tuning (mean ± sd over seeds), the
    held-out layer-output error of the transfer, and each one's gap to the task's baseline.
    Each file says which run it is (its record): ``transfer`` and ``finetuned`` are generate JSONs,
    ``reports`` compress reports, ``baselines`` the baseline's generate JSONs."""
    def key(path, content: dict) -> tuple[str, str]:
        who = record_of(Path(path), content)
        return who["task"], who["model"]

    def metric(run: dict) -> dict:
        return run.get("bleu") or run["rouge"]

    collected: dict[tuple[str, str], dict[str, list]] = {}
    label: dict[str, str] = {}
    for kind, paths in (("transfer", transfer), ("finetuned", finetuned)):
        for p in paths:
            run = _read_json(p)
            entry = collected.setdefault(key(p, run), {})
            entry.setdefault(kind, []).append(metric(run)["score"])
            label.setdefault(key(p, run)[0], metric(run)["label"])
            if kind == "finetuned":
                entry.setdefault("runs", []).append(run)
                entry.setdefault("seeds", []).append(str(record_of(Path(p), run)["seed"]))
    for p in reports:
        rep = _read_json(p)
        entry = collected.setdefault(key(p, rep), {})
        entry["spec"], entry["label"] = rep["spec"], init_label(rep)
        entry.setdefault("error", []).append((rep.get("calibration") or {}).get("output_rel_error_mean"))
        entry["params"] = rep["params"]["compressed"]["total"]
        entry["ratio"] = rep["params"]["ratio"]
    base: dict[str, list[float]] = {}
    for p in baselines:
        run = _read_json(p)
        base.setdefault(key(p, run)[0], []).append(metric(run)["score"])
    rows = []
    for (task, model), e in sorted(collected.items()):
        if "spec" not in e:
            raise LightformerError(f"{task}/{model}: no compress report given")
        spec = e["spec"]
        row = {"task": task, "model": model, "init": e["label"],
               "rank_alloc": spec.get("rank_alloc", "uniform"),
               "ratio_target": spec["ratio"], "share_layers": spec["share_layers"], "params": e["params"],
               "compression": e["ratio"], "metric_label": label.get(task, "")}
        for kind in ("transfer", "finetuned"):
            values = pd.Series(e.get(kind, []), dtype=float)
            row[f"{kind}_mean"] = values.mean() if len(values) else float("nan")
            row[f"{kind}_sd"] = values.std(ddof=1) if len(values) > 1 else 0.0
        errors = pd.Series([x for x in e.get("error", []) if x is not None], dtype=float)
        row["output_rel_error_mean"] = errors.mean() if len(errors) else float("nan")
        row["output_rel_error_sd"] = errors.std(ddof=1) if len(errors) > 1 else 0.0
        row["seeds"] = len(e.get("finetuned", []))
        if task in base:
            b = float(pd.Series(base[task]).mean())
            row["baseline_mean"] = b
            row["transfer_gap"] = row["transfer_mean"] - b
            row["finetuned_gap"] = row["finetuned_mean"] - b
        row |= provenance_columns(e.get("runs", []), e.get("seeds", []), config_sha256)
        rows.append(row)
    order = {"random": 0, "random_full": 0.5, "random_svd": 0.7, "random_svd_full": 0.8, "svd": 1, "svd_whiten": 2, "svd_fisher": 3, "asvd": 4}
    df = pd.DataFrame(rows)
    if not df.empty:
        df = df.sort_values(["task", "ratio_target", "share_layers", "rank_alloc", "init"],
                            key=lambda c: c.map(order) if c.name == "init" else c).reset_index(drop=True)
    return df
