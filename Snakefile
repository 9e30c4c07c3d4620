# LightFormer reproduction harness — the workflow entry point.
#
#   snakemake --cores 2 all                       everything the config asks for
#   snakemake results/tables/iwslt14.csv          one table and only what it needs
#
# Stages, one rules file each: data (mirror, fetch, prepare) -> train (baselines) -> compress
# (SVD transfer / random init over the grid) -> finetune -> evaluate (decode + score, params)
# -> speed -> report (tables, figures); GLUE classifiers in glue.smk. Paths: results/<stage>/<task>/<model>/seed<n>/...;
# resumable training state in results/runs/; logs in results/logs/<rule>/, benchmarks in
# results/benchmarks/<rule>/. The rules only wire the `lightformer` CLI; the library does the work.
from snakemake.utils import min_version

min_version("9.0")


# config.yaml (the embedded smoke run) only when no --configfile/--config is given: Snakemake
# merges command-line config files into the directive's recursively, so smoke-run overrides
# (max_updates, ...) would otherwise leak into e.g. workflow/configs/paper.yaml.
if not config:
    try:  # a syntax error named by file and line (Snakemake's own message names neither)
        from lightformer.validate import load_yaml

        load_yaml("config.yaml", "config file")
    except ImportError:
        pass

    configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/compress.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/controls.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/speed.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/glue.smk"


rule all:
    default_target: True
    input:
        get_all_targets(),
