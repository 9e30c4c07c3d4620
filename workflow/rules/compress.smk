# LightFormer variants of each baseline: SVD weight transfer (or random init of the same shapes).


rule compress_model:
    conda:
        "../../envs/lightformer.yaml"
    input:
        "results/train/{task}/baseline/seed{seed}/model.safetensors",
    output:
        model="results/compress/{task}/{variant}/seed{seed}/model.safetensors",
        report="results/compress/{task}/{variant}/seed{seed}/report.json",
    params:
        flags=compress_flags,
    log:
        "results/logs/compress_model/{task}/{variant}/seed{seed}.log",
    benchmark:
        "results/benchmarks/compress_model/{task}/{variant}/seed{seed}.tsv"
    threads: rule_threads("compress_model")
    resources:
        **rule_resources("compress_model"),
    shell:
        "lightformer compress {input:q} {params.flags} --out {output.model:q} --report {output.report:q} > {log:q} 2>&1"
