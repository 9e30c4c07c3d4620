# Tables and figures from the measurements.


rule task_table:
    conda:
        "../../envs/lightformer.yaml"
    input:
        scores=lambda wc: [f"results/evaluate/{wc.task}/{m}/seed{s}/hyps.txt.json"
                           for m in get_models(wc.task) for s in SEEDS],
        params=lambda wc: [f"results/params/{wc.task}/{m}.json" for m in get_models(wc.task)],
        records=lambda wc: [record_path(wc.task, m) for m in get_models(wc.task) if m != "baseline"],
        curves=lambda wc: [curve_path(wc.task, m, s) for m in get_models(wc.task) for s in SEEDS],
        speed=lambda wc: [p for p in get_speed_csvs() if p.startswith(f"results/speed/{wc.task}/")],
        manifest=lambda wc: manifest(wc.task),
        prepared=lambda wc: f"{prepared(wc.task)}/meta.json",
    output:
        table=report("results/tables/{task}.csv", category="Provenance"),
        markdown="results/tables/{task}.md",
        page=report("results/tables/{task}.html", category="Tables"),
    params:
        config_sha=config_sha256(),
    log:
        "results/logs/task_table/{task}.log",
    benchmark:
        "results/benchmarks/task_table/{task}.tsv"
    threads: rule_threads("task_table")
    resources:
        **rule_resources("task_table"),
    shell:
        "lightformer report tables --tasks {wildcards.task:q} --evals {input.scores:q} --params {input.params:q}"
        " --reports {input.records:q} --curves {input.curves:q} --speed {input.speed:q} --manifest {input.manifest:q}"
        " --prepared-meta {input.prepared:q}"
        " --config-sha256 {params.config_sha} --out results/tables > {log:q} 2>&1"


rule summary_tables:
    conda:
        "../../envs/lightformer.yaml"
    input:
        tables=expand("results/tables/{task}.csv", task=list(config["tasks"])),
        curves=lambda wc: [f"results/finetune/{t}/{v}/seed{s}/curve.csv" for t in config["tasks"]
                           for v in get_variants(t) for s in SEEDS],
        paper_speed=get_paper_size_csvs(),
    output:
        comparison=report("results/tables/paper_comparison.csv", category="Provenance"),
        ablation_init=report("results/tables/ablation_init.csv", category="Provenance"),
        ablation_sharing=report("results/tables/ablation_sharing.csv", category="Provenance"),
        ablation_rank=report("results/tables/ablation_rank.csv", category="Provenance"),
        comparison_page=report("results/tables/paper_comparison.html", category="Tables"),
        ablation_init_page=report("results/tables/ablation_init.html", category="Tables"),
        ablation_sharing_page=report("results/tables/ablation_sharing.html", category="Tables"),
        ablation_rank_page=report("results/tables/ablation_rank.html", category="Tables"),
        metric_fig=report("results/figures/metric_vs_params.png", category="Figures"),
        curves_fig=report("results/figures/learning_curves.png", category="Figures"),
        heatmap_fig=report("results/figures/sharing_heatmap.png", category="Figures"),
    params:
        tasks=list(config["tasks"]),
    log:
        "results/logs/summary_tables/summary.log",
    benchmark:
        "results/benchmarks/summary_tables/summary.tsv"
    threads: rule_threads("summary_tables")
    resources:
        **rule_resources("summary_tables"),
    shell:
        "lightformer report tables --tasks {params.tasks:q} --summary --tables {input.tables:q}"
        " --curves {input.curves:q} --paper-size-speed {input.paper_speed:q}"
        " --out results/tables --figures results/figures > {log:q} 2>&1"


rule speed_table:
    conda:
        "../../envs/lightformer.yaml"
    input:
        get_speed_csvs(),
    output:
        table=report("results/tables/speed.csv", category="Speed"),
        markdown="results/tables/speed.md",
        figure=report("results/figures/speedup_vs_params.png", category="Speed"),
        figure_pdf="results/figures/speedup_vs_params.pdf",
    log:
        "results/logs/speed_table/speed_table.log",
    benchmark:
        "results/benchmarks/speed_table/speed_table.tsv"
    threads: rule_threads("speed_table")
    resources:
        **rule_resources("speed_table"),
    shell:
        "lightformer report speed {input:q} --table {output.table:q} --markdown {output.markdown:q}"
        " --figure {output.figure:q} > {log:q} 2>&1"


