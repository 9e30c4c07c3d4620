"""Speed rows name their task (not the model's variant group), so baselines of different tasks
stay apart in speed.csv and the figure."""
import pandas as pd
import pytest

from lightformer.errors import LightformerError
from lightformer.report.speed_table import load_speed


def test_speed_rows_carry_the_task(tmp_path):
    """The task is each row's own column (speed --task); a path or a model name is never read for it."""
    rows = pd.DataFrame([
        {"model": "baseline", "speedup": 1.0, "checkpoint": "results/train/iwslt14/baseline/seed1/model.safetensors"},
        {"model": "r2.0_k1_svd", "speedup": 2.0,
         "checkpoint": "results/finetune/iwslt14/r2.0_k1_svd/seed1/model.safetensors"},
    ])
    rows.to_csv(tmp_path / "old.csv", index=False)  # written without `speed --task`
    with pytest.raises(LightformerError, match="old.csv'?: rows without a task"):
        load_speed([tmp_path / "old.csv"])
    rows.assign(task=["cnndm", "cnndm"]).to_csv(tmp_path / "new.csv", index=False)
    assert set(load_speed([tmp_path / "new.csv"])["task"]) == {"cnndm"}  # not the iwslt14 of the paths


def test_split_drift_is_shown_or_said_to_be_unchecked(tmp_path):
    import json

    from lightformer.report.tables import data_columns

    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"sentences": {"train": 160_000, "test": 6_750}, "expected": {"train": 160_239,
                                "test": 6_750}, "drift": {"train": -239, "test": 0}}))
    assert data_columns(meta) == {"data_splits": "train 160,000, test 6,750", "split_drift": "train -239"}
    meta.write_text(json.dumps({"sentences": {"train": 10}}))
    assert data_columns(meta)["split_drift"].startswith("not checked")
