"""Nothing let in: listings cannot write outside the raw directory, a cut download is never
trusted on first use, a wrong record names the re-trust command, and a mirror's own listing is
reported as trusted on first use from that mirror, never as the Hub's word."""
import hashlib
import json

import pytest

import lightformer as lf
from lightformer.cli import main
from lightformer.datasets import download
from lightformer.datasets.sources import CNNDM, Dataset, RemoteFile
from tests.data.test_download import ARCHIVE, SHA, server  # noqa: F401  (the loopback HTTP server)
from tests.data.test_hub import COMMIT, FILES, fake_hub  # noqa: F401
from tests.integrity.helpers import tree_hashes


def _iwslt(srv):
    srv.files["/fairseq/de-en.tgz"] = ARCHIVE
    return Dataset("iwslt14", (RemoteFile("de-en.tgz", f"http://127.0.0.1:{srv.server_port}/fairseq/de-en.tgz"),))


def test_truncated_download_without_content_length_is_not_trusted(server, tmp_path):  # noqa: F811
    server.no_length_cut = len(ARCHIVE) // 2
    with pytest.raises(lf.LightformerError, match="de-en.tgz is incomplete or not a valid tgz file.*not recorded"):
        download.fetch(_iwslt(server), tmp_path, progress=False)
    assert download.read_manifest(tmp_path / "iwslt14/raw")["files"] == {}
    assert not list((tmp_path / "iwslt14/raw").glob("de-en.tgz*"))
    server.no_length_cut = 0  # the good file is then accepted and recorded
    download.fetch(_iwslt(server), tmp_path, progress=False)
    assert download.read_manifest(tmp_path / "iwslt14/raw")["files"]["de-en.tgz"]["sha256"] == SHA


def test_a_wrong_record_names_retrust_which_records_the_good_file(server, tmp_path, capsys):  # noqa: F811
    ds = _iwslt(server)
    raw = tmp_path / "iwslt14/raw"
    raw.mkdir(parents=True)
    download.write_manifest(raw, {"files": {"de-en.tgz": {"sha256": "f" * 64, "bytes": len(ARCHIVE),
                                                          "verified_against": "recorded now (trust on first use)"}}})
    with pytest.raises(lf.LightformerError, match="lightformer data fetch iwslt14 --retrust"):
        download.fetch(ds, tmp_path, progress=False)
    root = str(tmp_path)
    server.files["/mirror/iwslt14/de-en.tgz"] = ARCHIVE
    mirror = f"http://127.0.0.1:{server.server_port}/mirror"
    assert main(["data", "fetch", "iwslt14", "--root", root, "--mirror", mirror, "--retrust"]) == 0
    assert download.read_manifest(raw)["files"]["de-en.tgz"]["sha256"] == SHA
    assert "set aside (--retrust)" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["../escape.parquet", "/tmp/abs.parquet", "3.0.0/../../x.parquet"])
def test_a_mirror_listing_with_an_escaping_path_is_refused(tmp_path, bad, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    mirror = tmp_path / "mirror/cnndm"
    mirror.mkdir(parents=True)
    (mirror / "hub.json").write_text(json.dumps({"repo": CNNDM.hub.repo, "commit": COMMIT, "files": [
        {"path": bad, "size": 3, "sha256": hashlib.sha256(b"abc").hexdigest()}]}))
    before = tree_hashes(tmp_path)
    with pytest.raises(lf.LightformerError, match="would be written outside"):
        download.fetch(CNNDM, tmp_path / "data", mirror=str(tmp_path / "mirror"), progress=False)
    after = {k: v for k, v in tree_hashes(tmp_path).items() if "/data/" not in k}
    assert after == before and not (tmp_path / "escape.parquet").exists()


def test_a_hub_api_listing_with_an_escaping_path_is_refused(fake_hub, tmp_path):  # noqa: F811
    key = f"/api/datasets/{CNNDM.hub.repo}/revision/main?blobs=true"
    listing = json.loads(fake_hub.files[key])
    listing["siblings"][1]["rfilename"] = "3.0.0/../../../evil.parquet"
    fake_hub.files[key] = json.dumps(listing).encode()
    with pytest.raises(lf.LightformerError, match="evil.parquet.*would be written outside"):
        download.fetch(CNNDM, tmp_path / "data", progress=False)
    assert not list(tmp_path.rglob("evil.parquet"))


def test_a_manifest_entry_that_escapes_is_refused(tmp_path):
    raw = tmp_path / "iwslt14/raw"
    raw.mkdir(parents=True)
    download.write_manifest(raw, {"files": {"../../outside": {"sha256": "0" * 64, "bytes": 1}}})
    with pytest.raises(lf.LightformerError, match="would be written outside"):
        download.forget_recorded(Dataset("iwslt14", ()), raw)


def test_a_mirror_listing_is_reported_as_trust_on_first_use_from_that_mirror(fake_hub, tmp_path, monkeypatch,  # noqa: F811
                                                                             capsys):
    download.fetch(CNNDM, tmp_path / "online", progress=False)
    download.mirror_to(CNNDM, tmp_path / "online", tmp_path / "mirror")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    download.fetch(CNNDM, tmp_path / "offline", mirror=str(tmp_path / "mirror"), progress=False)
    assert "only that mirror vouches for them" in capsys.readouterr().out
    manifest = download.read_manifest(tmp_path / "offline/cnndm/raw")
    assert all(r["verified_against"].startswith("trust on first use: the listing in") for r in manifest["files"].values())
    assert all("Hub sha256" not in line and "trust on first use" in line
               for line in download.verify(CNNDM, tmp_path / "offline"))
    online = download.read_manifest(tmp_path / "online/cnndm/raw")
    assert all(r["verified_against"].startswith("Hub sha256 at") for r in online["files"].values())


def test_a_mirror_without_its_listing_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    (tmp_path / "mirror/cnndm").mkdir(parents=True)
    with pytest.raises(lf.LightformerError, match="the mirror has no listing for cnndm .*hub.json is missing"):
        download.fetch(CNNDM, tmp_path / "data", mirror=str(tmp_path / "mirror"), progress=False)
