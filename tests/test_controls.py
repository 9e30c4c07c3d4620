"""Light-weight controls: dense_small matched to a LightFormer's size by the documented rule, counts
with and without embeddings as the published light-weight papers give them, and the workflow
training each from scratch with the baseline's recipe."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lightformer.config import model_config
from lightformer.controls import control_config, control_record, counts, matched_dense, without_embeddings

REPO = Path(__file__).resolve().parents[1]
IWSLT = model_config("transformer_iwslt_de_en", 8848, 6632, share_decoder_input_output_embed=True)


def test_counts_match_the_published_matched_size_example():
    """REFERENCE §9 (fairseq counting): IWSLT dense d 256 / FFN 512, 6+6 layers: 7.9M without
    embeddings, 11.9M with."""
    c = counts(model_config("transformer_iwslt_de_en", 8848, 6632, share_decoder_input_output_embed=True,
                            embed_dim=256, encoder_ffn_dim=512, decoder_ffn_dim=512))
    assert round(without_embeddings(c) / 1e6, 1) == 7.9 and round(c["total"] / 1e6, 1) == 11.9


@pytest.mark.parametrize("ratio", [1.8, 2.0, 3.8])
def test_dense_small_is_the_closest_width_to_the_ratio(ratio):
    small = matched_dense(IWSLT, ratio)
    assert small.embed_dim % 8 == 0 and small.embed_dim % small.encoder_heads == 0
    assert small.encoder_ffn_dim == 2 * small.embed_dim  # the preset's FFN-to-width ratio kept
    target = counts(IWSLT)["total"] / ratio
    got = counts(small)["total"]
    for d in (small.embed_dim - 8, small.embed_dim + 8):  # no neighbouring width is closer
        other = model_config("transformer_iwslt_de_en", 8848, 6632, share_decoder_input_output_embed=True,
                             embed_dim=d, encoder_ffn_dim=2 * d, decoder_ffn_dim=2 * d)
        assert abs(got - target) <= abs(counts(other)["total"] - target)
    record = control_record("dense_small", IWSLT, small, ratio)
    assert record["params"] == got and record["params_without_embeddings"] < got
    assert abs(record["ratio"] - ratio) / ratio < 0.05


def test_sharing_controls_cut_parameters_not_layers():
    for control, fewer in (("share_all", 2.9), ("share_sandwich", 1.6), ("share_cycle_rev", 1.6)):
        cfg = control_config(IWSLT, control)
        assert cfg.encoder_layers == 6 and control_record(control, IWSLT, cfg, None)["ratio"] > fewer


def test_the_workflow_trains_controls_from_scratch_with_the_baselines_recipe(tmp_path):
    config = yaml.safe_load(open(REPO / "tests/workflow/tiny.yaml"))
    task = next(iter(config["tasks"]))
    config["tasks"][task]["controls"] = {"models": ["dense_small", "share_all"], "lr_scale": [0.5, 1.0]}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    r = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "Snakefile"), "--configfile",
                        str(path), "--cores", "1", "-n", "-p", "all"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ratios = config["tasks"][task]["grid"]["ratio"]
    names = {f"dense_small_r{x}{s}" for x in ratios for s in ("_lr0.5", "")} | {"share_all", "share_all_lr0.5"}
    trains = [line for line in r.stdout.splitlines() if "lightformer train" in line and "/controls/" in line]
    assert {n for n in names if any(f"/controls/{task}/{n}/" in t for t in trains)} == names
    base = next(line for line in r.stdout.splitlines() if "lightformer train" in line and "/baseline/" in line)
    recipe = base.split("--recipe ")[1].split()[0]
    assert all(f"--recipe {recipe}" in t for t in trains)  # the baseline's recipe and budget, not the fine-tune's
    assert all(("lr=" in t) == ("_lr0.5" in t) for t in trains)
    inits = [line for line in r.stdout.splitlines() if "lightformer control init" in line]
    assert len(inits) == len(names) * len(config["seeds"]) and all(json.loads(i.split("--identity ")[1].split("'")[1])["task"] == task
                                            for i in inits)


def test_the_sizes_docs_controls_quotes():
    """docs/controls.md's dense_small example, as the rule computes it."""
    small = matched_dense(IWSLT, 3.8)
    c = counts(small)
    assert (small.embed_dim, small.encoder_ffn_dim, c["total"], without_embeddings(c)) == (240, 480, 10_667_520, 6_952_320)
    assert counts(IWSLT)["total"] == 39_469_056
