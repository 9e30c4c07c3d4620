"""The grid has one home (lightformer/grid.py): names, the wildcard, budgets, and the schema's enums
equal to the library's lists, so adding an initialiser or an axis cannot miss a copy."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lightformer import grid
from lightformer.compress.spec import INITS, RANK_ALLOCS
from lightformer.datasets.pipeline import PREPARERS, recipe_default
from lightformer.datasets.sources import DATASETS

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load(open(REPO / "workflow/schemas/config.schema.yaml"))


def test_the_schema_enums_are_the_librarys_lists():
    block = SCHEMA["$defs"]["grid"]["properties"]
    assert block["init"]["items"]["enum"] == list(grid.GRID_INITS)
    assert block["rank_alloc"]["items"]["enum"] == list(RANK_ALLOCS)
    assert block["budget"]["items"]["enum"] == list(grid.BUDGETS)
    datasets = SCHEMA["properties"]["tasks"]["additionalProperties"]["properties"]["dataset"]["enum"]
    assert set(datasets) <= set(DATASETS) | {"ddtp", "text"} and set(datasets) <= set(PREPARERS)
    assert set(grid.GRID_AXES) - {"init"} <= set(block)
    from lightformer.controls import CONTROLS

    assert SCHEMA["$defs"]["controls"]["properties"]["models"]["items"]["enum"] == list(CONTROLS)
    per_model = SCHEMA["$defs"]["controls"]["properties"]["lr_scale"]["oneOf"][1]
    assert per_model["propertyNames"]["enum"] == list(CONTROLS)
    assert set(grid.BLOCKS) <= set(SCHEMA["properties"]["tasks"]["additionalProperties"]["properties"])


def test_names_parse_back_only_through_the_wildcard_and_keep_the_old_spelling():
    block = {"ratio": [2.0, 3.8], "share_layers": [1, 2], "init": ["svd", "random_full", "svd_whiten"],
             "rank_alloc": ["uniform", "whitened_energy"]}
    variants = grid.expand(block)
    assert len(variants) == 2 * 2 * 3 * 2
    full = variants["r3.8_k2_random_full"]
    assert (full.init, full.budget, full.label) == ("random", "full", "random_full")
    assert variants["r2.0_k1_svd_whiten_whitened_energy"].rank_alloc == "whitened_energy"
    pattern = re.compile(grid.wildcard_pattern())
    assert all(pattern.fullmatch(name) for name in variants)
    for bad in ("r2.0_k1_svdd", "r2.0_k1_random_full_full", "r2.0_k_svd", "baseline", "r2.0_k1_svd_energy_x"):
        assert not pattern.fullmatch(bad), bad


def test_budget_is_an_axis_and_recorded():
    variants = grid.expand({"ratio": [2.0], "share_layers": [1], "init": ["svd", "random"],
                            "budget": ["finetune", "full"]})
    assert list(variants) == ["r2.0_k1_svd", "r2.0_k1_svd_full", "r2.0_k1_random", "r2.0_k1_random_full"]
    record = variants["r2.0_k1_svd_full"].record()
    assert record["budget"] == "full" and record["init"] == "svd" and record["variant"] == "r2.0_k1_svd_full"


@pytest.mark.parametrize("kind,merges", [("iwslt14", 10_000), ("wmt14", 40_000), ("cnndm", 20_000), ("ddtp", 8_000)])
def test_each_dataset_keeps_its_own_bpe_default(kind, merges):
    assert recipe_default(kind, "bpe_merges") == merges


def test_the_schemas_command_options_are_the_commands_own():
    """A config block that becomes a command's flags names only options that command has, with no
    default of its own (the library's applies)."""
    from lightformer.cli import build_parser

    def dests(*argv):
        parser = build_parser()
        for word in argv:  # walk down to the subcommand's parser
            parser = next(a for a in parser._actions if a.dest in ("verb", "what", "engine")).choices[word]
        return {a.dest for a in parser._actions} | {s.lstrip("-").replace("-", "_") for a in parser._actions
                                                    for s in a.option_strings}

    task = SCHEMA["properties"]["tasks"]["additionalProperties"]["properties"]
    speed = SCHEMA["properties"]["measure_speed"]["properties"]
    blocks = {("compress",): task["compress"]["properties"], ("generate",): task["generate"]["properties"],
              ("speed",): {k: speed[k] for k in ("dtype", "runs", "warmup", "batch", "sentences", "cuda_graph")}
              | speed["tasks"]["additionalProperties"]["properties"]}
    for argv, props in blocks.items():
        assert set(props) <= dests(*argv), (argv, set(props) - dests(*argv))
        assert not [k for k, v in props.items() if "default" in v], argv


def test_a_task_without_bpe_merges_gets_its_datasets_recipe_in_the_dry_run(tmp_path):
    """Options a config leaves unset are not passed: BPE merges, search, compression and timing
    defaults are the library's (each written once, in its dataclass or prepare function)."""
    config = yaml.safe_load(open(REPO / "config.yaml"))
    for task in config["tasks"].values():
        for key in ("bpe_merges", "generate", "compress"):
            task.pop(key, None)
    config["measure_speed"] = {"threads": 1}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    snakemake = Path(sys.executable).parent / "snakemake"
    r = subprocess.run([str(snakemake), "-s", str(REPO / "Snakefile"), "--configfile", str(path), "--cores", "1",
                        "-n", "-p", "--forceall", "all"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()

    def commands(verb):
        found = [line for line in lines if f"lightformer {verb} " in line]
        assert found, verb
        return found

    assert not any("--bpe-merges" in line for line in commands("data prepare"))
    assert not any(f in line for line in commands("generate") for f in ("--beam", "--lenpen", "--metric"))
    assert not any("--calib-batches" in line for line in commands("compress"))
    assert not any(f in line for line in commands("speed") for f in ("--runs", "--beam", "--src-len", "--batch"))


def test_a_control_sweep_can_differ_per_model():
    """A learning-rate sweep for dense_small without paying it for every sharing pattern; a model the
    mapping leaves out trains once, at the baseline's rate. The schema takes both spellings and
    refuses a model it does not know."""
    import jsonschema

    block = {"models": ["dense_small", "share_all"], "ratio": [3.8], "lr_scale": {"dense_small": [0.5, 1.0, 2.0]}}
    assert sorted(grid.expand_controls(block, [])) == ["dense_small_r3.8", "dense_small_r3.8_lr0.5",
                                                      "dense_small_r3.8_lr2", "share_all"]
    shared = dict(block, lr_scale=[0.5, 1.0])
    assert sorted(grid.expand_controls(shared, [])) == ["dense_small_r3.8", "dense_small_r3.8_lr0.5", "share_all",
                                                       "share_all_lr0.5"]
    schema = dict(SCHEMA["$defs"]["controls"], **{"$defs": SCHEMA["$defs"]})
    for ok in (block, shared):
        jsonschema.validate(ok, schema)
    for bad in ({"share_everything": [1.0]}, {"dense_small": []}, {"dense_small": [0]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(dict(block, lr_scale=bad), schema)
    with pytest.raises(grid.LightformerError, match="share_sandwich, which controls.models does not train"):
        grid.expand_controls(dict(block, lr_scale={"share_sandwich": [0.5]}), [])  # a sweep that would never run
