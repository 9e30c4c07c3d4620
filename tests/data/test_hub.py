"""Hub datasets (CNN/DailyMail, GLUE) against a fake Hub on 127.0.0.1 speaking the real API
(`/api/datasets/<repo>/revision/<rev>?blobs=true`, `/datasets/<repo>/resolve/<commit>/<path>`):
commit resolution and recording, sha256 pins, offline use from the manifest and from a mirror,
then preparation of the Hub-shaped fixtures."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lightformer.cli import main
from lightformer.datasets import download, hub
from lightformer.datasets.cnndm import SEP, prepare_cnndm, read_split
from lightformer.datasets.fixtures import cnndm_parquet, glue_parquet, hub_listing
from lightformer.datasets.glue import prepare_glue
from lightformer.data.indexed import ParallelData
from lightformer.datasets.sources import CNNDM, GLUE
from lightformer.errors import LightformerError
from tests.data.test_download import server  # noqa: F401  (the loopback HTTP server fixture)

FILES = cnndm_parquet(train=30, valid=6, test=5)
COMMIT = hub_listing(CNNDM.hub.repo, FILES)["commit"]


def serve_hub(srv, repo, files, commit, revision="main"):
    """Register the API listing and the resolve URLs the real Hub serves."""
    listing = {"id": repo, "sha": commit, "siblings": [{"rfilename": "README.md", "size": 10}] + [
        {"rfilename": p, "size": len(d), "lfs": {"sha256": e["sha256"], "size": len(d)}}
        for (p, d), e in zip(sorted(files.items()), hub_listing(repo, files)["files"])]}
    for rev in {revision, commit}:
        srv.files[f"/api/datasets/{repo}/revision/{rev}?blobs=true"] = json.dumps(listing).encode()
    for p, d in files.items():
        srv.files[f"/datasets/{repo}/resolve/{commit}/{p}"] = d


@pytest.fixture
def fake_hub(server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    serve_hub(server, CNNDM.hub.repo, FILES, COMMIT)
    return server


def test_branch_is_resolved_recorded_and_later_fetches_need_no_hub(fake_hub, tmp_path, capsys, monkeypatch):
    paths = download.fetch(CNNDM, tmp_path, progress=False)
    assert sorted(p.relative_to(tmp_path / "cnndm/raw").as_posix() for p in paths) == sorted(FILES)
    assert f"resolved to commit {COMMIT}" in capsys.readouterr().out
    manifest = download.read_manifest(tmp_path / "cnndm/raw")
    assert manifest["hub"]["commit"] == COMMIT and manifest["hub"]["repo"] == "abisee/cnn_dailymail"
    assert all(f"/resolve/{COMMIT}/" in rec["url"] for rec in manifest["files"].values())  # never the branch
    assert "README.md" not in json.dumps(manifest)  # only the config's parquet
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the Hub is gone
    assert download.fetch(CNNDM, tmp_path, progress=False) == paths
    assert all("OK (Hub sha256 at abisee/cnn_dailymail@" in line for line in download.verify(CNNDM, tmp_path))


def test_pinned_commit_that_the_hub_does_not_serve_is_refused(fake_hub, tmp_path):
    other = "0" * 40
    fake_hub.files[f"/api/datasets/{CNNDM.hub.repo}/revision/{other}?blobs=true"] = \
        fake_hub.files[f"/api/datasets/{CNNDM.hub.repo}/revision/main?blobs=true"]
    pinned = CNNDM.__class__(**{**CNNDM.__dict__, "hub": hub.HubSource(CNNDM.hub.repo, other, ("3.0.0",))})
    with pytest.raises(LightformerError, match=f"is commit {COMMIT}, but abisee/cnn_dailymail is pinned to {other}"):
        download.fetch(pinned, tmp_path, progress=False)


def test_a_file_that_does_not_match_the_hubs_sha256_is_refused_and_removed(fake_hub, tmp_path):
    path = "3.0.0/test-00000-of-00001.parquet"
    fake_hub.files[f"/datasets/{CNNDM.hub.repo}/resolve/{COMMIT}/{path}"] = b"x" * len(FILES[path])
    with pytest.raises(LightformerError, match="checksum mismatch for 3.0.0/test-00000-of-00001.parquet"):
        download.fetch(CNNDM, tmp_path, progress=False)
    assert not (tmp_path / "cnndm/raw" / path).exists() and not list((tmp_path / "cnndm/raw").rglob("*.part"))


def test_mirror_carries_the_listing_so_an_offline_node_can_fetch(fake_hub, tmp_path, monkeypatch):
    download.fetch(CNNDM, tmp_path / "online", progress=False)
    download.mirror_to(CNNDM, tmp_path / "online", tmp_path / "mirror")
    assert json.loads((tmp_path / "mirror/cnndm/hub.json").read_text())["commit"] == COMMIT
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    paths = download.fetch(CNNDM, tmp_path / "offline", mirror=str(tmp_path / "mirror"), progress=False)
    assert len(paths) == len(FILES) and download.read_manifest(tmp_path / "offline/cnndm/raw")["hub"]["commit"] == COMMIT


def test_offline_without_mirror_names_the_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("LIGHTFORMER_MIRROR", raising=False)
    with pytest.raises(LightformerError, match="cannot reach the Hub for abisee/cnn_dailymail@main.*--mirror.*HF_ENDPOINT"):
        download.fetch(CNNDM, tmp_path, progress=False)


def test_cli_embedded_fixtures_fetch_verify_prepare(tmp_path, capsys):
    assert main(["data", "fixtures", "--out", str(tmp_path / "mirror")]) in (0, None)
    for name in ("cnndm", "glue"):
        args = ["--root", str(tmp_path / "data")]
        assert main(["data", "fetch", name, *args, "--mirror", str(tmp_path / "mirror"), "--embedded"]) in (0, None)
        assert main(["data", "verify", name, *args]) in (0, None)
        assert main(["data", "prepare", name, *args, "--bpe-merges", "300", "--no-expected"]) in (0, None)
    out = capsys.readouterr().out
    assert "cnndm/prepared: train 900, valid 100, test 100" in out
    assert "mnli/validation_mismatched 100" in out
    data = ParallelData(tmp_path / "data/cnndm/prepared")
    assert data.src_dict.symbols == data.tgt_dict.symbols and SEP in data.tgt_dict.symbols  # joined, <q> whole


def test_cnndm_truncation_separator_and_references(tmp_path):
    raw = tmp_path / "raw"
    for p, d in FILES.items():
        (raw / p).parent.mkdir(parents=True, exist_ok=True)
        (raw / p).write_bytes(d)
    articles, highlights = read_split(raw, "train")
    assert len(articles) == 30  # three shards, in order
    counts = prepare_cnndm(raw, tmp_path / "out", bpe_merges=50, src_max_tokens=12, tgt_max_tokens=9)
    assert counts["train"] == 30 and counts["test"] == 5
    data = ParallelData(tmp_path / "out")
    src, tgt = data.split("train")
    assert max(src.sizes) <= 12 * 4 + 1  # <= 12 tokens before BPE (+ EOS); BPE may split each
    refs = [json.loads(x) for x in open(tmp_path / "out/test.ref.jsonl")]
    assert refs == read_split(raw, "test")[1] and all("\n" in r for r in refs)
    summary = data.tgt_dict.decode(tgt[0].tolist(), bpe_symbol="@@ ")
    assert summary.count(SEP) == 1  # two highlight sentences, one separator (truncated at 9 tokens)


def test_cnndm_wrong_columns_are_named(tmp_path):
    (tmp_path / "3.0.0").mkdir()
    pq.write_table(pa.table({"text": ["a"], "summary": ["b"]}), tmp_path / "3.0.0/train-00000-of-00001.parquet")
    with pytest.raises(LightformerError, match=r"columns \['article', 'highlights'\] missing"):
        read_split(tmp_path, "train")


def test_glue_labels_are_checked_and_unknown_tasks_refused(tmp_path):
    raw = tmp_path / "raw"
    for p, d in glue_parquet(train=20, valid=10, test=5).items():
        (raw / p).parent.mkdir(parents=True, exist_ok=True)
        (raw / p).write_bytes(d)
    counts = prepare_glue(raw, tmp_path / "out", tasks=("mnli", "stsb"),
                          expected={"mnli/validation_matched": 10, "stsb/validation": 11})
    assert counts["drift"] == {"mnli/validation_matched": 0, "stsb/validation": -1}
    row = json.loads(open(tmp_path / "out/stsb/validation.jsonl").readline())
    assert set(row) == {"sentence1", "sentence2", "label"} and 0.0 <= row["label"] <= 5.0
    pq.write_table(pa.table({"sentence": ["a", "b"], "label": [0, 7], "idx": [0, 1]}),
                   raw / "cola/train-00000-of-00001.parquet")
    with pytest.raises(LightformerError, match=r"cola train: unexpected labels \[7\]"):
        prepare_glue(raw, tmp_path / "out", tasks=("cola",))
    with pytest.raises(LightformerError, match="unknown GLUE task 'sst5'"):
        prepare_glue(raw, tmp_path / "out", tasks=("sst5",))
    assert GLUE.hub.folders == ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")


def test_wmt14_from_the_hubs_parquet_goes_through_the_same_recipe(tmp_path, capsys):
    assert main(["data", "fixtures", "--out", str(tmp_path / "mirror")]) in (0, None)
    args = ["--root", str(tmp_path / "data")]
    assert main(["data", "fetch", "wmt14_hub", *args, "--mirror", str(tmp_path / "mirror"), "--embedded"]) in (0, None)
    assert main(["data", "prepare", "wmt14_hub", *args, "--bpe-merges", "200", "--no-expected"]) in (0, None)
    assert "wmt14_hub/prepared: train 1,100, valid 120, test 100" in capsys.readouterr().out
    meta = json.loads((tmp_path / "data/wmt14_hub/prepared/meta.json").read_text())
    assert meta["source"] == "hub" and meta["joined_dictionary"]
