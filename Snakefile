# LightFormer reproduction harness — the workflow entry point.
#
#   snakemake --cores 2 all              everything the config asks for
#   snakemake results/params/iwslt14/r3.8_k2.json    one file and only what it needs
#
# Paths: results/<stage>/<task>/<variant>.<ext>; logs in results/logs/<rule>/, benchmarks in
# results/benchmarks/<rule>/. The rules only wire the `lightformer` CLI; the library does the work.
# Stages grow by issue: data, train, finetune, decode, speed and report rule files join
# workflow/rules/ as they land.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/compress.smk"
include: "workflow/rules/speed.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        get_all_targets(),
