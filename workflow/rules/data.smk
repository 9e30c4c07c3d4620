# Raw data from the mirror (or the original URLs), verified, then prepared as fairseq's recipes.


rule write_embedded_mirror:
    conda:
        "../../envs/lightformer.yaml"
    output:
        [f"{MIRROR or 'results/mirror'}/{d}/SHA256SUMS" for d in ("iwslt14", "wmt14", "wmt14_hub", "cnndm", "glue")],
    params:
        out=lambda wc, output: str(Path(output[0]).parent.parent),
    log:
        "results/logs/write_embedded_mirror/mirror.log",
    benchmark:
        "results/benchmarks/write_embedded_mirror/mirror.tsv"
    threads: rule_threads("write_embedded_mirror")
    resources:
        **rule_resources("write_embedded_mirror"),
    shell:
        "lightformer data fixtures --out {params.out:q} > {log:q} 2>&1"


rule fetch_data:
    conda:
        "../../envs/lightformer.yaml"
    input:
        fetch_inputs,
    output:
        f"{DATA_ROOT}/{{dataset}}/raw/manifest.json",
    params:
        root=lambda wc, output: str(Path(output[0]).parents[2]),  # <root>/<dataset>/raw/manifest.json
        kind=data_kind,
        extra=fetch_flags,  # the mirror, DDTP's pair, or a task's own corpus spec
    log:
        "results/logs/fetch_data/{dataset}.log",
    benchmark:
        "results/benchmarks/fetch_data/{dataset}.tsv"
    threads: rule_threads("fetch_data")
    resources:
        **rule_resources("fetch_data"),
    shell:
        "lightformer data fetch {params.kind:q} --root {params.root:q} {params.extra}"
        " > {log:q} 2>&1"


rule prepare_data:
    conda:
        "../../envs/lightformer.yaml"
    input:
        f"{DATA_ROOT}/{{dataset}}/raw/manifest.json",
    output:
        f"{DATA_ROOT}/{{dataset}}/prepared/meta.json",
    params:
        root=lambda wc, output: str(Path(output[0]).parents[2]),  # <root>/<dataset>/prepared/meta.json
        kind=data_kind,
        flags=prepare_flags,  # bpe_merges and the task's `prepare:` options (GLUE: not used)
        expected="--no-expected" if EMBEDDED else "",
    log:
        "results/logs/prepare_data/{dataset}.log",
    benchmark:
        "results/benchmarks/prepare_data/{dataset}.tsv"
    threads: rule_threads("prepare_data")
    resources:
        **rule_resources("prepare_data"),
    shell:
        "lightformer data prepare {params.kind:q} --root {params.root:q} {params.flags}"
        " {params.expected} --workers {threads} > {log:q} 2>&1"
