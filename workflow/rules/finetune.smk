# Fine-tuning after transfer; the same loop and the same resumable side directory as training.


rule finetune_model:
    conda:
        "../../envs/lightformer.yaml"
    input:
        model="results/compress/{task}/{variant}/seed{seed}/model.safetensors",
        data=lambda wc: f"{prepared(wc.task)}/meta.json",
    output:
        model="results/finetune/{task}/{variant}/seed{seed}/model.safetensors",
        curve="results/finetune/{task}/{variant}/seed{seed}/curve.csv",
    params:
        data=lambda wc: prepared(wc.task),
        run="results/runs/finetune/{task}/{variant}/seed{seed}",
        args=lambda wc: run_args(wc.task, "finetune"),
    log:
        "results/logs/finetune_model/{task}/{variant}/seed{seed}.log",
    benchmark:
        "results/benchmarks/finetune_model/{task}/{variant}/seed{seed}.tsv"
    threads: rule_threads("finetune_model")
    resources:
        **rule_resources("finetune_model"),
    shell:
        "lightformer train --restart-if-changed --nproc-per-node {resources.gpu} {params.args} data={params.data} save_dir={params.run} seed={wildcards.seed}"
        " init_from={input.model} threads={threads} > {log} 2>&1"
        " && cp {params.run}/checkpoints/$(cat {params.run}/checkpoints/best)/model.safetensors {output.model}"
        " && cp {params.run}/curve.csv {output.curve}"
