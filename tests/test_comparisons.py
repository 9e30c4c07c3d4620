"""The comparison tables read what the runs wrote: updates and FLOPs to the baseline's loss from
curve.csv, the sweep's choice by validation loss, published rows kept apart from ours, and the
third claim decided at equal parameters."""
import pandas as pd

from lightformer.report.convergence import convergence_rows
from lightformer.report.published import lightweight_table
from lightformer.report.tables import _mark_sweep_choice, lightweight_claims


def _curve(path, losses, tok_per_update=1000, flops_per_token=6e6):
    rows = [{"update": 100 * (i + 1), "tokens_seen": 100 * (i + 1) * tok_per_update, "valid_loss": loss,
             "train_tokens_per_s": 1e4, "train_tflops": 1e4 * flops_per_token / 1e12} for i, loss in enumerate(losses)]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_updates_and_flops_to_the_baselines_final_loss(tmp_path):
    curves = {"baseline": [_curve(tmp_path / "baseline/seed1/curve.csv", [6.0, 5.0, 4.0])],
              "r3.8_k1_svd": [_curve(tmp_path / "svd/seed1/curve.csv", [4.5, 4.05], flops_per_token=2e6)],
              "r3.8_k1_random_full": [_curve(tmp_path / "rnd/seed1/curve.csv", [6.9, 6.8, 6.8])]}
    records = {"r3.8_k1_svd": {"record": {"init_label": "svd"}}, "r3.8_k1_random_full": {"init_label": "random_full"}}
    df = convergence_rows(curves, records).set_index("model")
    assert df.loc["baseline", "target_valid_loss"] == 4.1
    assert df.loc["baseline", "updates_to_target"] == 300
    assert df.loc["r3.8_k1_svd", "updates_to_target"] == 200 and df.loc["r3.8_k1_svd", "parent_updates"] == 300
    assert df.loc["r3.8_k1_svd", "train_flops_to_target"] == 200 * 1000 * 2e6
    assert df.loc["r3.8_k1_random_full", "updates_to_target"] == "not reached"
    assert df.loc["r3.8_k1_random_full", "parent_updates"] == 0


def _table():
    rows = [("baseline", "", 1.0, 30.0, None, 40e6, 32e6), ("r3.8_k1_svd", "svd", 3.7, 29.5, None, 10.6e6, 7e6),
            ("dense_small_r3.8", "scratch", 3.7, 28.0, 5.1, 10.7e6, 7e6),
            ("dense_small_r3.8_lr2", "scratch", 3.7, 29.9, 5.3, 10.7e6, 7e6)]
    df = pd.DataFrame([{"model": m, "init": i, "compression": c, "metric_mean": b, "metric_sd": 0.1, "seeds": 3,
                        "valid_loss_best": v, "params_total": t, "params_body": body, "metric_label": "tokenized BLEU",
                        "family": m.removesuffix("_lr2"), "control": "dense_small" if i == "scratch" else None}
                       for m, i, c, b, v, t, body in rows])
    return _mark_sweep_choice(df)


def test_the_sweep_choice_is_by_validation_loss_never_by_the_test_score():
    df = _table().set_index("model")
    # the lr2 point scores higher on test but has the higher validation loss: it is not chosen
    assert df.loc["dense_small_r3.8", "lr_selected"] is True
    assert df.loc["dense_small_r3.8_lr2", "lr_selected"] is False
    claims = lightweight_claims("iwslt14", _table(), "abstract")
    assert len(claims) == 1 and claims[0]["ours"] == "yes" and "29.50 ± 0.10" in claims[0]["note"]


def test_published_rows_keep_their_own_conventions_and_sources():
    table = lightweight_table(_table(), "iwslt14", "iwslt14")
    ours, published = table[table["kind"] != "published"], table[table["kind"] == "published"]
    assert set(ours["model"]) == {"baseline", "r3.8_k1_svd", "dense_small_r3.8"}  # the chosen sweep point only
    assert (ours["params_without_embeddings_m"] < ours["params_with_embeddings_m"]).all()
    assert len(published) and published["source"].str.contains("HAT").all()
    assert published["params_with_embeddings_m"].isna().all()  # HAT counts without embeddings only
    assert lightweight_table(_table(), "ddtp", "ddtp")["kind"].ne("published").all()  # no published DDTP rows
