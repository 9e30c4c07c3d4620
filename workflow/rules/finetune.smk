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
        record=lambda wc: record_flag(wc.task, wc.variant, wc.seed),
        data=lambda wc: prepared(wc.task),
        run="results/runs/finetune/{task}/{variant}/seed{seed}",
        args=finetune_args,  # init random_full: the baseline's recipe and budget
    log:
        "results/logs/finetune_model/{task}/{variant}/seed{seed}.log",
    benchmark:
        "results/benchmarks/finetune_model/{task}/{variant}/seed{seed}.tsv"
    threads: rule_threads("finetune_model")
    resources:
        **rule_resources("finetune_model"),
    shell:
        "lightformer train --restart-if-changed --nproc-per-node {resources.gpu} {params.record} {params.args} data={params.data:q} save_dir={params.run:q} seed={wildcards.seed:q}"
        " init_from={input.model:q} threads={threads} > {log:q} 2>&1"
        " && cp {params.run:q}/checkpoints/$(cat {params.run:q}/checkpoints/best)/model.safetensors {output.model:q}"
        " && cp {params.run:q}/curve.csv {output.curve:q}"
