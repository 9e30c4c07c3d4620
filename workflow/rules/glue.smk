# GLUE (issue 8): per task, a BERT classifier (the fetched bert-base-uncased, or a tiny BERT for
# the smoke run) fine-tuned as the baseline, compressed over the grid (SVD transfer / random
# init, sharing), fine-tuned again; dev metrics into results/tables/glue.csv.


rule glue_init:
    conda:
        "../../envs/lightformer.yaml"
    input:
        data=f"{DATA_ROOT}/glue/prepared/meta.json",
        bert=[f"{DATA_ROOT}/bert_base_uncased/raw/manifest.json"] if GLUE.get("model") == "bert_base_uncased" else [],
    output:
        "results/glue/{gtask}/init/lightformer.json",
    params:
        out=lambda wc, output: str(Path(output[0]).parent),
        data=lambda wc, input: str(Path(input.data).parent),
        model=glue_init_flags,
    log:
        "results/logs/glue_init/{gtask}.log",
    benchmark:
        "results/benchmarks/glue_init/{gtask}.tsv"
    threads: rule_threads("glue_init")
    resources:
        **rule_resources("glue_init"),
    shell:
        "lightformer glue init --task {wildcards.gtask:q} --data {params.data:q} {params.model}"
        " --out {params.out:q} --force > {log:q} 2>&1"


rule glue_train_baseline:
    conda:
        "../../envs/lightformer.yaml"
    input:
        model="results/glue/{gtask}/init/lightformer.json",
        data=f"{DATA_ROOT}/glue/prepared/meta.json",
    output:
        "results/glue/{gtask}/baseline/seed{seed}/metrics.json",
    params:
        record=lambda wc: record_flag(wc.gtask, "baseline", wc.seed),
        init=lambda wc, input: str(Path(input.model).parent),
        data=lambda wc, input: str(Path(input.data).parent),
        out=lambda wc, output: str(Path(output[0]).parent),
        args=lambda wc: glue_run_args("train"),
    log:
        "results/logs/glue_train_baseline/{gtask}/seed{seed}.log",
    benchmark:
        "results/benchmarks/glue_train_baseline/{gtask}/seed{seed}.tsv"
    threads: rule_threads("glue_train_baseline")
    resources:
        **rule_resources("glue_train_baseline"),
    shell:
        "lightformer glue train --checkpoint {params.init:q} --data {params.data:q} --out {params.out:q} --force"
        " {params.record} {params.args} seed={wildcards.seed:q} threads={threads} > {log:q} 2>&1"


rule glue_compress:
    conda:
        "../../envs/lightformer.yaml"
    input:
        "results/glue/{gtask}/baseline/seed{seed}/metrics.json",
    output:
        model="results/glue/{gtask}/{variant}/seed{seed}/compressed/lightformer.json",
        report="results/glue/{gtask}/{variant}/seed{seed}/compress_report.json",
    params:
        base=lambda wc, input: str(Path(input[0]).parent),
        out=lambda wc, output: str(Path(output.model).parent),
        flags=glue_compress_flags,
    log:
        "results/logs/glue_compress/{gtask}/{variant}/seed{seed}.log",
    benchmark:
        "results/benchmarks/glue_compress/{gtask}/{variant}/seed{seed}.tsv"
    threads: rule_threads("glue_compress")
    resources:
        **rule_resources("glue_compress"),
    shell:
        "lightformer compress {params.base:q} {params.flags} --out {params.out:q} --force --report {output.report:q} > {log:q} 2>&1"


rule glue_finetune:
    conda:
        "../../envs/lightformer.yaml"
    input:
        model="results/glue/{gtask}/{variant}/seed{seed}/compressed/lightformer.json",
        data=f"{DATA_ROOT}/glue/prepared/meta.json",
    output:
        "results/glue/{gtask}/{variant}/seed{seed}/metrics.json",
    params:
        record=lambda wc: record_flag(wc.gtask, wc.variant, wc.seed),
        init=lambda wc, input: str(Path(input.model).parent),
        data=lambda wc, input: str(Path(input.data).parent),
        out=lambda wc, output: str(Path(output[0]).parent / "model"),
        args=lambda wc: glue_run_args("finetune"),
    log:
        "results/logs/glue_finetune/{gtask}/{variant}/seed{seed}.log",
    benchmark:
        "results/benchmarks/glue_finetune/{gtask}/{variant}/seed{seed}.tsv"
    threads: rule_threads("glue_finetune")
    resources:
        **rule_resources("glue_finetune"),
    shell:
        "lightformer glue train --checkpoint {params.init:q} --data {params.data:q} --out {params.out:q} --force"
        " {params.record} {params.args} seed={wildcards.seed:q} threads={threads} > {log:q} 2>&1 && cp {params.out:q}/metrics.json {output:q}"


rule glue_speed:
    conda:
        "../../envs/lightformer.yaml"
    input:
        lambda wc: [glue_metrics_path(GLUE["tasks"][0], m, SEEDS[0]) for m in get_glue_models()],
    output:
        "results/speed/glue/{device}_{protocol}.csv",
    params:
        models=lambda wc: [glue_checkpoint_dir(GLUE["tasks"][0], m, SEEDS[0]) for m in get_glue_models()],
        flags=glue_speed_flags,
    log:
        "results/logs/glue_speed/{device}_{protocol}.log",
    benchmark:
        "results/benchmarks/glue_speed/{device}_{protocol}.tsv"
    threads: rule_threads("glue_speed")
    resources:
        **rule_resources("glue_speed", gpu=lambda wc: 1 if wc.device == "cuda" else 0),
    shell:
        "lightformer glue speed {params.models:q} {params.flags} --out {output:q} > {log:q} 2>&1"


rule glue_table:
    conda:
        "../../envs/lightformer.yaml"
    input:
        metrics=lambda wc: [glue_metrics_path(t, m, s) for t in GLUE["tasks"] for m in get_glue_models() for s in SEEDS],
        speed=lambda wc: get_glue_speed_csvs(),
    output:
        table=report("results/tables/glue.csv", category="Tables"),
        markdown="results/tables/glue.md",
    params:
        config_sha=config_sha256(),
    log:
        "results/logs/glue_table/glue.log",
    benchmark:
        "results/benchmarks/glue_table/glue.tsv"
    threads: rule_threads("glue_table")
    resources:
        **rule_resources("glue_table"),
    shell:
        "lightformer report glue --metrics {input.metrics:q} --speed {input.speed:q} --table {output.table:q}"
        " --markdown {output.markdown:q} --config-sha256 {params.config_sha} > {log:q} 2>&1"
