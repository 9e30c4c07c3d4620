"""GLUE classifiers: LightFormer on BERT (full-rank transfer is exact, shared factors stored
once, checkpoints rebuild the compressed model), metrics against scikit-learn/scipy, a tiny BERT
that learns the embedded tasks, and a fetched (fake-Hub) BERT used as the baseline."""
import json

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

from lightformer.cli import main
from lightformer.compress.bert import compress_bert, dense_params
from lightformer.datasets.fixtures import hub_listing
from lightformer.datasets.sources import BERT_BASE_UNCASED
from lightformer.errors import LightformerError
from lightformer.glue.metrics import glue_average, glue_metrics
from lightformer.glue.model import load_classifier, save_classifier
from tests.data.test_download import server  # noqa: F401


def tiny(num_labels=3, layers=4):
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=32, num_labels=num_labels)
    return BertForSequenceClassification(cfg).eval()


def test_full_rank_transfer_reproduces_bert_logits_also_with_shared_groups():
    model = tiny()
    x = torch.randint(1, 60, (4, 12))
    for options in ({"rank": 32, "roles": ["body"]}, {"rank": {"attention": 32, "enc_ffn_in": 32, "enc_ffn_out": 64}, "share_layers": 2},
                    {"rank": 32, "roles": ["body", "src_embed"]}):
        light = compress_bert(model, options).eval()
        with torch.no_grad():
            assert torch.allclose(model(x).logits, light(x).logits, atol=1e-5), options


