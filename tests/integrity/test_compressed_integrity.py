"""A file is complete only when its compressed stream reads to the end with every checksum holding:
a byte flipped inside a member, a flipped trailer, or a file cut right after tar's end-of-archive
blocks is refused for every codec; and a mirror's own SHA256SUMS is what its files are checked against."""
import bz2
import gzip
import io
import lzma
import random
import shutil
import tarfile
import zipfile

import lz4.frame
import pytest

from lightformer.datasets import ddtp, download
from lightformer.datasets.integrity import check_complete
from lightformer.errors import LightformerError
from lightformer.io import file_sha256
from tests.data.test_ddtp import DE, EN, MD5
from tests.integrity.helpers import lightformer, refused, tree_hashes


def _tar() -> bytes:
    rng = random.Random(29)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("train.de", "train.en"):
            data = "\n".join(" ".join(rng.choice(["das", "haus", "ist", "klein", "the", "house", "is", "small"])
                                      for _ in range(12)) for _ in range(4000)).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


TAR = _tar()
# format -> (compress, bytes of the stream's trailer: checksums and end marks after the last data)
CODECS = {
    "de-en.tgz": (gzip.compress, 8),
    "train.de.gz": (gzip.compress, 8),
    "de-en.tar.xz": (lzma.compress, 12),
    "Translation-de.xz": (lzma.compress, 12),
    "Translation-de.lz4": (lambda b: lz4.frame.compress(b, content_checksum=True), 8),
    "de-en.tar.bz2": (bz2.compress, 10),
}


def _good(tmp_path, name):
    compress, _ = CODECS[name]
    path = tmp_path / name
    path.write_bytes(compress(TAR))
    return path


@pytest.mark.parametrize("name", CODECS)
def test_a_whole_file_passes(tmp_path, name):
    check_complete(_good(tmp_path, name))


@pytest.mark.parametrize("name", CODECS)
def test_a_byte_flipped_inside_the_data_is_refused(tmp_path, name):
    path = _good(tmp_path, name)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(LightformerError, match="incomplete or not a valid"):
        check_complete(path)


@pytest.mark.parametrize("name", CODECS)
def test_a_byte_flipped_in_the_trailer_is_refused(tmp_path, name):
    path = _good(tmp_path, name)
    data = bytearray(path.read_bytes())
    data[-CODECS[name][1] + 1] ^= 0x01  # inside the CRC/check, after every data byte
    path.write_bytes(bytes(data))
    with pytest.raises(LightformerError, match="incomplete or not a valid"):
        check_complete(path)


@pytest.mark.parametrize("name", CODECS)
def test_a_file_cut_after_the_tar_end_blocks_is_refused(tmp_path, name):
    """Every data byte (end-of-archive blocks and padding included) but not the stream's trailer:
    a reader that stops at the tar end would call it whole."""
    path = _good(tmp_path, name)
    path.write_bytes(path.read_bytes()[: -CODECS[name][1]])
    with pytest.raises(LightformerError, match="incomplete or not a valid"):
        check_complete(path)


def test_a_zip_member_with_a_bad_crc_is_refused(tmp_path):
    path = tmp_path / "glue.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("train.tsv", "a\tb\n" * 1000)
    check_complete(path)
    data = bytearray(path.read_bytes())
    data[200] ^= 0x01  # stored: a flipped byte of the member's data
    path.write_bytes(bytes(data))
    with pytest.raises(LightformerError, match="fails its CRC"):
        check_complete(path)


