# LightFormer variants of each baseline: SVD weight transfer (plain or data-aware), or random init of the
# same shapes; the prepared data calibrates data-aware transfer and gives the report's held-out error.


rule compress_model:
    conda:
        "../../envs/lightformer.yaml"
    input:
        model="results/train/{task}/baseline/seed{seed}/model.safetensors",
        data=lambda wc: f"{prepared(wc.task)}/meta.json",  # calibration (data-aware transfer, held-out error)
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
        "lightformer compress {input.model:q} {params.flags} --out {output.model:q} --report {output.report:q} > {log:q} 2>&1"
