"""Fetch against a real HTTP server on 127.0.0.1 serving the fixture archives: download, resume
after a cut connection, checksum failure, mirrors, offline errors, then preparation."""
import hashlib
import http.server
import json
import socket
import threading

import pytest

import lightformer as lf
from lightformer.cli import main
from lightformer.datasets import download
from lightformer.datasets.archives import seg_lines
from lightformer.datasets.fixtures import iwslt14_archive
from lightformer.data.indexed import ParallelData
from lightformer.datasets.iwslt14 import prepare_iwslt14
from lightformer.datasets.sources import IWSLT14, Dataset, RemoteFile
from lightformer.datasets.text import clean
from lightformer.datasets.text import tokenize_lowercase as tokenize


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.files; honours Range; cuts the first response of a path after cut_after bytes."""

    def do_GET(self):
        srv = self.server
        srv.log.append((self.path, self.headers.get("Range")))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            if srv.range_from_zero:  # a broken server: 206, but the whole file from byte 0
                start = 0
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if srv.no_length_cut:  # no Content-Length, connection closed early: looks complete to a client
            self.end_headers()
            self.wfile.write(body[: srv.no_length_cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut_after and self.path not in srv.cut_done:
            srv.cut_done.add(self.path)
            self.wfile.write(body[: srv.cut_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the connection dies mid-file
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.files, srv.log, srv.cut_after, srv.cut_done, srv.no_length_cut = {}, [], 0, set(), 0
    srv.range_from_zero = False
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


ARCHIVE = iwslt14_archive()
SHA = hashlib.sha256(ARCHIVE).hexdigest()


def _dataset(srv, sha=None, size=None):
    url = f"http://127.0.0.1:{srv.server_port}/fairseq/de-en.tgz"
    srv.files["/fairseq/de-en.tgz"] = ARCHIVE
    return Dataset("iwslt14", (RemoteFile("de-en.tgz", url, sha, size),))


def test_fetch_records_trust_on_first_use_and_verifies_later(server, tmp_path, capsys):
    ds = _dataset(server)
    path = download.fetch(ds, tmp_path, progress=False)[0]
    assert path.read_bytes() == ARCHIVE
    assert "trust on first use" in capsys.readouterr().out
    rec = json.loads((tmp_path / "iwslt14/raw/manifest.json").read_text())["files"]["de-en.tgz"]
    assert rec["sha256"] == SHA and rec["bytes"] == len(ARCHIVE) and rec["url"].endswith("/fairseq/de-en.tgz")
    assert {"lightformer", "requests", "python"} <= set(rec["tools"]) and rec["retrieved"]
    assert download.verify(ds, tmp_path) == [f"{path}: OK (recorded on first use)"]
    path.write_bytes(ARCHIVE[:-1] + b"x")  # the file changes on disk afterwards
    with pytest.raises(lf.LightformerError, match="checksum mismatch for de-en.tgz: expected sha256 " + SHA):
        download.verify(ds, tmp_path)


def test_resume_after_a_cut_connection(server, tmp_path):
    payload = bytes(range(256)) * 4096  # 1 MiB: several network chunks
    server.files["/big.tgz"] = payload
    server.cut_after = 400_000
    ds = Dataset("big", (RemoteFile("big.tgz", f"http://127.0.0.1:{server.server_port}/big.tgz",
                                    hashlib.sha256(payload).hexdigest(), len(payload)),))
    with pytest.raises(lf.LightformerError, match="next fetch resumes it"):
        download.fetch(ds, tmp_path, progress=False)
    part = tmp_path / "big/raw/big.tgz.part"
    have = part.stat().st_size
    assert 0 < have <= 400_000 and not (tmp_path / "big/raw/big.tgz").exists()
    path = download.fetch(ds, tmp_path, progress=False)[0]
    assert path.read_bytes() == payload and not part.exists()
    assert server.log[-1] == ("/big.tgz", f"bytes={have}-")  # resumed where it stopped, not restarted


def test_checksum_failure_names_file_expected_actual_and_leaves_nothing(server, tmp_path):
    ds = _dataset(server, "0" * 64)
    with pytest.raises(lf.LightformerError) as err:
        download.fetch(ds, tmp_path, progress=False)
    msg = str(err.value)
    assert "de-en.tgz" in msg and "0" * 64 in msg and SHA in msg and "delete" in msg
    assert list((tmp_path / "iwslt14/raw").glob("de-en.tgz*")) == []


def test_wrong_size_is_refused(server, tmp_path):
    with pytest.raises(lf.LightformerError, match=f"{len(ARCHIVE):,} bytes, expected 12"):
        download.fetch(_dataset(server, None, 12), tmp_path, progress=False)


def test_http_and_directory_mirrors_replace_every_url(server, tmp_path):
    server.files["/mirror/iwslt14/de-en.tgz"] = ARCHIVE
    ds = Dataset("iwslt14", (RemoteFile("de-en.tgz", "http://unreachable.invalid/de-en.tgz", SHA),))
    path = download.fetch(ds, tmp_path / "a", mirror=f"http://127.0.0.1:{server.server_port}/mirror", progress=False)[0]
    assert path.read_bytes() == ARCHIVE
    assert download.mirror_to(ds, tmp_path / "a", tmp_path / "m") == [tmp_path / "m/iwslt14/de-en.tgz",
                                                                        tmp_path / "m/iwslt14/SHA256SUMS"]
    assert (tmp_path / "m/iwslt14/SHA256SUMS").read_text() == f"{SHA}  de-en.tgz\n"
    again = download.fetch(ds, tmp_path / "b", mirror=str(tmp_path / "m"), progress=False)[0]
    assert again.read_bytes() == ARCHIVE


def test_offline_without_mirror_names_the_file_and_the_setting(tmp_path, monkeypatch):
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ds = Dataset("iwslt14", (RemoteFile("de-en.tgz", f"http://127.0.0.1:{port}/de-en.tgz"),))
    with pytest.raises(lf.LightformerError, match=r"cannot download .*--mirror DIR\|URL \(or LIGHTFORMER_MIRROR\).*"
                                                  r"iwslt14/de-en.tgz"):
        download.fetch(ds, tmp_path, progress=False, )
    with pytest.raises(lf.LightformerError, match="not in the mirror"):
        download.fetch(ds, tmp_path, mirror=str(tmp_path / "empty"), progress=False)


def test_cli_fetch_verify_prepare_from_a_mirror(tmp_path, capsys):
    assert main(["data", "fixtures", "--out", str(tmp_path / "mirror")]) == 0
    assert main(["data", "fetch", "iwslt14", "--root", str(tmp_path / "d"), "--mirror", str(tmp_path / "mirror")]) == 0
    assert main(["data", "prepare", "iwslt14", "--root", str(tmp_path / "d"), "--bpe-merges", "300",
                 "--no-expected"]) == 0
    data = ParallelData(tmp_path / "d/iwslt14/prepared")
    # the fixture was built with 1,200 text lines (30 talks x 40) and 5 x 20 test segments
    assert {k: len(data.split(k)[0]) for k in ("train", "valid", "test")} == {"train": 1148, "valid": 52, "test": 100}
    assert len(data.src_dict) % 8 == 0 and data.src_dict.symbols[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert main(["data", "prepare", "wmt14", "--root", str(tmp_path / "d")]) == 2  # not fetched: clear error


def test_archive_errors(tmp_path):
    bad = tmp_path / "de-en.tgz"
    bad.write_bytes(ARCHIVE[: len(ARCHIVE) // 2])
    with pytest.raises(lf.LightformerError, match="truncated or damaged"):
        prepare_iwslt14(bad, tmp_path / "out", progress=False)
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("de-en/README")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    bad.write_bytes(buf.getvalue())
    with pytest.raises(lf.LightformerError, match="wrong layout: missing train.tags.de-en.de"):
        prepare_iwslt14(bad, tmp_path / "out", progress=False)


def test_recipe_steps_on_known_sentences():
    # Moses tokenizer.perl -l de (no -a, escaping on) + lowercase, as fairseq's script
    assert tokenize(["Das ist ein Test, oder?"], "de") == ["das ist ein test , oder ?"]
    assert tokenize(["Tom & Jerry's \"show\""], "en") == ["tom &amp; jerry &apos;s &quot; show &quot;"]
    assert tokenize(["state-of-the-art"], "en") == ["state-of-the-art"]  # no -a: hyphens stay
    # clean-corpus-n.perl ratio 1.5, 1..175
    assert clean(["a b c", "a", "x " * 176], ["a b", "a b c", "y"]) == (["a b c"], ["a b"])
    # <seg> lines, ’ -> '
    assert seg_lines(['<seg id="3"> It\u2019s here </seg>', "<doc>"]) == ["It's here"]


def test_real_iwslt_source_is_pinned_to_fairseqs_mirror():
    assert IWSLT14.files[0].url == "http://dl.fbaipublicfiles.com/fairseq/data/iwslt14/de-en.tgz"
    assert IWSLT14.expected == {"train": 160_239, "valid": 7_283, "test": 6_750}
