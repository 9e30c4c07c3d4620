# Speed of each task's models against its baseline, interleaved in one process (lightformer speed).


rule measure_speed:
    conda:
        "../../envs/lightformer.yaml"
    input:
        get_speed_models,
    output:
        "results/speed/{task}/{device}_{protocol}.csv",
    params:
        flags=get_speed_flags,
    log:
        "results/logs/measure_speed/{task}/{device}_{protocol}.log",
    benchmark:
        "results/benchmarks/measure_speed/{task}/{device}_{protocol}.tsv"
    # the whole node, so no other job runs while this one times; --threads fixes the count used
    threads: rule_threads("measure_speed")
    resources:
        **rule_resources("measure_speed", gpu=lambda wc: 1 if wc.device == "cuda" else 0),
    shell:
        "lightformer speed {input:q} {params.flags} --out {output:q} > {log:q} 2>&1"


# The abstract's speed claims against its own model sizes, with random weights (speed depends on
# shapes only): the smoke run's trained models are too small to time honestly (docs/reference.md §6).
rule paper_size_speed:
    conda:
        "../../envs/lightformer.yaml"
    output:
        "results/speed/paper_size/{task}.csv",
    params:
        flags=get_paper_size_flags,
    log:
        "results/logs/paper_size_speed/{task}.log",
    benchmark:
        "results/benchmarks/paper_size_speed/{task}.tsv"
    threads: rule_threads("measure_speed")
    resources:
        **rule_resources("measure_speed", gpu=0),
    shell:
        "lightformer speed --paper-size {wildcards.task:q} {params.flags} --out {output:q} > {log:q} 2>&1"
