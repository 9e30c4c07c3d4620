# Dense baselines and their LightFormer variants (SVD weight transfer + sharing).


rule init_model:
    output:
        "results/models/{task}/baseline.safetensors",
    params:
        arch=lambda wc: config["init_model"][wc.task]["arch"],
        src_vocab=lambda wc: config["init_model"][wc.task]["src_vocab"],
        tgt_vocab=lambda wc: config["init_model"][wc.task]["tgt_vocab"],
        seed=lambda wc: config["init_model"][wc.task].get("seed", 1),
        share=get_share_flag,
    log:
        "results/logs/init_model/{task}.log",
    benchmark:
        "results/benchmarks/init_model/{task}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    shell:
        "lightformer init --arch {params.arch} --src-vocab {params.src_vocab} --tgt-vocab {params.tgt_vocab}"
        " {params.share} --seed {params.seed} --out {output} 2> {log}"


rule compress_model:
    input:
        "results/models/{task}/baseline.safetensors",
    output:
        model="results/models/{task}/{variant}.safetensors",
        spec="results/models/{task}/{variant}.spec.json",
        report="results/compress/{task}/{variant}.json",
    params:
        spec=get_compress_spec,
    log:
        "results/logs/compress_model/{task}/{variant}.log",
    benchmark:
        "results/benchmarks/compress_model/{task}/{variant}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
    shell:
        "echo {params.spec} > {output.spec} && "
        "lightformer compress {input} --spec {output.spec} --out {output.model} --report {output.report}"
        " > {log} 2>&1"


rule count_params:
    input:
        "results/models/{task}/{model}.safetensors",
    output:
        "results/params/{task}/{model}.json",
    log:
        "results/logs/count_params/{task}/{model}.log",
    benchmark:
        "results/benchmarks/count_params/{task}/{model}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=5,
    shell:
        "lightformer params {input} --json > {output} 2> {log}"