rule ablation_transfer_table:
    conda:
        "../../envs/lightformer.yaml"
    input:
        transfer=lambda wc: [f"results/evaluate_transfer/{t}/{v}/seed{s}/hyps.txt.json"
                             for t in ablation_tasks() for v in ablation_variants(t) for s in SEEDS],
        finetuned=lambda wc: [f"results/evaluate/{t}/{v}/seed{s}/hyps.txt.json"
                              for t in ablation_tasks() for v in ablation_variants(t) for s in SEEDS],
        reports=lambda wc: [f"results/compress/{t}/{v}/seed{s}/report.json"
                            for t in ablation_tasks() for v in ablation_variants(t) for s in SEEDS],
        baselines=lambda wc: [f"results/evaluate/{t}/baseline/seed{s}/hyps.txt.json" for t in ablation_tasks() for s in SEEDS],
    output:
        table=report("results/tables/ablation_transfer.csv", category="Tables"),
        markdown="results/tables/ablation_transfer.md",
        figure=report("results/figures/ablation_transfer.png", category="Figures"),
        figure_pdf="results/figures/ablation_transfer.pdf",
    params:
        config_sha=config_sha256(),
    log:
        "results/logs/ablation_transfer_table/ablation_transfer.log",
    benchmark:
        "results/benchmarks/ablation_transfer_table/ablation_transfer.tsv"
    threads: rule_threads("ablation_transfer_table")
    resources:
        **rule_resources("ablation_transfer_table"),
    shell:
        "lightformer report ablation-transfer --transfer {input.transfer:q} --finetuned {input.finetuned:q}"
        " --reports {input.reports:q} --baselines {input.baselines:q} --table {output.table:q}"
        " --markdown {output.markdown:q} --figure {output.figure:q} --config-sha256 {params.config_sha} > {log:q} 2>&1"


rule convergence_table:
    conda:
        "../../envs/lightformer.yaml"
    input:
        curves=lambda wc: [curve_path(wc.task, m, s) for m in get_models(wc.task) for s in SEEDS],
        records=lambda wc: [record_path(wc.task, m) for m in get_models(wc.task) if m != "baseline"],
    output:
        table=report("results/tables/convergence_{task}.csv", category="Tables"),
        markdown="results/tables/convergence_{task}.md",
        figure=report("results/figures/convergence_{task}.png", category="Figures"),
    log:
        "results/logs/convergence_table/{task}.log",
    benchmark:
        "results/benchmarks/convergence_table/{task}.tsv"
    threads: rule_threads("convergence_table")
    resources:
        **rule_resources("convergence_table"),
    shell:
        "lightformer report convergence --curves {input.curves:q} --records {input.records:q}"
        " --out {output.table:q} --markdown {output.markdown:q} --figure {output.figure:q} > {log:q} 2>&1"


rule lightweight_table:
    conda:
        "../../envs/lightformer.yaml"
    input:
        "results/tables/{task}.csv",
    output:
        table=report("results/tables/lightweight_{task}.csv", category="Tables"),
        markdown="results/tables/lightweight_{task}.md",
        figure=report("results/figures/lightweight_{task}.png", category="Figures"),
    params:
        dataset=lambda wc: config["tasks"][wc.task]["dataset"],
    log:
        "results/logs/lightweight_table/{task}.log",
    benchmark:
        "results/benchmarks/lightweight_table/{task}.tsv"
    threads: rule_threads("lightweight_table")
    resources:
        **rule_resources("lightweight_table"),
    shell:
        "lightformer report lightweight --table {input:q} --task {wildcards.task:q} --dataset {params.dataset:q}"
        " --out {output.table:q} --markdown {output.markdown:q} --figure {output.figure:q} > {log:q} 2>&1"
