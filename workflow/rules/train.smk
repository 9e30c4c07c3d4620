# Baselines. Resumable state lives in results/runs/ (not a declared output, so Snakemake never
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
        data=lambda wc: prepared(wc.task),
        run="results/runs/train/{task}/baseline/seed{seed}",
        args=lambda wc: run_args(wc.task, "train"),
    log:
        "results/logs/train_baseline/{task}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_baseline/{task}/seed{seed}.tsv"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=1440,
        gpu=1,
    shell:
        "lightformer train {params.args} data={params.data} save_dir={params.run} seed={wildcards.seed}"
        " threads={threads} > {log} 2>&1"
        " && cp {params.run}/checkpoints/$(cat {params.run}/checkpoints/best)/model.safetensors {output.model}"
        " && cp {params.run}/curve.csv {output.curve}"