def test_ratio_sharing_and_checkpoint_round_trip(tmp_path):
    model = tiny()
    light = compress_bert(model, ratio=2.0, share_layers=2, share_qkv=True)
    assert dense_params(model) / dense_params(light) >= 2.0 == light.compression["spec"]["ratio"]
    assert dense_params(light) == light.compression["params"]  # each shared factor counted once
    (tmp_path / "vocab").mkdir()
    (tmp_path / "vocab/vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    save_classifier(light, tmp_path / "ckpt", tmp_path / "vocab", {"task": "mnli"})
    again, meta = load_classifier(tmp_path / "ckpt")
    x = torch.randint(1, 60, (2, 9))
    with torch.no_grad():
        assert torch.equal(light.eval()(x).logits, again.eval()(x).logits)
    assert meta["task"] == "mnli" and dense_params(again) == dense_params(light)
    with pytest.raises(LightformerError, match="already compressed"):
        compress_bert(again, rank=4)


def test_glue_metrics_equal_scikit_learn_and_scipy():
    rng = np.random.default_rng(0)
    pred, gold = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    assert glue_metrics("cola", pred, gold)["scores"]["matthews"] == pytest.approx(100 * matthews_corrcoef(gold, pred))
    mrpc = glue_metrics("mrpc", pred, gold)["scores"]
    assert mrpc["f1"] == pytest.approx(100 * f1_score(gold, pred)) and mrpc["accuracy"] == pytest.approx(
        100 * accuracy_score(gold, pred))
    x, y = rng.random(100) * 5, rng.random(100) * 5
    sts = glue_metrics("stsb", x, y)["scores"]
    assert sts["pearson"] == pytest.approx(100 * stats.pearsonr(x, y)[0])
    assert sts["spearman"] == pytest.approx(100 * stats.spearmanr(x, y)[0])
    per_task = {"mrpc": {"accuracy": 80.0, "f1": 90.0}, "mnli_matched": {"accuracy": 70.0},
                "mnli_mismatched": {"accuracy": 72.0}, "wnli": {"accuracy": 50.0}}
    assert glue_average(per_task) == pytest.approx((85 + 71 + 50) / 3)
    assert glue_average(per_task, exclude=("wnli",)) == pytest.approx((85 + 71) / 2)


def test_tiny_bert_learns_an_embedded_task_and_keeps_it_through_compression(tmp_path, capsys):
    root, mirror = tmp_path / "data", tmp_path / "mirror"
    assert main(["data", "fixtures", "--out", str(mirror)]) == 0
    assert main(["data", "fetch", "glue", "--root", str(root), "--mirror", str(mirror), "--embedded"]) == 0
    assert main(["data", "prepare", "glue", "--root", str(root), "--no-expected"]) == 0
    data = str(root / "glue/prepared")
    assert main(["glue", "init", "--task", "sst2", "--data", data, "--out", str(tmp_path / "init")]) == 0
    assert main(["glue", "train", "--checkpoint", str(tmp_path / "init"), "--data", data, "--out",
                 str(tmp_path / "base"), "lr=1e-3", "epochs=5", "batch_size=16"]) == 0
    base = json.loads((tmp_path / "base/metrics.json").read_text())
    assert base["dev"]["sst2"]["scores"]["accuracy"] > 90  # chance is ~50
    assert main(["compress", str(tmp_path / "base"), "--ratio", "1.5", "--share-layers", "2",
                 "--out", str(tmp_path / "light")]) == 0
    assert main(["glue", "train", "--checkpoint", str(tmp_path / "light"), "--data", data, "--out",
                 str(tmp_path / "ft"), "lr=5e-4", "epochs=1", "batch_size=16"]) == 0
    ft = json.loads((tmp_path / "ft/metrics.json").read_text())
    assert ft["dev"]["sst2"]["scores"]["accuracy"] > 90 and base["params"] / ft["params"] >= 1.5
    assert main(["glue", "init", "--task", "sst5", "--data", data, "--out", str(tmp_path / "x")]) == 2
    assert "unknown GLUE task 'sst5'" in capsys.readouterr().err


def test_bert_is_fetched_like_a_dataset_and_becomes_a_classifier(server, tmp_path, monkeypatch, capsys):  # noqa: F811
    """A BERT repository on a fake Hub (the real file names), fetched at a recorded commit."""
    torch.manual_seed(0)
    repo = BERT_BASE_UNCASED.hub.repo
    src = tmp_path / "upstream"
    BertForMaskedLM(BertConfig(vocab_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=32)).save_pretrained(src)
    (src / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\n.\n")
    files = {p.name: p.read_bytes() for p in src.iterdir() if p.name in ("config.json", "model.safetensors", "vocab.txt")}
    listing = hub_listing(repo, files)
    api = {"sha": listing["commit"], "siblings": [{"rfilename": f["path"], "size": f["size"],
                                                   **({"lfs": {"sha256": f["sha256"], "size": f["size"]}}
                                                      if f["path"].endswith(".safetensors") else {})}
                                                  for f in listing["files"]] + [{"rfilename": "flax_model.msgpack"}]}
    server.files[f"/api/models/{repo}/revision/main?blobs=true"] = json.dumps(api).encode()
    for name, data in files.items():
        server.files[f"/{repo}/resolve/{listing['commit']}/{name}"] = data
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    assert main(["data", "fetch", "bert_base_uncased", "--root", str(tmp_path / "data")]) == 0
    raw = tmp_path / "data/bert_base_uncased/raw"
    assert sorted(p.name for p in raw.iterdir() if p.name != "manifest.json") == sorted(files)
    assert main(["glue", "init", "--task", "mnli", "--pretrained", str(raw), "--out", str(tmp_path / "cls")]) == 0
    model, meta = load_classifier(tmp_path / "cls")
    pretrained = BertForMaskedLM.from_pretrained(src)
    assert model.config.num_labels == 3 and meta["task"] == "mnli"
    assert torch.equal(model.bert.encoder.layer[1].output.dense.weight, pretrained.bert.encoder.layer[1].output.dense.weight)
    assert main(["glue", "init", "--task", "mnli", "--pretrained", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "y")]) == 2
    assert "fetch it with `lightformer data fetch bert_base_uncased`" in capsys.readouterr().err


def test_the_glue_task_list_is_kept_once_and_the_workflow_schema_agrees():
    import yaml

    from lightformer.datasets.glue_tasks import TASKS
    from lightformer.datasets.sources import GLUE
    from lightformer.glue.metrics import SCORED

    schema = yaml.safe_load(open("workflow/schemas/config.schema.yaml"))
    enum = schema["properties"]["glue"]["properties"]["tasks"]["items"]["enum"]
    assert enum == list(TASKS)
    assert {k.split("/")[0] for k in GLUE.expected} == set(TASKS) == set(GLUE.hub.folders)
    assert {"mnli_matched", "mnli_mismatched"} <= set(SCORED)
