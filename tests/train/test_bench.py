"""The training benchmark: model FLOPs from module shapes agree with PyTorch's own FLOP counter,
the Hugging Face peer has exactly our trainable parameters, and the reduced CPU run writes rows
whose numbers follow from what was timed."""
import csv

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import lightformer as lf
from lightformer.cli import main
from lightformer.errors import LightformerError
from lightformer.models.losses import label_smoothed_nll_loss
from lightformer.train.bench import TrainBenchConfig, bench_train, marian_like, synthetic_batches
from lightformer.train.flops import step_macs


def tiny(**kw):
    return lf.build_model("transformer_tiny", 60, 50, seed=1, share_decoder_input_output_embed=True, **kw)


@pytest.mark.parametrize("make", [
    lambda: tiny(),
    lambda: lf.build_model("transformer_tiny", 60, 50, seed=1),  # separate output projection
    lambda: lf.compress(tiny(), ratio=2.0, init="random"),
    lambda: lf.compress(tiny(), ratio=3.0, share_layers=2, share_qkv=True, init="random"),
    lambda: lf.compress(tiny(), ratio=2.0, roles=["body", "embeddings"], init="random"),
])
def test_model_flops_match_pytorchs_flop_counter_on_an_unpadded_step(make):
    model = make().train()
    B, S, T = 3, 9, 7
    src, prev, tgt = torch.randint(4, 60, (B, S)), torch.randint(4, 50, (B, T)), torch.randint(4, 50, (B, T))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:  # attention as counted matmuls
        loss, _ = label_smoothed_nll_loss(model(src, prev), tgt, 0.1)
        loss.backward()
    assert step_macs(model).train_flops([S] * B, [T] * B) == counter.get_total_flops()


@pytest.mark.parametrize("share", [{"share_decoder_input_output_embed": True}, {"share_all_embeddings": True}])
def test_the_hugging_face_peer_has_exactly_our_trainable_parameters(share):
    vocab = (60, 60) if "share_all_embeddings" in share else (60, 50)
    ours = lf.build_model("transformer_tiny", *vocab, seed=1, **share)
    peer = marian_like(ours)
    assert sum(p.numel() for p in peer.parameters() if p.requires_grad) == sum(p.numel() for p in ours.parameters())


def test_synthetic_batches_respect_max_tokens_and_record_true_lengths():
    batches = synthetic_batches(60, 50, TrainBenchConfig(max_tokens=300), 6)
    assert len(batches) == 6
    for b in batches:
        assert max(b["src_tokens"].numel(), b["target"].numel()) <= 300
        assert b["ntokens"] == sum(b["tgt_lens"]) == int(b["target"].ne(1).sum())
        assert sorted(b["src_lens"]) == sorted(int(n) for n in b["src_tokens"].ne(1).sum(1))


def bench_dense_and_light(tmp_path, out, *options) -> int:
    """`lightformer bench train` on CPU of a tiny dense checkpoint and its 2x LightFormer."""
    dense = tiny()
    lf.save_checkpoint(dense, tmp_path / "dense.safetensors")
    lf.save_checkpoint(lf.compress(dense, ratio=2.0, init="random"), tmp_path / "light.safetensors")
    return main(["bench", "train", str(tmp_path / "dense.safetensors"), str(tmp_path / "light.safetensors"),
                 "--device", "cpu", "--dtype", "fp32", "--max-tokens", "256", "--warmup", "1", "--out", str(out),
                 *options])


def test_reduced_cpu_run_writes_rows_that_follow_from_the_timing(tmp_path, capsys):
    out = tmp_path / "train.csv"
    assert bench_dense_and_light(tmp_path, out, "--steps", "3", "--peak-tflops", "1") == 0
    rows = list(csv.DictReader(open(out)))
    assert [(r["model"], r["engine"]) for r in rows] == [("dense", "lightformer"), ("dense", "transformers"),
                                                        ("light", "lightformer")]
    for r in rows:
        tflops = float(r["model_flops_per_token"]) * float(r["tokens_per_s"]) / 1e12
        assert float(r["tflops"]) == pytest.approx(tflops) and float(r["mfu"]) == pytest.approx(tflops)
        assert r["command"].startswith("lightformer bench train ") and "--max-tokens 256" in r["command"]
    assert rows[0]["target_tokens"] == rows[1]["target_tokens"] and rows[0]["params"] == rows[1]["params"]
    assert float(rows[2]["model_flops_per_token"]) < float(rows[0]["model_flops_per_token"])
    assert "MFU" in capsys.readouterr().out


def test_refusals(tmp_path, capsys):
    with pytest.raises(LightformerError, match="bf16 training is timed on GPU only"):
        bench_train({"m": tiny()}, TrainBenchConfig(dtype="bf16"), torch.device("cpu"))
    assert main(["bench", "train", "--paper-size", "iwslt14", "x.safetensors", "--device", "cpu"]) == 2
    assert "not both" in capsys.readouterr().err


