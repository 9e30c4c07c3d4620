"""Downloads complete and honest on every format, and refusals without side effects: a 206 from
the wrong offset, a text file without a length, --retrust with the source gone, DDTP re-trust and
a DDTP manifest that points outside the mirror."""
import json
import lzma

import pytest

import lightformer as lf
from lightformer.datasets import ddtp, download, pipeline
from lightformer.datasets.sources import Dataset, RemoteFile
from lightformer.io import file_sha256
from tests.data.test_ddtp import DE, EN, MD5, apt_lists
from tests.data.test_download import ARCHIVE, SHA, server  # noqa: F401  (the loopback HTTP server)
from tests.integrity.helpers import refused, tree_hashes


def test_a_206_from_another_offset_is_not_appended(server, tmp_path):  # noqa: F811
    payload = bytes(range(256)) * 4096
    server.files["/big.tgz"] = payload
    url = f"http://127.0.0.1:{server.server_port}/big.tgz"
    ds = Dataset("big", (RemoteFile("big.tgz", url),))
    part = tmp_path / "big/raw/big.tgz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(payload[:100_000])  # an earlier, cut download
    server.range_from_zero = True
    with pytest.raises(lf.LightformerError, match="answered 206 with Content-Range 'bytes 0-"):
        download.fetch(ds, tmp_path, progress=False)
    assert not part.exists() and download.read_manifest(tmp_path / "big/raw")["files"] == {}


def test_plain_text_without_a_length_is_not_trusted_on_first_use(server, tmp_path):  # noqa: F811
    text = b"ein satz\n" * 1000
    server.files["/train.de"] = text
    server.no_length_cut = len(text)  # the whole body, but no Content-Length: nothing shows it is whole
    ds = Dataset("txt", (RemoteFile("train.de", f"http://127.0.0.1:{server.server_port}/train.de"),))
    with pytest.raises(lf.LightformerError, match="no Content-Length, and a de file cannot show it is whole"):
        download.fetch(ds, tmp_path, progress=False)
    assert download.read_manifest(tmp_path / "txt/raw")["files"] == {}
    pinned = Dataset("txt", (RemoteFile("train.de", ds.files[0].url, None, len(text)),))
    assert download.fetch(pinned, tmp_path, progress=False)[0].read_bytes() == text


def test_retrust_with_the_source_gone_keeps_the_old_copy_and_record(server, tmp_path):  # noqa: F811
    server.files["/fairseq/de-en.tgz"] = ARCHIVE
    ds = Dataset("iwslt14", (RemoteFile("de-en.tgz", f"http://127.0.0.1:{server.server_port}/fairseq/de-en.tgz"),))
    download.fetch(ds, tmp_path, progress=False)
    raw = tmp_path / "iwslt14/raw"
    before = tree_hashes(raw)
    del server.files["/fairseq/de-en.tgz"]  # the host now answers 404
    with pytest.raises(lf.LightformerError, match="HTTP 404"):
        download.fetch(ds, tmp_path, progress=False, retrust=True)
    assert tree_hashes(raw) == before and download.read_manifest(raw)["files"]["de-en.tgz"]["sha256"] == SHA
    assert [p.name for p in raw.iterdir() if p.name.startswith(".")] == []


def test_ddtp_retrust_takes_new_bytes_only_when_asked(tmp_path):
    mirror = apt_lists(tmp_path / "m", name="ddtp")
    opts = pipeline.DataOptions(root=str(tmp_path / "d"), mirror=str(tmp_path / "m"))
    pipeline.fetch("ddtp", opts)
    apt_lists(tmp_path / "m", en=EN.replace("small", "tiny"), name="ddtp")
    with pytest.raises(lf.LightformerError, match="--retrust"):
        pipeline.fetch("ddtp", opts)
    pipeline.fetch("ddtp", pipeline.DataOptions(root=str(tmp_path / "d"), mirror=str(tmp_path / "m"), retrust=True))
    en = next(p for p in mirror.iterdir() if "Translation-en" in p.name)
    assert ddtp.verify_ddtp(tmp_path / "d/ddtp/raw")["files"][en.name]["sha256"] == file_sha256(en)


def test_a_ddtp_manifest_entry_outside_the_raw_directory_is_refused_by_mirror(tmp_path):
    apt_lists(tmp_path / "m", name="ddtp")
    root = tmp_path / "d"
    pipeline.fetch("ddtp", pipeline.DataOptions(root=str(root), mirror=str(tmp_path / "m")))
    manifest = json.loads((root / "ddtp/raw/manifest.json").read_text())
    (tmp_path / "outside").write_bytes(lzma.compress(DE.format(**MD5).encode()))
    manifest["files"]["../../outside"] = {"sha256": file_sha256(tmp_path / "outside"), "lang": "de"}
    (root / "ddtp/raw/manifest.json").write_text(json.dumps(manifest))
    refused("data", "mirror", "ddtp", "--root", root, "--to", tmp_path / "mirror2", watch=(tmp_path,),
            expect="would be written outside")
