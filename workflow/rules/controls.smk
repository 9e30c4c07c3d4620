# Light-weight controls (lightformer/controls.py): dense_small (the baseline narrowed to a
# LightFormer's size) and cross-layer sharing alone (share_all, share_sandwich, share_cycle_rev),
# each a fresh random model trained with the baseline's own recipe and update budget, so the task
# table can say what low rank and SVD transfer add beyond a smaller or shared dense model.


rule init_control:
    conda:
        "../../envs/lightformer.yaml"
    input:
        lambda wc: f"{prepared(wc.task)}/meta.json",
    output:
        model="results/controls/{task}/{control}/seed{seed}/init.safetensors",
        record="results/controls/{task}/{control}/seed{seed}/control.json",
    params:
        data=lambda wc: prepared(wc.task),
        control=lambda wc: get_controls(wc.task)[wc.control].control,
        flags=control_init_flags,
    log:
        "results/logs/init_control/{task}/{control}/seed{seed}.log",
    benchmark:
        "results/benchmarks/init_control/{task}/{control}/seed{seed}.tsv"
    threads: rule_threads("init_control")
    resources:
        **rule_resources("init_control"),
    shell:
        "lightformer control init --control {params.control:q} --data {params.data:q} --out {output.model:q}"
        " --record {output.record:q} {params.flags} > {log:q} 2>&1"


rule train_control:
    conda:
        "../../envs/lightformer.yaml"
    input:
        model="results/controls/{task}/{control}/seed{seed}/init.safetensors",
        data=lambda wc: f"{prepared(wc.task)}/meta.json",
    output:
        model="results/controls/{task}/{control}/seed{seed}/model.safetensors",
        curve="results/controls/{task}/{control}/seed{seed}/curve.csv",
    params:
        record=lambda wc: record_flag(wc.task, wc.control, wc.seed),
        data=lambda wc: prepared(wc.task),
        run="results/runs/controls/{task}/{control}/seed{seed}",
        args=control_train_args,
    log:
        "results/logs/train_control/{task}/{control}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_control/{task}/{control}/seed{seed}.tsv"
    threads: rule_threads("train_control")
    resources:
        **rule_resources("train_control"),
    shell:
        "lightformer train --restart-if-changed --nproc-per-node {resources.gpu} {params.record} {params.args} data={params.data:q} save_dir={params.run:q} seed={wildcards.seed:q}"
        " init_from={input.model:q} threads={threads} > {log:q} 2>&1"
        " && cp {params.run:q}/checkpoints/$(cat {params.run:q}/checkpoints/best)/model.safetensors {output.model:q}"
        " && cp {params.run:q}/curve.csv {output.curve:q}"