def test_plan_cost_counts_every_training_run_of_the_paper_grid_and_prices_it_by_measurement(tmp_path, capsys):
    import yaml

    from lightformer.train.cost import plan_cost

    def row(arch, kind, lengths, tok_s, loss="fused", compiled="False"):  # 8,000 target tokens, 4 steps, 4096
        return {"arch": arch, "kind": kind, "engine": "lightformer", "lengths": lengths, "target_tokens": "8000",
                "steps": "4", "max_tokens": "4096", "tokens_per_s": str(tok_s), "device_name": "GPU X",
                "device": "cuda", "dtype": "bf16", "loss": loss, "compile": compiled}

    pairs = (("transformer_iwslt_de_en", "iwslt14"), ("transformer_wmt_en_de", "wmt14"))
    # rows timed otherwise than training runs by default come first and must not be picked
    decoys = [row(a, "dense", ln, t, *how) for a, ln in pairs for t, how in ((1, ("dense",)), (9e9, ("fused", "True")))]
    rows = decoys + [row(a, k, ln, t) for a, ln in pairs for k, t in (("dense", 100_000), ("lightformer", 125_000))]
    config = yaml.safe_load(open("workflow/configs/paper.yaml"))
    cost = plan_cost(config, rows)
    # the same runs the Snakemake dry-run plans (tests/workflow: 9 baselines, 48 x 3 fine-tunes)
    assert sum(r["runs"] for r in cost if r["stage"] == "baseline") == 9
    assert sum(r["runs"] for r in cost if r["stage"] == "fine-tune") == 48 * 3
    wmt = next(r for r in cost if (r["task"], r["stage"]) == ("wmt14", "baseline"))
    # 2,000 target tokens per 4,096-token batch, update_freq 8, 100k updates, 3 seeds, at 100k tok/s
    assert wmt["tokens_per_update"] == 16_000 and wmt["device_hours"] == pytest.approx(3 * 16_000 * 100_000 / 1e5 / 3600)
    cnndm = next(r for r in cost if (r["task"], r["stage"]) == ("cnndm", "baseline"))
    assert "timed on wmt14-like sentence lengths" in cnndm["note"]
    assert cost[-1]["device_hours"] == pytest.approx(sum(r["device_hours"] for r in cost[:-1]))
    with pytest.raises(LightformerError, match="no measured lightformer row for transformer_iwslt_de_en"):
        plan_cost(config, [r for r in rows if r["kind"] == "dense"])
    assert plan_cost(config, rows[len(decoys):]) == cost


def test_plan_cost_from_a_measured_cpu_bench_with_random_init_at_the_baseline_budget(tmp_path, capsys):
    import yaml

    bench = tmp_path / "bench.csv"
    assert bench_dense_and_light(tmp_path, bench, "--steps", "2", "--no-hf") == 0
    config = {"seeds": [1, 2], "tasks": {"toy": {
        "dataset": "iwslt14", "train": {"recipe": "synthetic", "overrides": {"max_updates": 300}},
        "finetune": {"recipe": "synthetic", "overrides": {"max_updates": 50}},
        "grid": {"ratio": [2.0], "share_layers": [1, 2], "init": ["svd", "random_full"]}}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["plan-cost", str(tmp_path / "c.yaml"), "--bench", str(bench), "--out", str(tmp_path / "cost.csv")]) == 0
    rows = {r["stage"]: r for r in csv.DictReader(open(tmp_path / "cost.csv"))}
    assert (rows["baseline"]["runs"], rows["fine-tune"]["runs"], rows["variants on the baseline's budget"]["runs"]) == \
        ("2", "4", "4")
    measured = {r["kind"]: r for r in csv.DictReader(open(bench))}
    per_batch = float(measured["dense"]["target_tokens"]) / 2 * 1024 / 256  # the synthetic recipe: max_tokens 1024
    assert float(rows["baseline"]["device_hours"]) == pytest.approx(
        2 * 300 * per_batch / float(measured["dense"]["tokens_per_s"]) / 3600, rel=1e-3)
    assert "training steps only" in capsys.readouterr().out

def test_padding_to_a_multiple_of_8_leaves_the_loss_unchanged():
    from lightformer.data.batching import collate

    model = tiny().eval()
    g = torch.Generator().manual_seed(3)
    src = [torch.randint(4, 60, (n,), generator=g) for n in (5, 9, 3)]
    tgt = [torch.randint(4, 50, (n,), generator=g) for n in (4, 7, 6)]
    losses = []
    for pad_to in (1, 8):
        b = collate(src, tgt, pad_to)
        assert b["src_tokens"].size(1) % pad_to == 0 and b["target"].size(1) % pad_to == 0
        with torch.no_grad():
            loss, nll = label_smoothed_nll_loss(model(b["src_tokens"], b["prev_output_tokens"]), b["target"], 0.1)
        losses.append((float(loss), float(nll)))
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_update_tokens_keeps_the_recipes_batch_when_max_tokens_grows():
    from lightformer.train.recipes import load_train_config

    base = load_train_config("wmt_en_de_base", None, [])
    assert base.effective_update_freq() == 8  # 8 x 4,096 tokens per update
    big = load_train_config("wmt_en_de_base", None, ["max_tokens=16384", "update_tokens=32768"])
    assert big.effective_update_freq() == 2 and big.effective_update_freq(ranks=2) == 1
    assert load_train_config(None, None, ["max_tokens=3000", "update_tokens=32768"]).effective_update_freq() == 11
    with pytest.raises(LightformerError, match="update_tokens"):
        load_train_config(None, None, ["update_tokens=-1"])


def test_attention_kernels_are_reported_per_row_and_say_cpu_here(tmp_path):
    rows = bench_train({"m": tiny()}, TrainBenchConfig(device="cpu", dtype="fp32", max_tokens=128, steps=1, warmup=0,
                                                       hf=False), torch.device("cpu"))
    assert rows[0]["attention_kernels"] == "cpu"
