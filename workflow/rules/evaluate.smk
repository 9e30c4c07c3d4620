# Test-set decoding and scoring (labelled BLEU or ROUGE), and parameter accounting, per model; the
# transfer ablation's variants are also scored right after transfer, before fine-tuning.


rule evaluate_model:
    conda:
        "../../envs/lightformer.yaml"
    input:
        model=lambda wc: model_path(wc.task, wc.model, wc.seed),
        data=lambda wc: f"{prepared(wc.task)}/meta.json",
    output:
        hyps="results/evaluate/{task}/{model}/seed{seed}/hyps.txt",
        scores="results/evaluate/{task}/{model}/seed{seed}/hyps.txt.json",
    params:
        record=lambda wc: record_flag(wc.task, wc.model, wc.seed),
        data=lambda wc: prepared(wc.task),
        flags=generate_flags,
    log:
        "results/logs/evaluate_model/{task}/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate_model/{task}/{model}/seed{seed}.tsv"
    threads: rule_threads("evaluate_model")
    resources:
        **rule_resources("evaluate_model"),
    shell:
        "lightformer generate {input.model:q} --data {params.data:q} {params.flags} {params.record} --remove-bpe"
        " --out {output.hyps:q} > {log:q} 2>&1"


rule count_params:
    conda:
        "../../envs/lightformer.yaml"
    input:
        lambda wc: model_path(wc.task, wc.model, SEEDS[0]),
    output:
        "results/params/{task}/{model}.json",
    params:
        record=lambda wc: record_flag(wc.task, wc.model),
    log:
        "results/logs/count_params/{task}/{model}.log",
    benchmark:
        "results/benchmarks/count_params/{task}/{model}.tsv"
    threads: rule_threads("count_params")
    resources:
        **rule_resources("count_params"),
    shell:
        "lightformer params {input:q} --json {params.record} > {output:q} 2> {log:q}"


rule evaluate_transfer:
    conda:
        "../../envs/lightformer.yaml"
    input:
        model="results/compress/{task}/{variant}/seed{seed}/model.safetensors",
        data=lambda wc: f"{prepared(wc.task)}/meta.json",
    output:
        hyps="results/evaluate_transfer/{task}/{variant}/seed{seed}/hyps.txt",
        scores="results/evaluate_transfer/{task}/{variant}/seed{seed}/hyps.txt.json",
    params:
        record=lambda wc: record_flag(wc.task, wc.variant, wc.seed),
        data=lambda wc: prepared(wc.task),
        flags=generate_flags,
    log:
        "results/logs/evaluate_transfer/{task}/{variant}/seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate_transfer/{task}/{variant}/seed{seed}.tsv"
    threads: rule_threads("evaluate_transfer")
    resources:
        **rule_resources("evaluate_transfer"),
    shell:
        "lightformer generate {input.model:q} --data {params.data:q} {params.flags} {params.record} --remove-bpe"
        " --out {output.hyps:q} > {log:q} 2>&1"
