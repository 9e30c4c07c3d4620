# Tables and figures from the measurements.


rule speed_table:
    input:
        get_speed_csvs(),
    output:
        table="results/tables/speed.csv",
        markdown="results/tables/speed.md",
        figure=report("results/figures/speedup_vs_params.png", category="Speed"),
        figure_pdf="results/figures/speedup_vs_params.pdf",
    log:
        "results/logs/speed_table/speed_table.log",
    benchmark:
        "results/benchmarks/speed_table/speed_table.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "lightformer report speed {input} --table {output.table} --markdown {output.markdown}"
        " --figure {output.figure} > {log} 2>&1"
