# Baselines (on gpu: N > 1, N data-parallel ranks via torchrun). Resumable state lives in results/runs/ (not a declared output, so Snakemake never
# deletes it): rerunning a failed or preempted job resumes from its last checkpoint.


rule train_baseline:
    conda:
        "../../envs/lightformer.yaml"
    input:
        lambda wc: f"{prepared(wc.task)}/meta.json",
    output:
        model="results/train/{task}/baseline/seed{seed}/model.safetensors",
        curve="results/train/{task}/baseline/seed{seed}/curve.csv",
    params:
        record=lambda wc: record_flag(wc.task, "baseline", wc.seed),
        data=lambda wc: prepared(wc.task),
        run="results/runs/train/{task}/baseline/seed{seed}",
        args=lambda wc: run_args(wc.task, "train"),
    log:
        "results/logs/train_baseline/{task}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_baseline/{task}/seed{seed}.tsv"
    threads: rule_threads("train_baseline")
    resources:
        **rule_resources("train_baseline"),
    shell:
        "lightformer train --restart-if-changed --nproc-per-node {resources.gpu} {params.record} {params.args} data={params.data:q} save_dir={params.run:q} seed={wildcards.seed:q}"
        " threads={threads} > {log:q} 2>&1"
        " && cp {params.run:q}/checkpoints/$(cat {params.run:q}/checkpoints/best)/model.safetensors {output.model:q}"
        " && cp {params.run:q}/curve.csv {output.curve:q}"