def test_a_corrupt_file_in_a_mirror_is_refused_against_the_mirrors_own_listing(tmp_path):
    """The issue's reproduction: a flipped byte in the fixtures mirror's de-en.tgz."""
    assert lightformer("data", "fixtures", "--out", tmp_path / "m").returncode == 0
    shutil.copytree(tmp_path / "m", tmp_path / "bad")
    tgz = tmp_path / "bad/iwslt14/de-en.tgz"
    good_sha = file_sha256(tgz)
    data = bytearray(tgz.read_bytes())
    data[len(data) // 2] ^= 0x01
    tgz.write_bytes(bytes(data))
    line = refused("data", "fetch", "iwslt14", "--root", tmp_path / "d", "--mirror", tmp_path / "bad",
                   expect="checksum mismatch for de-en.tgz", watch=(tmp_path / "bad",))
    assert good_sha in line and file_sha256(tgz) in line and "the mirror's listing" in line
    assert download.read_manifest(tmp_path / "d/iwslt14/raw")["files"] == {}
    (tmp_path / "bad/iwslt14/SHA256SUMS").unlink()  # no listing: the gzip CRC still refuses it
    refused("data", "fetch", "iwslt14", "--root", tmp_path / "d", "--mirror", tmp_path / "bad",
            expect="de-en.tgz is incomplete or not a valid tgz file")
    assert download.read_manifest(tmp_path / "d/iwslt14/raw")["files"] == {}


def test_a_good_mirror_file_is_recorded_as_checked_against_the_listing_not_a_pin(tmp_path):
    assert lightformer("data", "fixtures", "--out", tmp_path / "m").returncode == 0
    r = lightformer("data", "fetch", "iwslt14", "--root", tmp_path / "d", "--mirror", tmp_path / "m")
    assert r.returncode == 0, r.stderr.decode()
    assert "only that mirror vouches for it" in r.stdout.decode()
    rec = download.read_manifest(tmp_path / "d/iwslt14/raw")["files"]["de-en.tgz"]
    assert rec["verified_against"].startswith("the mirror's listing") and "not a pin" in rec["verified_against"]


def test_a_malformed_listing_is_named_with_its_line(tmp_path):
    (tmp_path / "m/iwslt14").mkdir(parents=True)
    (tmp_path / "m/iwslt14/SHA256SUMS").write_text(f"{'0' * 64}  a.tgz\nnot a checksum\n")
    with pytest.raises(LightformerError, match=r"SHA256SUMS:2: not a sha256sum line"):
        download.mirror_listing("iwslt14", str(tmp_path / "m"))


def _apt_lz4(lists, lang, text):
    """As apt writes its lists: lz4 frames without a content checksum."""
    path = lists / (ddtp.translation_name("bookworm", lang) + ".lz4")
    path.write_bytes(lz4.frame.compress(text.encode(), content_checksum=False))
    return path


def test_apt_lz4_without_checksum_is_checked_against_the_release_listing(tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    texts = {"en": EN.format(**MD5), "de": DE.format(**MD5)}
    paths = {lang: _apt_lz4(lists, lang, t) for lang, t in texts.items()}
    assert not lz4.frame.get_frame_info(paths["de"].read_bytes()[:64])["content_checksum"]
    import hashlib

    sums = "".join(f" {hashlib.sha256(t.encode()).hexdigest()} {len(t.encode())} main/i18n/Translation-{lang}\n"
                   for lang, t in texts.items())
    (lists / "deb.debian.org_debian_dists_bookworm_InRelease").write_text(f"Origin: Debian\nSHA256:\n{sums}")
    root = tmp_path / "d"
    ddtp.fetch_ddtp(lists, root / "raw", ("de", "en"), "bookworm")
    assert {r["basis"] for r in download.read_manifest(root / "raw")["files"].values()} == {
        "content checked against the suite's Release file beside it"}
    _apt_lz4(lists, "de", texts["de"].replace("Bilder", "Bildre"))  # same length, other bytes: lz4 cannot tell
    before = tree_hashes(tmp_path / "e")
    with pytest.raises(LightformerError, match="Release file lists .* for main/i18n/Translation-de"):
        ddtp.fetch_ddtp(lists, tmp_path / "e/raw", ("de", "en"), "bookworm")
    assert tree_hashes(tmp_path / "e") == before


def test_a_cut_ddtp_file_is_refused_before_anything_is_recorded(tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    for lang, text in (("en", EN), ("de", DE)):
        (lists / (ddtp.translation_name("bookworm", lang) + ".xz")).write_bytes(lzma.compress(text.format(**MD5).encode()))
    de = lists / (ddtp.translation_name("bookworm", "de") + ".xz")
    de.write_bytes(de.read_bytes()[:-12])
    with pytest.raises(LightformerError, match="incomplete or not a valid xz file"):
        ddtp.fetch_ddtp(lists, tmp_path / "raw", ("de", "en"), "bookworm")
    assert not (tmp_path / "raw").exists()
